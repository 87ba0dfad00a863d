"""The GOPRO-like blur engine: alignment, linear light, extents, determinism, JPEG, and its use in training."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_deblurgan.gan.data.photo_pairs import RealisticPairs, realistic_cases
from napari_deblurgan.gan.data.prefetch import PrefetchedSource
from napari_deblurgan.gan.data.realistic import KINDS, RealisticBlur, _apply, jpeg_compress, plan_batch, render

CLEAN = RealisticBlur(noise=(0.0, 0.0), jpeg=0.0, gray=0.0, saturation=0.0, sharp=0.0)


def _photos(count: int = 3, size: int = 160) -> list[np.ndarray]:
    """Textured 'photos': smooth colour fields plus fine detail, different for each."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for i in range(count):
        base = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), np.sin(4 * (xx + yy) + 2 * i)], axis=-1)
        detail = rng.random((size, size, 1))
        out.append(np.round((0.35 + 0.25 * base + 0.3 * detail).clip(0, 1) * 255).astype(np.uint8))
    return out


def _plan(kind: str, extent: float, out_hw=(48, 64), margin: int = 24, frame=(200, 300), crop=(60, 90), **opts):
    options = replace(CLEAN, mix={kind: 1.0}, extent=(extent, extent), **opts)
    return plan_batch(np.random.default_rng(3), options, out_hw, margin, [frame], [crop])


