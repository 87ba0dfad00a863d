"""PSF refinement: the PSF estimate, the regularised deconvolution and the safeguards around them."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio
from skimage.transform import rescale

from napari_deblurgan.gan.data.blur import blur_image, motion_kernels
from napari_deblurgan.gan.restoration import psf_refine
from napari_deblurgan.gan.restoration.psf_refine import (
    KERNEL_SIZE,
    STILL_CHANGE,
    STILL_WIDTH,
    border_weights,
    coarse_change,
    deconvolve,
    estimate_psf,
    point_psf,
    radius_of_gyration,
    refine,
    sharp_input_share,
)


@pytest.fixture(scope="module")
def case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sharp, blurred, psf): a camera crop with a 12-16 px random camera-shake PSF and mild noise."""
    rng = np.random.default_rng(5)
    sharp = skimage.data.camera()[60:316, 100:356].astype(np.float32) / 255
    psf = motion_kernels(rng, 1, (12.0, 16.0))[0]
    return sharp, blur_image(sharp, psf, 0.005, rng).astype(np.float32), psf


@pytest.fixture(scope="module")
def light_blur(case) -> np.ndarray:
    """``case``'s sharp crop blurred by its PSF in linear light (values ** 2.2), as a camera's exposure
    blurs, then stored with a 2.2 response and mild noise."""
    sharp, _, psf = case
    rng = np.random.default_rng(3)
    blurred = blur_image(sharp**2.2, psf, 0.0, rng) ** (1 / 2.2) + rng.normal(0, 0.005, sharp.shape)
    return np.clip(blurred, 0, 1).astype(np.float32)


def T(array: np.ndarray) -> torch.Tensor:
    """A float32 tensor of ``array``: the refinement's internals work on tensors."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _centred(psf: np.ndarray, size: int = KERNEL_SIZE) -> np.ndarray:
    return np.pad(psf, (size - psf.shape[0]) // 2)


def test_estimate_psf_recovers_the_blur_from_a_sharp_latent(case) -> None:
    sharp, blurred, psf = case
    estimate = estimate_psf(T(blurred), T(sharp))
    assert estimate.shape == (KERNEL_SIZE, KERNEL_SIZE) and estimate.sum() == pytest.approx(1, abs=1e-5)
    truth = _centred(psf)
    correlation = (estimate * truth).sum() / np.sqrt((estimate**2).sum() * (truth**2).sum())
    assert correlation > 0.9
    assert radius_of_gyration(estimate) == pytest.approx(radius_of_gyration(truth), abs=0.5)


def test_deconvolving_by_the_true_psf_restores_detail_without_a_shift(case) -> None:
    sharp, blurred, psf = case
    restored = deconvolve(T(blurred), T(blurred), psf).numpy()
    assert peak_signal_noise_ratio(sharp, restored, data_range=1) > peak_signal_noise_ratio(sharp, blurred) + 4
    unchanged = deconvolve(
        T(sharp), T(sharp), point_psf(), tv_weight=0
    ).numpy()  # no blur, no smoothing: the image itself
    np.testing.assert_allclose(unchanged, sharp, atol=1e-4)


@pytest.mark.parametrize("shape", ["camera shake", "straight line"])
def test_large_planes_are_deconvolved_in_tiles_that_match_the_whole(case, monkeypatch, shape) -> None:
    _, blurred, psf = case
    if shape == "straight line":  # rings furthest from a cut: the hardest case for tiles
        psf = np.zeros((KERNEL_SIZE, KERNEL_SIZE), np.float32)
        psf[20, 5:36] = 1 / 31
    colour = T(np.stack([blurred, blurred[::-1], blurred[:, ::-1]], axis=2)[:200, :150])
    whole = deconvolve(colour, colour, _centred(psf)).numpy()  # estimates come as 41 px
    monkeypatch.setattr(psf_refine, "DECONVOLVE_TILE", 64)
    tiled = deconvolve(colour, colour, _centred(psf)).numpy()
    # total variation is not linear, so tiles differ a little near their cuts (as the generator's tiles do)
    assert np.abs(whole - tiled).max() < 3 / 255 and np.abs(whole - tiled).mean() < 0.2 / 255


def test_a_lopsided_psf_is_centred_without_wrapping_around() -> None:
    path = np.zeros((KERNEL_SIZE, KERNEL_SIZE))
    path[20, 3:38] = 1
    path[20, 33:38] = 6  # half the mass in the last 5 px: the centre of mass is 6 px right of the middle
    centred = psf_refine._clean_psf(path, threshold=0.0)
    columns = np.nonzero(centred[20])[0]
    assert (columns.min(), columns.max()) == (0, 31)  # moved 6 px left; the 3 px beyond the edge dropped
    assert centred.sum() == pytest.approx(1) and centred[20, 27:32].min() > centred[20, 0]


def test_psfs_are_centred_to_a_fraction_of_a_pixel() -> None:
    path = np.zeros((KERNEL_SIZE, KERNEL_SIZE))
    path[18, 15:24] = 1
    path[19, 22:26] = 2  # centre of mass 1.53 px up and 1.12 px right of the middle: whole pixels leave 0.5
    centred = psf_refine._clean_psf(path, threshold=0.0)
    ys, xs = np.mgrid[:KERNEL_SIZE, :KERNEL_SIZE] - KERNEL_SIZE // 2
    assert abs((centred * ys).sum()) < 0.01 and abs((centred * xs).sum()) < 0.01


def _noisy_sharp(case) -> np.ndarray:
    """``case``'s sharp crop with mild noise (sigma 0.01): an input with no blur to remove."""
    sharp, _, _ = case
    return (sharp + np.random.default_rng(0).normal(0, 0.01, sharp.shape)).astype(np.float32)


