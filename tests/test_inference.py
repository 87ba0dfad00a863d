"""deblur(): the shape/dtype/size matrix, value ranges, tiling seams, determinism, safety of the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio

from napari_deblurgan import deblur
from napari_deblurgan.gan.io.layout import infer_layout


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((40, 52), np.uint8),
        ((40, 52, 3), np.uint8),
        ((40, 52, 4), np.uint8),
        ((2, 40, 52), np.uint16),
        ((2, 3, 24, 20, 3), np.uint16),
        ((40, 52), np.float32),
        ((40, 52, 3), np.float64),
        ((40, 52), np.int16),
    ],
)
def test_identity_model_returns_the_input_exactly(identity_model_path, shape, dtype) -> None:
    # A zero residual must round-trip every dtype and layout bit for bit: no shift, no ring, no cast.
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        image = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        image = rng.random(shape).astype(dtype)
    out = deblur(image, identity_model_path)
    assert out.shape == image.shape and out.dtype == image.dtype
    np.testing.assert_array_equal(out, image)


NUMERIC_DTYPES = [np.dtype(t) for t in np.typecodes["AllInteger"] + np.typecodes["Float"]]
NUMERIC_DTYPES += [np.dtype(t) for t in (">u2", ">i8", ">u8", ">f4")]  # big-endian, as FITS files load


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES, ids=str)
@pytest.mark.parametrize("where", ["lowest", "highest", "middle", "spread"])
def test_every_dtype_round_trips_at_the_ends_of_its_range(identity_model_path, dtype, where) -> None:
    # uint64 white came back 0, int64 10**17 as -2**63, float32 1e38 as NaN: 64-bit values and constants
    # that float64 cannot resolve at their magnitude must come back as they went in.
    info = np.iinfo(dtype) if dtype.kind in "ui" else np.finfo(dtype)
    if where == "spread":
        rng = np.random.default_rng(3)
        image = rng.integers(info.min, info.max, (30, 31), endpoint=True, dtype=dtype.newbyteorder("=")).astype(
            dtype) if dtype.kind in "ui" else (
            (rng.standard_normal((30, 31)) * (min(float(info.max), 1e308) / 8)).astype(dtype))  # fmt: skip
    else:
        value = {"lowest": info.min, "highest": info.max, "middle": info.max // 3 if dtype.kind in "ui" else 1e-3}
        image = np.full((30, 31), value[where], dtype=dtype)
        if dtype.kind == "f" and dtype.itemsize > 8 and where != "middle":  # long double beyond float64
            with pytest.raises(ValueError, match="beyond float64's range"):
                deblur(image, identity_model_path, refine=False)
            return
    for layout in (image, np.repeat(image[..., None], 3, axis=2)):
        out = deblur(layout, identity_model_path, refine=False)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, layout)


@given(
    dtype=st.sampled_from(NUMERIC_DTYPES),
    values=st.lists(st.floats(-1e300, 1e300), min_size=4, max_size=12),
)
@settings(max_examples=60, deadline=None)
def test_any_values_of_any_dtype_round_trip(identity_model_path, dtype, values) -> None:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        image = np.array([min(max(int(v), info.min), info.max) for v in values], dtype=object).astype(dtype)
    else:
        with np.errstate(over="ignore"):
            image = np.array(values).astype(dtype)
        image[~np.isfinite(image)] = 0
    image = image.reshape(1, -1)
    np.testing.assert_array_equal(deblur(image, identity_model_path, refine=False), image)


@pytest.mark.parametrize("value_range", [(0, np.inf), (-np.inf, 1), (np.nan, 1), (-1e308, 1e308)])
def test_impossible_value_ranges_are_refused(identity_model_path, value_range) -> None:
    with pytest.raises(ValueError, match="value_range must be two finite numbers"):
        deblur(np.zeros((8, 8), np.uint16), identity_model_path, value_range=value_range)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 3), (5, 7), (17, 33), (33, 17), (1, 300), (101, 99)])
def test_odd_and_tiny_sizes(tiny_model_path, size) -> None:
    image = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    out = deblur(image, tiny_model_path)
    assert out.shape == image.shape and out.dtype == np.uint8


def test_the_model_really_changes_the_image(tiny_model_path, natural_rgb) -> None:
    out = deblur(natural_rgb, tiny_model_path)
    assert np.abs(out.astype(int) - natural_rgb).mean() > 1.0


def test_floats_keep_their_value_range(tiny_model_path, natural_rgb) -> None:
    gray = natural_rgb[..., 1].astype(np.float32) * 10 - 300  # range -300 .. 2250
    out = deblur(gray, tiny_model_path)
    assert out.dtype == np.float32
    assert out.min() >= gray.min() and out.max() <= gray.max()
    # the same image as uint8 gives the same result up to the scale change (and rounding)
    ref = deblur(natural_rgb[..., 1], tiny_model_path).astype(np.float32) * 10 - 300
    assert np.abs(out - ref).mean() < 10 * 1.0


def test_16bit_matches_8bit_by_dtype_range(tiny_model_path, natural_rgb) -> None:
    out8 = deblur(natural_rgb, tiny_model_path)
    out16 = deblur(natural_rgb.astype(np.uint16) * 257, tiny_model_path)
    assert out16.dtype == np.uint16
    assert np.abs(out16 / 257.0 - out8).max() <= 1.0


def test_grayscale_has_no_colour_and_rgba_keeps_alpha(tiny_model_path, natural_rgb) -> None:
    gray = natural_rgb.mean(axis=2).astype(np.uint8)
    assert deblur(gray, tiny_model_path).shape == gray.shape
    rgba = np.dstack([natural_rgb, np.arange(natural_rgb.shape[1], dtype=np.uint8)[None].repeat(512, 0)])
    out = deblur(rgba, tiny_model_path)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out[..., :3], deblur(natural_rgb, tiny_model_path))


def test_stacks_are_deblurred_plane_by_plane(tiny_model_path, natural_rgb) -> None:
    a, b = natural_rgb[:64, :80], natural_rgb[100:164, 200:280]
    stack = np.stack([a, b])
    out = deblur(stack, tiny_model_path)
    np.testing.assert_array_equal(out[0], deblur(a, tiny_model_path))
    np.testing.assert_array_equal(out[1], deblur(b, tiny_model_path))


def test_channel_first_data(tiny_model_path, natural_rgb) -> None:
    small = natural_rgb[:48, :64]
    chw = np.moveaxis(small, -1, 0)
    out = deblur(chw, tiny_model_path, channel_axis=0)
    np.testing.assert_array_equal(np.moveaxis(out, 0, -1), deblur(small, tiny_model_path))
    two = chw[:2]  # two independent channels: each is deblurred as a grayscale plane
    out2 = deblur(two, tiny_model_path, channel_axis=0)
    np.testing.assert_array_equal(out2[1], deblur(two[1], tiny_model_path))


def test_input_is_never_modified_and_read_only_input_works(tiny_model_path, natural_rgb) -> None:
    image = natural_rgb[::2, ::-3].copy()[:, ::-1]  # a non-contiguous, negative-stride view
    image.flags.writeable = False
    before = image.copy()
    deblur(image, tiny_model_path)
    np.testing.assert_array_equal(image, before)


def test_same_input_gives_the_same_output(tiny_model_path, natural_rgb) -> None:
    np.testing.assert_array_equal(deblur(natural_rgb, tiny_model_path), deblur(natural_rgb, tiny_model_path))


def test_tiles_match_the_whole_frame(tiny_model_path) -> None:
    import skimage.data
    from skimage.transform import resize

    image = (resize(skimage.data.astronaut(), (1024, 1024), order=3) * 255).round().astype(np.uint8)
    whole = deblur(image, tiny_model_path, tile_size=None)
    tiled = deblur(image, tiny_model_path, tile_size=256, tile_overlap=64, batch_size=4)
    assert peak_signal_noise_ratio(whole, tiled) >= 45.0
    # no seam: the error along tile boundaries is no larger than elsewhere
    err = np.abs(whole.astype(int) - tiled).mean(axis=(0, 2))
    assert err.max() <= 2.0


@pytest.mark.parametrize("ensemble", [2, 4, 8])
def test_self_ensemble_is_the_mean_over_flipped_and_transposed_copies(tiny_model_path, natural_rgb, ensemble) -> None:
    image = natural_rgb[:40, :52].astype(np.float32) / 255  # whole frame, no stride padding: flips commute
    out = deblur(image, tiny_model_path, tile_size=None, ensemble=ensemble)
    copies = []
    for k in range(ensemble):  # bit 0: flip x, bit 1: transpose, bit 2: flip y
        flip = (slice(None, None, -1 if k & 4 else 1), slice(None, None, -1 if k & 1 else 1))
        x = np.swapaxes(image[flip], 0, 1) if k & 2 else image[flip]
        y = deblur(np.ascontiguousarray(x), tiny_model_path, tile_size=None)
        copies.append((np.swapaxes(y, 0, 1) if k & 2 else y)[flip])
    assert len({c.tobytes() for c in copies}) == ensemble  # the random model is not flip-invariant
    np.testing.assert_allclose(out, np.mean(copies, axis=0), atol=2e-6)


def test_self_ensemble_keeps_odd_sizes_tiles_and_dtypes(tiny_model_path, natural_rgb) -> None:
    odd = natural_rgb[:45, :61]
    tiled = deblur(odd, tiny_model_path, tile_size=32, tile_overlap=8, ensemble=8)
    assert tiled.shape == odd.shape and tiled.dtype == odd.dtype
    whole = deblur(odd, tiny_model_path, tile_size=None, ensemble=8)
    assert peak_signal_noise_ratio(whole, tiled) >= 40.0


def test_strength_applies_a_share_of_the_correction(tiny_model_path, natural_rgb) -> None:
    image = natural_rgb[:45, :61]
    full = deblur(image, tiny_model_path, tile_size=32, tile_overlap=8).astype(np.float64)
    assert np.abs(full - image).mean() > 2  # the random model changes the image
    np.testing.assert_array_equal(deblur(image, tiny_model_path, tile_size=32, tile_overlap=8, strength=0), image)
    half = deblur(image, tiny_model_path, tile_size=32, tile_overlap=8, strength=0.5)
    assert np.abs(half - (image + full) / 2).max() <= 1  # halfway, up to rounding to 8 bits
    for bad in (-0.1, 1.5, float("nan"), True, "0.5", None):
        with pytest.raises(ValueError, match="strength"):
            deblur(image, tiny_model_path, strength=bad)


def test_tiling_an_instance_norm_model_warns_of_seams(natural_rgb) -> None:
    import warnings

    from napari_deblurgan.gan.model.generator import ResnetGenerator, preset

    model = ResnetGenerator(preset("paper", ngf=4, n_blocks=1)).eval()  # per-tile statistics
    with pytest.warns(UserWarning, match="instance normalisation"):
        deblur(natural_rgb, model, tile_size=64)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="This model has instance normalisation")
        deblur(natural_rgb, model, tile_size=None)  # one frame, one set of statistics
        # a NAFNet carries the paper preset's norm="instance" in its config but has no such layers
        from napari_deblurgan.gan.model.networks import build_generator

        nafnet = build_generator(preset("paper", arch="nafnet", ngf=4, encoder_blocks=(1, 1), n_blocks=1)).eval()
        deblur(natural_rgb[:160, :160], nafnet, tile_size=96, refine=False)


def test_progress_reports_every_tile(tiny_model_path, natural_rgb) -> None:
    calls: list[tuple[int, int]] = []
    deblur(natural_rgb, tiny_model_path, tile_size=256, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] == len(calls) > 1


def _tiles_run(image: np.ndarray, model, tile_size: int | None) -> tuple[int, np.ndarray]:
    """How many tiles ``deblur`` ran (its progress steps without refinement), and its output."""
    calls: list[int] = []
    out = deblur(image, model, tile_size=tile_size, refine=False, progress=lambda d, t: calls.append(d))
    return len(calls), out


def test_images_up_to_the_tile_size_are_deblurred_whole(tiny_model_path, natural_rgb) -> None:
    # the 16 px border the network adds does not count: a 512 px image with tiles of 512 is one frame
    count, whole = _tiles_run(natural_rgb, tiny_model_path, 512)
    assert count == 1
    np.testing.assert_array_equal(whole, _tiles_run(natural_rgb, tiny_model_path, None)[1])
    assert _tiles_run(natural_rgb, tiny_model_path, 508)[0] == 4
    assert _tiles_run(natural_rgb[:510, :510], tiny_model_path, 510)[0] == 1  # not only multiples of 4
    assert _tiles_run(natural_rgb, tiny_model_path, 510)[0] == 4


def test_the_longer_side_decides_whether_an_image_is_tiled(tiny_model_path, natural_rgb) -> None:
    for image in (natural_rgb[:300], natural_rgb[:, :300]):  # 512 px along one side only
        assert _tiles_run(image, tiny_model_path, 508)[0] == 2
        assert _tiles_run(image, tiny_model_path, 512)[0] == 1


def test_progress_counts_the_psf_refinement_as_one_more_step(tiny_model_path, natural_rgb) -> None:
    totals = {}
    for refine in (False, True):
        calls: list[tuple[int, int]] = []
        report = calls.append
        deblur(natural_rgb, tiny_model_path, tile_size=256, refine=refine, progress=lambda d, t, r=report: r((d, t)))
        assert calls[-1][0] == calls[-1][1] == len(calls)
        totals[refine] = calls[-1][1]
    assert totals[True] == totals[False] + 1  # one plane: its tiles, then its refinement


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 5)), "empty"),
        (np.zeros(5), "at least a 2D"),
        (np.zeros((4, 4), dtype=bool), "numeric image"),
        (np.zeros((4, 4), dtype=complex), "numeric image"),
        (np.full((4, 4), np.nan), "NaN"),
    ],
)
def test_bad_input_gets_a_clear_error(tiny_model_path, image, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        deblur(image, tiny_model_path)


def test_layout_guessing() -> None:
    assert infer_layout((10, 10, 3), None, None).colour
    assert infer_layout((10, 10, 3), None, False).channel_axis is None
    assert infer_layout((3, 10, 10), 0, None).channel_axis == 0
    assert not infer_layout((2, 10, 10), 0, None).colour
    with pytest.raises(ValueError, match="out of range"):
        infer_layout((10, 10), 5, None)


def test_devices() -> None:
    import torch

    from napari_deblurgan.gan.model.device import resolve_device

    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="Unknown device"):
        resolve_device("tpu-9000")


def test_bfloat16_autocast_only_where_cuda_has_it_natively(monkeypatch) -> None:
    import torch

    from napari_deblurgan.gan.model.device import bf16_supported

    for (major, minor), native in (((7, 5), False), ((8, 0), True), ((9, 0), True)):  # T4, A100, H100
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, m=major, n=minor: (m, n))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # as torch says, emulated
        assert bf16_supported(torch.device("cuda")) is native


def test_out_of_memory_falls_back_to_smaller_tiles(tiny_model_path, natural_rgb, monkeypatch) -> None:
    import torch

    from napari_deblurgan.gan.restoration import plane_runner

    real_run = plane_runner.PlaneDeblurrer._run

    def run_with_little_memory(self, batch):  # a simulated GPU: tiles over 200 px do not fit
        if max(batch.shape[1:3]) > 200:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(self, batch)

    monkeypatch.setattr(plane_runner.PlaneDeblurrer, "_run", run_with_little_memory)
    calls: list[tuple[int, int]] = []
    with pytest.warns(RuntimeWarning) as warned:
        out = deblur(natural_rgb, tiny_model_path, tile_size=1024, progress=lambda d, t: calls.append((d, t)))
    assert [str(w.message).split(" with ", 1)[1] for w in warned] == [  # the sizes that really ran
        "tiles of 544 px; retrying with 272 px tiles",  # the whole 512 px image with its border
        "tiles of 232 px; retrying with 116 px tiles",  # 272 px tiles, balanced to 232
    ]
    assert out.shape == natural_rgb.shape
    assert calls[-1][0] == calls[-1][1] > 1 and all(d <= t for d, t in calls)
    reference = deblur(natural_rgb, tiny_model_path, tile_size=128, tile_overlap=32)
    assert peak_signal_noise_ratio(reference, out) > 45


def test_out_of_memory_at_the_smallest_tile_is_a_clear_error(tiny_model_path, natural_rgb, monkeypatch) -> None:
    import torch

    from napari_deblurgan.gan.restoration import plane_runner

    def no_memory(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(plane_runner.PlaneDeblurrer, "_run", no_memory)
    with pytest.warns(RuntimeWarning), pytest.raises(MemoryError, match="even with tiles of 64 px"):
        deblur(natural_rgb, tiny_model_path)
    # an image smaller than the smallest tile is one frame however small the tiles: no endless retry
    with pytest.raises(MemoryError, match="even with tiles of 72 px"):
        deblur(natural_rgb[:40, :40], tiny_model_path)


def test_cuda_runs_autotune_cudnn_without_changing_the_users_settings() -> None:
    import torch

    from napari_deblurgan.gan.restoration.plane_runner import _cudnn_autotune

    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    with _cudnn_autotune(torch.device("cuda")):
        assert torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic == before[1]
    with _cudnn_autotune(torch.device("cpu")):
        assert torch.backends.cudnn.benchmark == before[0]
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == before
    first, second = _cudnn_autotune(torch.device("cuda")), _cudnn_autotune(torch.device("cuda"))
    first.__enter__()  # two deblurs in two threads, the first ending while the second runs
    second.__enter__()
    first.__exit__(None, None, None)
    assert torch.backends.cudnn.benchmark  # still autotuning for the second
    second.__exit__(None, None, None)
    assert torch.backends.cudnn.benchmark == before[0]  # the user's setting, restored by the last one out


def test_half_on_a_torch_without_mps_autocast_runs_in_full_precision(monkeypatch) -> None:
    import contextlib

    import torch

    from napari_deblurgan.gan.restoration import plane_runner

    def no_mps(device_type: str, **kwargs: object) -> object:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")

    monkeypatch.setattr(plane_runner.torch, "autocast", no_mps)
    assert isinstance(plane_runner._precision_context(torch.device("mps"), True), contextlib.nullcontext)


def test_value_range_auto_uses_the_images_own_range_without_alpha(tiny_model_path, natural_rgb) -> None:
    import dask.array as da

    twelve_bit = natural_rgb.astype(np.uint16) * 16  # 0..4080 in a 16-bit array
    rgba = np.concatenate([twelve_bit, np.full((*twelve_bit.shape[:2], 1), 65535, np.uint16)], axis=2)
    low, high = int(twelve_bit.min()), int(twelve_bit.max())  # 0 and 4080: a 10 % margin, 0 at the bottom
    expected = deblur(twelve_bit, tiny_model_path, value_range=(0, high + 0.1 * (high - low)))
    np.testing.assert_array_equal(deblur(twelve_bit, tiny_model_path, value_range="auto"), expected)
    out = deblur(rgba, tiny_model_path, value_range="auto")  # the opaque alpha (65535) does not count
    np.testing.assert_array_equal(out[..., :3], expected)
    lazy = deblur(da.from_array(rgba, chunks=256), tiny_model_path, value_range="auto").compute()
    assert np.abs(lazy[..., :3].astype(int) - expected).max() <= 2  # dask blocks: same range, same result
    assert not np.array_equal(expected, deblur(twelve_bit, tiny_model_path))  # the dtype range differs
    with pytest.raises(ValueError, match="value_range must be"):
        deblur(twelve_bit, tiny_model_path, value_range="full")


def test_a_rewritten_model_file_is_reloaded_and_replaces_the_old_copy(tmp_path) -> None:
    import os

    from conftest import _tiny_generator
    from napari_deblurgan.gan.model import weights
    from napari_deblurgan.gan.model.weights import save_generator

    path = save_generator(_tiny_generator(0), tmp_path / "run.safetensors")
    first = weights.load_model(path, "cpu")
    assert weights.load_model(path, "cpu") is first  # cached
    for seed in (1, 2):  # a training run exporting twice
        save_generator(_tiny_generator(seed), path)
        os.utime(path, (0, 1000 + seed))  # a new modification time even on coarse-clock file systems
        latest = weights.load_model(path, "cpu")
    assert latest is not first and not _same_weights(latest, first)
    assert [key for key in weights._CACHE if key[0] == str(path.resolve())] == [(str(path.resolve()), "cpu")]
    save_generator(_tiny_generator(3), path)
    os.utime(path, (0, 1002))  # the same time as the last export's (a 1-2 s clock): the file is still new
    assert not _same_weights(weights.load_model(path, "cpu"), latest)


def test_the_cache_keeps_the_models_used_last(tmp_path) -> None:
    from conftest import _tiny_generator
    from napari_deblurgan.gan.model import weights
    from napari_deblurgan.gan.model.weights import save_generator

    paths = [save_generator(_tiny_generator(i), tmp_path / f"m{i}.safetensors") for i in range(6)]
    for path in [*paths, paths[2]]:
        weights.load_model(path, "cpu")
    kept = [Path(file).name for file, _ in weights._CACHE]
    assert len(kept) == weights.CACHED_MODELS and kept[-2:] == ["m5.safetensors", "m2.safetensors"]
    assert "m0.safetensors" not in kept


def test_a_generator_in_training_mode_runs_as_an_eval_copy_and_a_wrong_device_is_named(tmp_path) -> None:
    """Dropout left on would make the output random and batch statistics would be updated: the caller's
    module must come back as it was, and the output be that of its eval mode."""
    import torch

    from napari_deblurgan.gan.model.generator import GeneratorConfig
    from napari_deblurgan.gan.model.networks import build_generator

    torch.manual_seed(0)
    net = build_generator(GeneratorConfig(ngf=8, n_blocks=1, norm="batch", dropout=0.5)).train()
    image = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    outputs = [deblur(image, net, refine=False) for _ in range(2)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    np.testing.assert_array_equal(outputs[0], deblur(image, net.eval(), refine=False))
    with pytest.raises(ValueError, match="CUDA is not available|not cuda"):
        deblur(image, net, device="cuda")  # an explicit device is checked, never ignored
    with pytest.raises(ValueError, match="Unknown device"):
        deblur(image, net, device="gpu0")


def _same_weights(a, b) -> bool:
    return all((p == q).all() for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_masked_array_is_refused_rather_than_its_mask_ignored(identity_model_path) -> None:
    image = np.ma.masked_greater(np.arange(64, dtype=np.uint16).reshape(8, 8), 60)
    image.data[image.mask] = 65535  # hidden values that would set the range of an own-range dtype
    with pytest.raises(TypeError, match=r"masked array.*image.filled"):
        deblur(image, identity_model_path)
    np.testing.assert_array_equal(deblur(image.filled(0), identity_model_path, refine=False), image.filled(0))


def test_frames_of_a_stack_go_through_the_network_together(tiny_model_path, natural_rgb, monkeypatch) -> None:
    """Frames that fit in one tile are batched (batch_size per forward pass) and come out as they do one
    at a time; progress still counts every frame's tile and refinement."""
    from napari_deblurgan.gan.restoration import pipeline, plane_runner

    stack = np.stack([np.roll(natural_rgb[:160, :200], 7 * t, axis=1) for t in range(5)])
    passes: list[int] = []
    refined: list[int] = []
    run = plane_runner.PlaneDeblurrer._run
    monkeypatch.setattr(
        plane_runner.PlaneDeblurrer, "_run", lambda self, batch: passes.append(len(batch)) or run(self, batch)
    )
    refine_frames = pipeline.refine_frames
    monkeypatch.setattr(pipeline, "refine_frames", lambda x, y, **k: refined.append(len(x)) or refine_frames(x, y, **k))
    monkeypatch.setattr(pipeline, "refines_together", lambda device: True)  # as on a GPU
    steps: list[tuple[int, int]] = []
    together = deblur(stack, tiny_model_path, batch_size=4, progress=lambda done, total: steps.append((done, total)))
    assert passes == [4, 1] and refined == [4]  # the refinement batches the same frames (the fifth: alone)
    assert steps[-1] == (10, 10) and [d for d, _ in steps] == list(range(1, 11))
    passes.clear()
    apart = deblur(stack, tiny_model_path, batch_size=1)
    assert passes == [1] * 5
    assert np.abs(together.astype(int) - apart).max() <= 1