@pytest.mark.parametrize("kind", KINDS)
def test_the_target_is_the_frame_at_rest_where_the_blur_is_centred(kind: str) -> None:
    """The target is the sharp canvas' centre pixel for pixel (a shift of 0.1 px would change this texture
    by far more than the tolerance); the middle sub-frame is that frame (GOPRO's convention; the kernel
    kind centres its path on its mean instead), and every kind's paths average to it, so the blurred
    image's centre of mass lies on the target (before the fix, camera paths were 2 px off at 20 px)."""
    plan = _plan(kind, 20.0)
    n = plan.background.shape[1]
    maps = plan.foreground[0] if kind == "object" else plan.background[0]
    points = plan.blob[0, :2][None] - 24 if kind == "object" else np.array([[0.0, 0.0], [63.0, 47.0], [17.5, 30.25]])
    if kind != "kernel":
        assert np.allclose(_apply(maps[n // 2], points), points + 24, atol=1e-9)
    assert np.abs(_apply(maps, points).mean(axis=0) - (points + 24)).max() < 0.4
    canvas = torch.from_numpy(_photos(1, 96)[0]).permute(2, 0, 1)[None].float() / 255
    blurred, sharp = render(canvas, canvas.clone(), plan, (48, 64))
    centre = canvas[:, :, 24 : 24 + 48, 24 : 24 + 64]
    object_moves = kind == "object"  # the object covers part of the target: only the rest is the canvas
    assert torch.allclose(sharp, centre, atol=2e-4) or object_moves  # float32 pow round trip
    assert not torch.allclose(blurred, sharp, atol=0.02)


def test_extent_power_draws_mild_blur_more_often_and_power_one_is_numpys_uniform() -> None:
    """At power 1 the extents are ``rng.uniform``'s, bit for bit (stages recorded before the option resume
    unchanged); at power 2 a quarter of the blurred samples fall in the range's lowest 6.25 %."""
    b, frames, crops = 400, [(200, 300)] * 400, [(60, 90)] * 400

    def extents(**opts) -> np.ndarray:
        options = replace(CLEAN, mix={"kernel": 1.0}, extent=(1.0, 41.0), sharp=0.2, **opts)
        return plan_batch(np.random.default_rng(11), options, (16, 16), 24, frames, crops).extents

    rng = np.random.default_rng(11)
    rng.choice(1, size=b, p=[1.0])  # the kinds' draw
    still = rng.random(b) < 0.2
    assert np.array_equal(extents(), np.where(still, 0.0, rng.uniform(1.0, 41.0, size=b)))
    skewed = extents(extent_power=2.0)
    assert np.array_equal(skewed == 0, still)  # the same samples stay sharp
    mild = (skewed[~still] < 1.0 + 40 * 0.0625).mean()
    assert 0.18 < mild < 0.32, mild  # uniform draws would put 6 % there
    with pytest.raises(ValueError, match="extent_power"):
        RealisticBlur(extent_power=0.0)


def test_softened_samples_soften_target_and_input_alike_and_leave_the_other_draws_as_they_were() -> None:
    """``soft`` blurs a share of the photos before everything else, so the target is soft too (a natively
    soft photo is not a blurred one to sharpen); the draws before it are those of recipes without it."""
    frames, crops = [(200, 300)] * 200, [(60, 90)] * 200
    options = replace(CLEAN, mix={"kernel": 1.0}, extent=(3.0, 3.0), sharp=0.5)
    plain = plan_batch(np.random.default_rng(5), options, (48, 64), 24, frames, crops)
    softened = replace(options, soft=0.3, soft_sigma=(0.5, 1.0))
    soft = plan_batch(np.random.default_rng(5), softened, (48, 64), 24, frames, crops)
    assert np.array_equal(plain.extents, soft.extents) and np.array_equal(plain.background, soft.background)
    assert not plain.soften.any()
    chosen = soft.soften > 0
    assert 0.2 < chosen.mean() < 0.4 and soft.soften[chosen].min() >= 0.5 and soft.soften[chosen].max() <= 1.0

    still = replace(CLEAN, mix={"kernel": 1.0}, sharp=1.0)  # no motion, no noise: the input is the target
    plans = [
        plan_batch(np.random.default_rng(5), replace(still, soft=share), (48, 64), 24, frames[:1], crops[:1])
        for share in (0.0, 1.0)
    ]
    canvas = torch.from_numpy(_photos(1, 96)[0]).permute(2, 0, 1)[None].float() / 255
    _, crisp = render(canvas, canvas.clone(), plans[0], (48, 64))
    blurred, sharp = render(canvas, canvas.clone(), plans[1], (48, 64))
    assert torch.allclose(blurred, sharp, atol=0.5 / 255 + 1e-6)  # only quantised
    detail = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert detail(sharp) < 0.7 * detail(crisp)
    assert torch.allclose(sharp.mean((2, 3)), crisp.mean((2, 3)), atol=0.01)  # softer, not shifted in tone
    with pytest.raises(ValueError, match="soft"):
        RealisticBlur(soft=1.5)
    with pytest.raises(ValueError, match="soft_sigma"):
        RealisticBlur(soft_sigma=(0.0, 1.0))
    with pytest.raises(ValueError, match="defocus_sigma"):
        RealisticBlur(defocus_sigma=(2.0, 1.0))


def test_defocused_samples_keep_their_blob_in_focus_and_soften_the_rest_in_target_and_input() -> None:
    still = replace(CLEAN, mix={"kernel": 1.0}, sharp=1.0)
    plans = [
        plan_batch(np.random.default_rng(9), replace(still, defocus=share), (96, 96), 24, [(300, 300)], [(60, 90)])
        for share in (0.0, 1.0)
    ]
    focus = plans[1].focus[0]
    assert 1.0 <= plans[1].defocus[0] <= 4.0 and not plans[0].defocus.any()
    canvas = torch.from_numpy(_photos(1, 144)[0]).permute(2, 0, 1)[None].float() / 255
    _, crisp = render(canvas, canvas.clone(), plans[0], (96, 96))
    blurred, sharp = render(canvas, canvas.clone(), plans[1], (96, 96))
    assert torch.allclose(blurred, sharp, atol=0.5 / 255 + 1e-6)
    ys, xs = np.mgrid[:96, :96] + 24  # output pixels on the canvas
    r = np.hypot(xs - focus[0], ys - focus[1])
    inside, outside = r < 0.6 * focus[2] - 3 * focus[9], r > 1.4 * focus[2] + 3 * focus[9]  # clear of the wobble
    assert inside.sum() > 50 and outside.sum() > 50
    change = (sharp - crisp).abs()[0].mean(0).numpy()
    assert change[inside].max() < 0.01 and change[outside].mean() > 0.03


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("extent", [4.0, 17.0, 35.0])
def test_the_blur_extent_is_the_one_asked_for(kind: str, extent: float) -> None:
    """Extent: the largest distance between two sub-frames' positions of a point of the crop (the
    moving object's points for ``object``)."""
    plan = _plan(kind, extent)
    maps = plan.foreground[0] if kind == "object" else plan.background[0]
    ys, xs = np.mgrid[0:48:6, 0:64:6]
    tracks = _apply(maps, np.stack([xs.ravel(), ys.ravel()], 1).astype(float))
    if kind == "object":  # the object's own points: its centre and the ends of two diameters
        centre, radius = plan.blob[0, :2] - 24, plan.blob[0, 2]
        tracks = _apply(maps, centre + radius * np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]]))
    spread = np.sqrt(((tracks[:, None] - tracks[None, :]) ** 2).sum(-1)).max()
    assert extent * 0.9 <= spread <= extent * 1.02 + 0.5, (kind, spread)
    assert plan.background.shape[1] >= extent / CLEAN.step  # sub-frames at most `step` px apart