def test_small_inputs_keep_the_generator_output(case) -> None:
    small = _noisy_sharp(case)[: 3 * KERNEL_SIZE - 1]
    out, psf = refine(small, small)
    assert out is small and radius_of_gyration(psf) == 0


def test_a_sharp_input_keeps_the_input_rather_than_the_generators_sharpening(case) -> None:
    from scipy import ndimage

    sharp = case[0]
    noisy = _noisy_sharp(case)
    # as the shipped network sharpens sharp photos: fine detail only
    sharpened = np.clip(noisy + 0.3 * (noisy - ndimage.gaussian_filter(noisy, 0.7)), 0, 1).astype(np.float32)
    out, psf = refine(noisy, sharpened)
    assert radius_of_gyration(psf) < STILL_WIDTH[0] + 0.05  # no blur found
    assert np.linalg.norm(out - noisy) < 0.1 * np.linalg.norm(sharpened - noisy)
    psnr = {
        name: peak_signal_noise_ratio(sharp, x, data_range=1) for name, x in (("out", out), ("generator", sharpened))
    }
    assert psnr["out"] > psnr["generator"] + 1


def test_a_generator_that_moves_coarse_structure_of_a_sharp_looking_input_is_kept(case) -> None:
    noisy = _noisy_sharp(case)
    ys, xs = np.mgrid[: noisy.shape[0], : noisy.shape[1]]
    blob = 0.08 * np.exp(-((ys - 128.0) ** 2 + (xs - 100.0) ** 2) / (2 * 20.0**2))  # a moving subject, say
    moved = (noisy + blob).astype(np.float32)
    assert coarse_change(T(noisy)[None], T(moved)[None])[0] > STILL_CHANGE[1]
    # the same subject in a frame 16 times larger: measured where it is, not diluted by the frame
    large_still, large_moved = (np.pad(a, ((0, 768), (0, 768)), mode="reflect") for a in (noisy, moved))
    assert coarse_change(T(large_still)[None], T(large_moved)[None])[0] > STILL_CHANGE[1]
    # ... and where it is past the last whole block counted from the top left (bottom right of 300^2)
    edge_still, edge_moved = (
        np.pad(a, ((0, 300 - a.shape[0]), (0, 300 - a.shape[1])), mode="reflect") for a in (noisy, noisy)
    )
    edge_moved = edge_moved.copy()
    edge_moved[-64:, -64:] += 0.08 * np.exp(-((ys[:64, :64] - 44.0) ** 2 + (xs[:64, :64] - 44.0) ** 2) / (2 * 12.0**2))
    assert coarse_change(T(edge_still)[None], T(edge_moved.astype(np.float32))[None])[0] > STILL_CHANGE[1]
    out, _ = refine(noisy, moved)
    np.testing.assert_allclose(out, moved, atol=1e-6)