def test_refinement_of_a_model_on_mps_runs_on_the_cpu(monkeypatch) -> None:
    """MPS has no float64, which the kernel estimates sum in: refinement there would raise after the network ran."""
    import torch

    from napari_deblurgan.gan.restoration import pipeline

    devices: list[torch.device] = []
    monkeypatch.setattr(pipeline, "refine_with_psf", lambda x, y, device: devices.append(device) or (y, None))
    together = lambda x, y, device: devices.append(device) or [(v, None) for v in y]  # noqa: E731
    monkeypatch.setattr(pipeline, "refine_frames", together)
    frames = [np.zeros((8, 8, 3), np.float32)] * 2
    pipeline._refined(frames, frames, torch.device("mps"))
    pipeline._refined(frames[:1], frames[:1], torch.device("cuda", 1))
    assert devices == [torch.device("cpu")] * 2 + [torch.device("cuda", 1)]


def test_frames_that_run_out_of_memory_together_go_one_at_a_time(tiny_model_path, natural_rgb, monkeypatch) -> None:
    import torch

    from napari_deblurgan.gan.restoration import plane_runner

    stack = np.stack([natural_rgb[:96, :128], natural_rgb[100:196, :128], natural_rgb[200:296, :128]])
    run = plane_runner.PlaneDeblurrer._run

    def no_room_for_two(self, batch):
        if len(batch) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return run(self, batch)

    monkeypatch.setattr(plane_runner.PlaneDeblurrer, "_run", no_room_for_two)
    out = deblur(stack, tiny_model_path, batch_size=4)
    expected = [deblur(frame, tiny_model_path) for frame in stack]
    assert np.abs(out.astype(int) - np.stack(expected)).max() <= 1