def test_roll_blurs_the_corners_more_than_the_centre() -> None:
    """A camera turning about its axis only: the principal point stays, far points sweep arcs."""
    options = replace(CLEAN, mix={"camera": 1.0}, extent=(20, 20))
    rng = np.random.default_rng(11)
    for _ in range(20):  # some draws are mostly roll
        plan = plan_batch(rng, options, (200, 300), 0, [(200, 300)], [(0, 0)])
        maps = plan.background[0]
        centre, corner = np.array([[150.0, 100.0]]), np.array([[0.0, 0.0]])
        moved = [np.ptp(_apply(maps, p)[:, 0, :], axis=0).max() for p in (centre, corner)]
        if moved[1] > 2 * moved[0]:
            return
    pytest.fail("no draw had the corners blurred more than the centre")


def test_averaging_is_in_linear_light_and_highlights_streak() -> None:
    """A white dot on dark grey moved 20 px: averaged in linear light (gamma 2.2) its streak is brighter
    than averaging the sRGB values (gamma 1) gives; highlights brighter than white (saturation) are
    brighter still, and the result still clips at white."""
    canvas = torch.full((1, 3, 64, 96), 0.2)
    canvas[..., 30:34, 46:50] = 1.0
    plan = _plan("kernel", 20.0, out_hw=(32, 64), margin=16, crop=(0, 0), frame=(32, 64))
    streaks = {}
    for gamma, boost in ((1.0, 0.0), (2.2, 0.0), (2.2, 1.75)):
        plan.gamma[:], plan.boost[:] = gamma, boost
        blurred, _ = render(canvas, canvas, plan, (32, 64))
        streaks[gamma, boost] = float(blurred[0, 0, 14:18].max())
        assert float(blurred.max()) <= 1.0
    assert streaks[2.2, 0.0] > streaks[1.0, 0.0] + 0.05
    assert streaks[2.2, 1.75] > streaks[2.2, 0.0] + 0.05