def test_the_sharp_input_share_grows_with_either_sign_of_blur() -> None:
    point, wide = point_psf(), _centred(np.full((1, 9), 1 / 9))  # radius of gyration 0 and 2.6 px
    fine, broad = STILL_CHANGE
    assert sharp_input_share(point, fine) == 0 and sharp_input_share(point, broad) == 1
    assert sharp_input_share(point, (fine + broad) / 2) == pytest.approx(0.5)
    assert sharp_input_share(wide, 0.0) == 1 and sharp_input_share(point, float("nan")) == 1


def test_refinement_is_the_same_on_gray_and_on_gray_rgb(case) -> None:
    _, blurred, _ = case
    stand_in = np.clip(2 * blurred - np.roll(blurred, 1, axis=1), 0, 1)  # any sharper-looking output
    gray, psf_gray = refine(blurred, stand_in)
    rgb, psf_rgb = refine(np.repeat(blurred[..., None], 3, 2), np.repeat(stand_in[..., None], 3, 2))
    np.testing.assert_allclose(psf_gray, psf_rgb, atol=1e-5)
    for c in range(3):
        np.testing.assert_allclose(rgb[..., c], gray, atol=1e-5)  # no colour cast


def test_border_weights_fade_the_refinement_out_at_the_frame_edges() -> None:
    psf = np.zeros((KERNEL_SIZE, KERNEL_SIZE), np.float32)
    psf[20, 11:30] = 1 / 19  # horizontal, 19 px: reaches 9 px beyond the left and right edges, 0 up and down
    weights = border_weights((100, 120), psf).numpy()
    assert weights[:, 0].max() == 0 and weights[0].max() == 0
    assert weights[50, 11] == 1 and weights[50, 10] < 1 and weights[2, 60] == 1 and weights[1, 60] < 1
    assert weights[50, 119 - 11] == 1 and weights[50, 119 - 10] < 1
    assert (np.diff(weights[50, :60]) >= 0).all()


def test_border_weights_fade_in_per_side_as_far_as_the_psf_reaches_beyond_that_edge() -> None:
    psf = np.zeros((KERNEL_SIZE, KERNEL_SIZE), np.float32)
    psf[20, 20:35] = 1 / 15  # from the centre to the right: y(x) = sum_t k(t) x(x - t) draws on x - 14 .. x
    weights = border_weights((100, 120), psf).numpy()
    assert weights[50, 16] == 1 and weights[50, 15] < 1  # the left edge: content up to 14 px beyond it
    assert weights[50, 119 - 2] == 1 and weights[50, 119 - 1] < 1  # the right edge: none


@pytest.mark.parametrize(("converged", "estimates"), [(0.0, 7), (2.0, 1)])
def test_the_estimates_stop_once_the_psf_settles(case, monkeypatch, converged, estimates) -> None:
    _, blurred, _ = case
    calls = []
    start = psf_refine.estimate_psf(T(blurred), T(blurred))
    estimate = psf_refine.estimate_psfs
    monkeypatch.setattr(psf_refine, "estimate_psfs", lambda *a, **k: calls.append(1) or estimate(*a, **k))
    monkeypatch.setattr(psf_refine, "CONVERGED", converged)  # 2: any change (two PSFs differ by at most 2)
    psf_refine.settle(T(blurred), T(blurred), start, steps=7)
    assert len(calls) == estimates