def test_progress_reaches_its_total_when_a_frame_of_a_group_needs_smaller_tiles(
    tiny_model_path, natural_rgb, monkeypatch
) -> None:
    import torch

    from napari_deblurgan.gan.restoration import plane_runner

    stack = np.stack([natural_rgb[:96, :128], natural_rgb[100:196, :128], natural_rgb[200:296, :128]])
    run = plane_runner.PlaneDeblurrer._run
    frames_run: list[int] = []

    def memory_fills_after_one_frame(self, batch):  # no room for two, then none for a whole frame
        if max(batch.shape[1:3]) > 100 and (len(batch) > 1 or frames_run):
            raise torch.OutOfMemoryError("CUDA out of memory")
        frames_run.append(len(batch))
        return run(self, batch)

    monkeypatch.setattr(plane_runner.PlaneDeblurrer, "_run", memory_fills_after_one_frame)
    calls: list[tuple[int, int]] = []
    with pytest.warns(RuntimeWarning, match="retrying with"):
        deblur(stack, tiny_model_path, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert len(frames_run) > 3  # the second and third frames ran in smaller tiles
    assert calls[-1][0] == calls[-1][1] and all(d <= t for d, t in calls)


def test_frames_whose_refinement_runs_out_of_memory_together_are_refined_one_at_a_time(
    identity_model_path, monkeypatch, ungated_refinement
) -> None:
    import skimage.data
    import torch
    from scipy import ndimage

    from napari_deblurgan.gan.restoration import pipeline

    camera = skimage.data.camera()[60:316, 100:356].astype(np.float32)
    stack = np.stack([ndimage.uniform_filter1d(camera, n, axis=1) for n in (7, 9)]).round().astype(np.uint8)
    refine_frames = pipeline.refine_frames
    sizes: list[int] = []

    def no_room_for_two(x, y, **kwargs):
        sizes.append(len(x))
        if len(x) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return refine_frames(x, y, **kwargs)

    monkeypatch.setattr(pipeline, "refine_frames", no_room_for_two)
    monkeypatch.setattr(pipeline, "refines_together", lambda device: True)  # as on a GPU
    out = deblur(stack, identity_model_path, batch_size=2)
    assert sizes == [2]  # then one at a time, by refine
    expected = np.stack([deblur(frame, identity_model_path) for frame in stack])
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out.astype(int) - stack).mean() > 1  # refined: the PSF's deconvolution changed them