def test_batches_are_a_function_of_seed_step_and_rank_with_any_number_of_workers() -> None:
    source = RealisticPairs(_photos(), crop=32, batch_size=3, seed=4, options=RealisticBlur(extent=(2, 8)))
    a, b = source.batch(5), source.batch(5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(source.batch(6)[0], a[0]) and not torch.equal(source.batch(5, rank=1)[0], a[0])
    assert a[0].shape == (3, 3, 32, 32) and float(a[0].min()) >= -1 and float(a[0].max()) <= 1
    ahead = PrefetchedSource(source, workers=2)
    try:
        for step in (5, 6, 9):
            assert all(torch.equal(x, y) for x, y in zip(ahead.batch(step), source.batch(step)))
    finally:
        ahead.close()


def test_jpeg_round_trip_matches_a_real_encoder() -> None:
    from PIL import Image

    image = _photos(1, 64)[0]
    for quality in (60, 90):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=quality, subsampling=2)  # 4:2:0, IJG tables
        real = np.asarray(Image.open(buf)).astype(np.float32) / 255
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        ours = jpeg_compress(x, torch.tensor([quality]))[0].permute(1, 2, 0).numpy()
        assert np.abs(ours - real).mean() < 0.6 * np.abs(image / 255 - real).mean()  # far closer than no JPEG
    untouched = torch.rand(2, 3, 16, 16)
    assert torch.equal(jpeg_compress(untouched, torch.tensor([0, 0])), untouched)


def test_options_are_checked_by_name() -> None:
    for bad in ({"mix": {"warp": 1.0}}, {"extent": (5, 2)}, {"jpeg": 2.0}, {"noise": (-1, 1)}, {"gamma": (0.5, 1)}):
        with pytest.raises(ValueError, match="realistic"):
            RealisticBlur.from_dict(bad)
    with pytest.raises(ValueError, match="Unknown realistic"):
        RealisticBlur.from_dict({"blur": 1})


def test_cases_are_fixed_and_rectangular_whole_frames() -> None:
    photos = [p[:100] for p in _photos(2, 120)]
    first = realistic_cases(photos, RealisticBlur(), None, 4, seed=1, kinds=KINDS)
    again = realistic_cases(photos, RealisticBlur(), None, 4, seed=1, kinds=KINDS)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert all(b.shape == s.shape == (100, 120, 3) for b, s in first)


def test_a_case_cuts_its_moving_object_from_another_photo_of_a_repeating_list() -> None:
    dark, light = np.full((96, 96, 3), 20, np.uint8), np.full((96, 96, 3), 235, np.uint8)
    kinds = ["object"] * 4
    cases = realistic_cases([dark, dark, light], RealisticBlur(noise=(0, 0), jpeg=0.0), None, 2, seed=3, kinds=kinds)
    for _, sharp in cases:  # the object, from the light photo, lies over the dark one
        assert sharp.max() > 0.5 and sharp.min() < 0.2


def test_training_on_photos_with_realistic_blur(tmp_path: Path) -> None:
    from _helpers import TINY_RECIPE
    from napari_deblurgan.gan.training.train import TrainConfig, Trainer

    folder = tmp_path / "corpus"
    for split, photos in (("train", _photos(3)), ("val", _photos(2))):
        (folder / split).mkdir(parents=True)
        for i, p in enumerate(photos):
            from PIL import Image

            Image.fromarray(p).save(folder / split / f"{i}.png")
    cfg = TrainConfig(
        **{**TINY_RECIPE, "steps": 2, "validate_every": 2},
        data=str(folder),
        synthesis="realistic",
        realistic={"extent": [2, 6]},
    )
    trainer = Trainer(cfg, tmp_path / "run", device="cpu")
    events = list(trainer.steps())
    assert isinstance(trainer.source, RealisticPairs)
    assert events[-1].validation is not None and np.isfinite(events[-1].validation["psnr"])
    assert len(trainer._val) == 8 and trainer._val[0][0].shape == (160, 160, 3)  # the val/ photos, blurred
    with pytest.raises(ValueError, match="realistic"):
        TrainConfig.from_dict({"synthesis": "realistic", "realistic": {"mix": {"camera": -1}}})
    with pytest.raises(ValueError, match='set "synthesis": "realistic"'):
        TrainConfig.from_dict({"realistic": {"extent": [2, 6]}})
    with pytest.raises(ValueError, match="synthesis must be"):
        TrainConfig.from_dict({"synthesis": "gopro"})