def test_wide_structures_leave_out_thin_lines_and_keep_wide_edges() -> None:
    image = np.zeros((64, 96), np.float32)
    image[:, 20:22] = 1  # a 2 px line: its two edges' gradients cancel in a 9 px window
    image[:, 60:] = 1  # a step: the edge of a wide structure
    wide = psf_refine.wide_structures(T(image)).numpy()
    assert not wide[32, 19] and not wide[32, 21]  # the line's edges (forward differences at 19 and 21)
    assert wide[32, 59]


def test_the_true_psf_explains_the_input_better_than_a_shorter_one(case) -> None:
    sharp, blurred, psf = case
    truth = _centred(psf)
    shorter = np.zeros_like(truth)
    shorter[20, 17:24] = 1 / 7
    residuals = [psf_refine.reblur_residual(T(blurred), T(sharp), k) for k in (truth, shorter)]
    assert residuals[0] < residuals[1] / 2  # measured 2.3e-5 and 8.7e-5


def test_the_coarse_to_fine_start_finds_the_blur_from_a_sharp_latent(case) -> None:
    sharp, blurred, psf = case
    start = psf_refine._coarse_start(T(blurred), T(sharp), KERNEL_SIZE)
    truth = _centred(psf)
    assert start.shape == truth.shape and start.sum() == pytest.approx(1, abs=1e-5)
    assert radius_of_gyration(start) == pytest.approx(radius_of_gyration(truth), rel=0.25)


def test_refine_uses_the_trusted_estimate_that_best_explains_the_input(case, monkeypatch) -> None:
    _, blurred, _ = case
    stand_in = np.clip(2 * blurred - np.roll(blurred, 1, axis=1), 0, 1)
    residuals: list[tuple[float, np.ndarray]] = []
    measure = psf_refine._reblur_residuals

    def measured(b, r, psfs):
        values = measure(b, r, psfs)
        residuals.extend(zip(values, psfs))
        return values

    monkeypatch.setattr(psf_refine, "_reblur_residuals", measured)
    _, psf = refine(blurred, stand_in)
    assert len(residuals) == 3  # one per start: strongest edges, coarse to fine, wide structures
    best = min(residuals, key=lambda pair: pair[0])[1]
    np.testing.assert_array_equal(psf, best)


def test_psfs_that_fill_their_window_or_disagree_with_the_cross_check_are_unreliable() -> None:
    streak = np.zeros((KERNEL_SIZE, KERNEL_SIZE), np.float32)
    streak[1:40, 20] = 1 / 39  # 39 px tall: within 1 px of the top and bottom
    assert psf_refine.fills_window(streak) and psf_refine.unreliable(streak, streak)
    path = _centred(motion_kernels(np.random.default_rng(2), 1, (30.0, 35.0))[0])
    assert not psf_refine.fills_window(path) and not psf_refine.unreliable(path, path)
    shorter = np.zeros_like(path)
    shorter[20, 17:24] = 1 / 7
    assert psf_refine.unreliable(path, shorter)  # wider than 1.3 times the cross-check
    assert not psf_refine.unreliable(shorter, path)


def test_an_estimate_that_diverges_on_a_brick_wall_keeps_the_generator_output(monkeypatch, request) -> None:
    rng = np.random.default_rng(1)
    sharp = skimage.data.brick().astype(np.float32) / 255
    blurred = blur_image(sharp, motion_kernels(rng, 1, (8.0, 10.0))[0], 0.01, rng).astype(np.float32)
    out, psf = refine(blurred, blurred)  # a generator that removed nothing: the worst guide
    assert out is blurred
    assert radius_of_gyration(psf) > 5  # diverged: an 8-10 px path's is about 2.5
    monkeypatch.setattr(psf_refine, "unreliable", lambda psf, cross_check: False)
    request.getfixturevalue("ungated_refinement")  # the agreement and direction gates catch this guide too
    unguarded, _ = refine(blurred, blurred)
    blurred_psnr = peak_signal_noise_ratio(sharp, blurred, data_range=1)
    assert peak_signal_noise_ratio(sharp, np.clip(unguarded, 0, 1), data_range=1) < blurred_psnr - 5  # measured -7.2


def _odd_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    impulse = np.zeros((130, 141), np.float32)
    impulse[60, 70] = 1
    checker = (np.indices((131, 140)).sum(axis=0) % 2).astype(np.uint8) * 255
    step = np.zeros((150, 133), np.uint16)
    step[:, 66:] = 65535
    return {
        "constant": np.full((128, 128), 0.5, np.float32),
        "impulse": impulse,
        "noise": rng.integers(0, 256, (140, 129, 3), dtype=np.uint8),
        "checker": checker,
        "saturated step, 16-bit": step,
    }


@pytest.mark.parametrize("name", list(_odd_images()))
def test_refinement_of_odd_images_stays_finite_and_in_range(name, identity_model_path) -> None:
    from napari_deblurgan import deblur

    image = _odd_images()[name]  # large enough to be refined (3 PSF sides), unlike the Hypothesis cases
    out = deblur(image, identity_model_path)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.isfinite(out).all() and out.min() >= image.min() and out.max() <= image.max()
    if name == "constant":
        np.testing.assert_array_equal(out, image)  # nothing to estimate a PSF from: unchanged


def test_psfs_settled_side_by_side_are_the_ones_settled_alone(case) -> None:
    """The three starts settle in one batch (and stop one by one): each ends where it would alone."""
    sharp, blurred, psf = case
    b, g = T(blurred), T((sharp + blurred) / 2)
    starts = [psf_refine.estimate_psf(b, T(sharp)), _centred(psf), psf_refine.point_psf()]
    usable = torch.stack([torch.ones_like(b), psf_refine.wide_structures(b).float(), torch.ones_like(b)])
    together = psf_refine._settle_many(b[None], g[None], starts, 5, usable)
    for start, mask, got in zip(starts, usable, together, strict=True):
        np.testing.assert_allclose(got, psf_refine.settle(b, g, start, 5, mask), atol=1e-6)
    residuals = psf_refine._reblur_residuals(b[None], g[None], together)
    assert residuals == pytest.approx([psf_refine.reblur_residual(b, g, k) for k in together], rel=1e-5)


def test_the_total_variation_step_is_the_rolled_differences_adjoint() -> None:
    """The splitting's w-step, written with slices, is D^T of the soft-thresholded circular differences
    as written with torch.roll, to the bit, on an odd-sized stack of planes."""
    x = torch.rand(2, 7, 10, generator=torch.Generator().manual_seed(3))
    expected = torch.zeros_like(x)
    for axis in (-2, -1):
        diff = torch.nn.functional.softshrink(torch.roll(x, -1, dims=axis) - x, 0.1)
        expected += torch.roll(diff, 1, dims=axis) - diff
    assert torch.equal(psf_refine._shrunk_differences_adjoint(x, 0.1), expected)
    for axis in (-2, -1):
        for shift in (-1, 1):
            assert torch.equal(psf_refine._rolled_minus(x, axis, shift), torch.roll(x, shift, dims=axis) - x)


def test_the_filters_are_scipys_and_skimages() -> None:
    """The refinement's filters in torch (so they run on the model's device) compute what the scipy and
    scikit-image filters they replace did, on an odd-sized plane, borders included."""
    from scipy import ndimage
    from skimage import transform

    from napari_deblurgan.gan.filters import gaussian_filter

    image = skimage.data.camera()[:301, :257].astype(np.float32) / 255
    for sigma in (0.5, 1.0):
        expected = ndimage.gaussian_filter(image, sigma, truncate=2.0)
        np.testing.assert_allclose(gaussian_filter(T(image), sigma, 2.0), expected, atol=1e-6)
    small = image[:7, :9]  # taps none each side (sigma 0.1), and reaching past the far side (sigma 4)
    for sigma in (0.1, 4.0):
        expected = ndimage.gaussian_filter(small, sigma, truncate=3.0)
        np.testing.assert_allclose(gaussian_filter(T(small), sigma, 3.0), expected, atol=1e-6)
    np.testing.assert_allclose(psf_refine._laplace(T(image)), ndimage.laplace(image), atol=1e-6)
    half = transform.rescale(image, 0.5, order=1, anti_aliasing=True, preserve_range=True)
    np.testing.assert_allclose(psf_refine._half_scale(T(image)), half, atol=1e-5)
    box = ndimage.uniform_filter(image.astype(np.float64), 9) * 81
    np.testing.assert_allclose(psf_refine._box_sum(T(image)[None], 9)[0], box, atol=1e-4)
    ramp = np.pad(image, 41, mode="linear_ramp")
    np.testing.assert_allclose(psf_refine._pad_linear_ramp(T(image), 41), ramp, atol=1e-6)
    for q in (0.0, 0.5, 0.98, 1.0):
        got = psf_refine._quantile(T(image).reshape(1, -1), q)
        assert float(got[0]) == pytest.approx(float(np.quantile(image, q)), abs=1e-7)