@pytest.mark.cuda
def test_cpu_and_cuda_batches_agree() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    cpu = RealisticPairs(_photos(), crop=64, batch_size=4, seed=2, options=RealisticBlur(jpeg=0.0))
    gpu = RealisticPairs(_photos(), crop=64, batch_size=4, seed=2, options=RealisticBlur(jpeg=0.0), device="cuda")
    for a, b in zip(cpu.batch(3), gpu.batch(3)):
        assert (a - b.cpu()).abs().max() <= 2 / 255 + 1e-6


def test_synthesize_writes_realistic_pairs_in_the_sources_format(tmp_path: Path) -> None:
    from napari_deblurgan.cli import main
    from napari_deblurgan.gan.io.images import read_image, write_image

    rgb, gray16 = _photos(1, 96)[0], (_photos(1, 80)[0][..., 1].astype(np.uint16) * 257)
    (tmp_path / "sharp").mkdir()
    write_image(tmp_path / "sharp" / "rgb.png", rgb)
    write_image(tmp_path / "sharp" / "gray16.png", gray16)
    args = ["synthesize", str(tmp_path / "sharp"), str(tmp_path / "pairs"), "--realistic", "--quiet"]
    assert main([*args, "--min-length", "6", "--max-length", "12", "--kinds", "camera,zoom"]) == 0
    for name, source in (("rgb.png", rgb), ("gray16.png", gray16)):
        blurred, target = (read_image(tmp_path / "pairs" / sub / name) for sub in ("A", "B"))
        assert blurred.shape == target.shape == source.shape and blurred.dtype == target.dtype == source.dtype
        top = float(np.iinfo(source.dtype).max)
        assert np.abs(target / top - source / top).max() < 2e-3  # B is the middle sub-frame: the photo
        assert np.abs(blurred / top - source / top).mean() > 0.02  # A is blurred
    assert main([*args[:2], str(tmp_path / "more"), "--realistic", "--kinds", "warp", "--quiet"]) == 2


def test_photo_regions_mirror_past_the_edges_however_far() -> None:
    from napari_deblurgan.gan.data.photo_pairs import _mirrored

    for length in (1, 2, 7):
        far = np.arange(-40, 40)
        expected = np.pad(np.arange(length), 200, mode="reflect")[200 - 40 : 200 + 40] if length > 1 else 0 * far
        assert np.array_equal(_mirrored(far, length), expected)


def test_a_prepared_batch_holds_object_regions_for_its_moving_objects_only() -> None:
    """The CPU part cuts object regions only for samples with a moving object; the render is the same."""
    for mix, movers in (({"camera": 1.0}, 0), ({"object": 1.0}, 3)):
        source = RealisticPairs(_photos(), crop=32, batch_size=3, seed=1, options=RealisticBlur(mix=mix))
        prepared = source.prepare(0)
        assert int(prepared.plan.has_object.sum()) == len(prepared.objects) == movers
        blurred, sharp = source.finish(prepared)
        assert blurred.shape == sharp.shape == (3, 3, 32, 32) and bool(torch.isfinite(blurred).all())
        assert all(torch.equal(a, b) for a, b in zip((blurred, sharp), source.batch(0)))


def test_realistic_pairs_of_16_bit_photos_stay_16_bit(tmp_path: Path) -> None:
    from napari_deblurgan.gan.data.prepare import synthesize_pairs
    from napari_deblurgan.gan.io.images import read_image, write_image

    (tmp_path / "sharp").mkdir()
    ramp = np.linspace(0, 65535, 96 * 96).reshape(96, 96).astype(np.uint16)
    write_image(tmp_path / "sharp" / "scan.png", np.stack([ramp, ramp[::-1], ramp.T], -1))
    synthesize_pairs(tmp_path / "sharp", tmp_path / "pairs", realistic=RealisticBlur(jpeg=0.0))
    blurred = read_image(tmp_path / "pairs" / "A" / "scan.png")
    assert blurred.dtype == np.uint16
    assert np.any(blurred % 257)  # not 8-bit levels stored in 16 bits