def test_blur_that_varies_across_the_frame_is_told_from_one_kernel() -> None:
    """One PSF explains every corner of a uniformly blurred frame; where the left half moved sideways
    and the right half up and down (a subject moving over a still background does that), it does not,
    and refine keeps the generator's output."""
    from napari_deblurgan.gan.data.blur import linear_kernel

    rng = np.random.default_rng(8)
    sharp = skimage.data.camera().astype(np.float32) / 255  # 512 x 512: corner regions of 256 px
    across, down = linear_kernel(14, 0, KERNEL_SIZE), linear_kernel(14, 90, KERNEL_SIZE)
    uniform = blur_image(sharp, across, 0.005, rng)
    split = uniform.copy()
    split[:, 256:] = blur_image(sharp, down, 0.005, rng)[:, 256:]
    assert not psf_refine.varies_across_frame(T(uniform), T(sharp), across)
    assert psf_refine.varies_across_frame(T(split), T(sharp), across)
    refined, _ = refine(split, sharp)
    assert np.array_equal(refined, sharp)
    assert not psf_refine.varies_across_frame(T(split[:300, :300]), T(sharp[:300, :300]), across)  # too small to check


def test_refine_keeps_the_generators_output_where_the_psf_explains_too_little_of_its_change(case) -> None:
    """Blur that is one convolution, restored by the generator fully or half way: the true PSF explains
    nearly all of the change. The same PSF over light blurred in linear intensities with highlights
    clipped (what an overexposed camera records): it explains too little of it, and refine keeps the
    output."""
    sharp, blurred, psf = case
    truth = _centred(psf)
    assert psf_refine.unexplained(T(blurred), T(sharp), truth) < 0.05  # measured 0.0025
    assert psf_refine.unexplained(T(blurred), T((sharp + blurred) / 2), truth) < 0.2  # 0.096
    linear = np.clip(blur_image(3 * sharp**2.2, psf, 0.0, np.random.default_rng(0)), 0, 1) ** (1 / 2.2)
    camera = linear.astype(np.float32)
    assert psf_refine.unexplained(T(camera), T(sharp), truth) > psf_refine.AGREEMENT[1]  # 0.85
    refined, estimated = refine(camera, sharp)
    assert refined is sharp and psf_refine.unexplained(T(camera), T(sharp), estimated) > psf_refine.AGREEMENT[1]


def test_the_deconvolutions_weight_falls_gradually_as_the_psf_explains_less(case, monkeypatch) -> None:
    """Between the two agreement levels the result moves from the deconvolution towards the generator's
    output in proportion: a frame whose share sits near a level is not flipped between the two."""
    assert [psf_refine.agreement_weight(s) for s in (0.0, 0.3, 0.55, 0.8, 2.0)] == pytest.approx([1, 1, 0.5, 0, 0])
    sharp, blurred, _ = case
    restored = (sharp + blurred) / 2  # a generator that removed half the blur
    full, psf = refine(blurred, restored)
    share = psf_refine.unexplained(T(blurred), T(restored), psf)
    assert share < psf_refine.AGREEMENT[0] and np.abs(full - restored).mean() > 0.01
    monkeypatch.setattr(psf_refine, "AGREEMENT", (share - 0.1, share + 0.3))  # a quarter of the way: weight 3/4
    partial, same_psf = refine(blurred, restored)
    np.testing.assert_array_equal(same_psf, psf)
    np.testing.assert_allclose(partial - restored, 0.75 * (full - restored), atol=1e-5)


def test_blur_that_grows_towards_the_corners_counts_as_varying(monkeypatch) -> None:
    """Camera roll: the blur grows with the distance from the frame's centre (here 5 px at the centre to
    17 px in the corners, one direction). Each corner's own PSF comes out wider than the frame's, which
    the residual check alone misses; refine keeps the generator's output."""
    from napari_deblurgan.gan.data.blur import linear_kernel

    rng = np.random.default_rng(8)
    sharp = rescale(skimage.data.camera().astype(np.float32) / 255, 2, order=1)  # corners of 320 px
    yy, xx = np.mgrid[:1024, :1024]
    band = np.clip(np.round(np.hypot(yy - 511.5, xx - 511.5) / 724 * 4), 0, 4).astype(int)
    blurs = [blur_image(sharp, linear_kernel(length, 30, KERNEL_SIZE), 0.005, rng) for length in (5, 8, 11, 14, 17)]
    grown = np.choose(band, blurs).astype(np.float32)
    psf = psf_refine.settle(T(grown), T(sharp), estimate_psf(T(grown), T(sharp)), 4)
    assert psf_refine.varies_across_frame(T(grown), T(sharp), psf)
    monkeypatch.setattr(psf_refine, "WIDER_IN_CORNERS", float("inf"))
    assert not psf_refine.varies_across_frame(T(grown), T(sharp), psf)
    monkeypatch.undo()
    refined, _ = refine(grown, sharp)
    assert np.array_equal(refined, sharp)


def test_frames_refined_together_are_the_ones_refined_alone() -> None:
    """A stack's frames take their own decisions in one batch: a blurred frame is deconvolved, a frame
    whose blur varies across it keeps the generator's output and a sharp one its input, each as it would
    alone."""
    from napari_deblurgan.gan.data.blur import linear_kernel

    rng = np.random.default_rng(8)
    sharp = skimage.data.camera().astype(np.float32) / 255
    across, down = linear_kernel(14, 0, KERNEL_SIZE), linear_kernel(14, 90, KERNEL_SIZE)
    uniform = blur_image(sharp, across, 0.005, rng).astype(np.float32)
    split = uniform.copy()
    split[:, 256:] = blur_image(sharp, down, 0.005, rng)[:, 256:]
    noisy = (sharp + rng.normal(0, 0.01, sharp.shape)).astype(np.float32)
    blurred = [uniform, split, noisy]
    restored = [np.clip(0.5 * (sharp + uniform), 0, 1), sharp, noisy]
    together = psf_refine.refine_frames(blurred, restored)
    for (out, psf), b, r in zip(together, blurred, restored, strict=True):
        alone, psf_alone = refine(b, r)
        np.testing.assert_allclose(psf, psf_alone, atol=1e-6)
        np.testing.assert_allclose(out, alone, atol=1e-5)
    assert not np.array_equal(together[0][0], restored[0])  # deconvolved
    assert together[1][0] is restored[1]  # the generator's output kept
    np.testing.assert_array_equal(together[2][0], blurred[2])  # the sharp input kept


def test_the_blurs_variation_across_the_frame_is_checked_once_in_display_values(case, light_blur, monkeypatch) -> None:
    """The linear-light estimate of a frame is not checked for varying blur again (the corners' own PSFs
    cost about 0.25 s a 1 MP frame): a frame found uniform in display values is refined in linear light
    on the linear PSF's agreement alone, and a frame found varying keeps the generator's output."""
    sharp = case[0]
    y, g = T(light_blur)[None], T((sharp + light_blur) / 2)[None]
    checked: list[int] = []
    for varies in (False, True):
        monkeypatch.setattr(
            psf_refine, "_varies_across_frames", lambda b, r, psfs, v=varies: checked.append(len(psfs)) or [v]
        )
        [(_, weight, linear)] = psf_refine._choose_psfs(y, g, KERNEL_SIZE, 8)
        assert (weight > 0 and linear) if not varies else (weight == 0 and not linear)
    assert checked == [1, 1]  # once per call: in display values


def test_blur_of_light_is_refined_in_linear_light(case, light_blur, monkeypatch) -> None:
    """A camera's blur averages light, not the stored (gamma-encoded) values: there the PSF estimated in
    linear light explains the generator's change far better than the one estimated on stored values,
    and refine deconvolves in linear light, where refining the stored values would undo the generator's
    work (measured 27.2 dB against 23.8; the generator's half-way output 26.9). Blur of the stored
    values themselves stays there."""
    sharp, stored_blur, _ = case
    half_way = lambda blurred: ((sharp + blurred) / 2).astype(np.float32)  # noqa: E731 (half the blur removed)
    for blurred, in_linear in ((light_blur, True), (stored_blur, False)):
        [(_, weight, linear)] = psf_refine._choose_psfs(T(blurred)[None], T(half_way(blurred))[None], KERNEL_SIZE, 8)
        assert weight > 0 and linear is in_linear
    restored = half_way(light_blur)
    refined, _ = refine(light_blur, restored)
    monkeypatch.setattr(psf_refine, "LINEAR_PREFERENCE", 0.0)
    in_stored_values, _ = refine(light_blur, restored)
    psnr = lambda image: peak_signal_noise_ratio(sharp, np.clip(image, 0, 1), data_range=1)  # noqa: E731
    assert psnr(refined) > psnr(restored) > psnr(in_stored_values) + 2


def test_a_deconvolution_that_moves_the_image_elsewhere_than_the_generator_did_is_not_used(case) -> None:
    """The generator removed half the blur. Deconvolved by the true PSF, the image moves the way the
    generator moved it, only further (cosine 0.95); by a PSF of the same length in another direction
    it moves elsewhere (0.11-0.16), and that deconvolution would get none of its weight."""
    from napari_deblurgan.gan.data.blur import linear_kernel

    sharp, blurred, psf = case
    y, g = T(blurred)[None], T((sharp + blurred) / 2)[None]

    def agreement(kernel: np.ndarray) -> float:
        return psf_refine.change_agreement(y, g, psf_refine.blend_deconvolution(y, g, [kernel]))[0]

    assert agreement(_centred(psf)) > psf_refine.DIRECTION[1]
    for angle in (0, 45, 90):
        assert agreement(linear_kernel(14, angle, KERNEL_SIZE)) < psf_refine.DIRECTION[0]
    assert psf_refine.change_agreement(y, g, g)[0] == pytest.approx(1)
    assert psf_refine.change_agreement(y, g, 2 * y - g)[0] == pytest.approx(-1)
    weights = [psf_refine.direction_weight(a) for a in (-1, 0.35, 0.45, 0.55, 1, float("nan"))]
    assert weights == pytest.approx([0, 0, 0.5, 1, 1, 0])


def test_the_deconvolutions_weight_falls_gradually_as_its_change_agrees_less_with_the_generators(
    case, monkeypatch
) -> None:
    """Between the two direction levels the deconvolution's weight falls in proportion; below the first
    the generator's output is kept as it is."""
    sharp, blurred, _ = case
    restored = ((sharp + blurred) / 2).astype(np.float32)
    full, psf = refine(blurred, restored)
    [agreement] = psf_refine.change_agreement(T(blurred)[None], T(restored)[None], T(full)[None])
    assert agreement > psf_refine.DIRECTION[1] and np.abs(full - restored).mean() > 0.01
    monkeypatch.setattr(psf_refine, "DIRECTION", (agreement - 0.3, agreement + 0.1))  # weight 3/4
    partial, same_psf = refine(blurred, restored)
    np.testing.assert_array_equal(same_psf, psf)
    np.testing.assert_allclose(partial - restored, 0.75 * (full - restored), atol=1e-5)
    monkeypatch.setattr(psf_refine, "DIRECTION", (agreement + 0.01, agreement + 0.2))
    assert refine(blurred, restored)[0] is restored
