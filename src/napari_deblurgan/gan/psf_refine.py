"""PSF refinement: the generator's output guides an estimate of the blur kernel (PSF), then the blurred
image is deconvolved with that PSF, regularised towards the generator's output.

The generator alone removes only part of a long blur and paints fine texture flat; deconvolution with the
true PSF does far better but needs the PSF. Here the generator's output stands in for the sharp image
while the PSF is estimated, in the gradient domain on its strongest (shock-filtered) edges (Cho and Lee
2009), up to eight times over, each time from the latest deconvolved estimate. Three such estimates
start from different evidence (all strong edges; the same at half resolution first; only edges of
structures wider than a thin line, Xu and Jia 2010), and the one whose deconvolution, blurred again,
comes closest to the input is used. Every deconvolution solves

    min_x |k * x - y|^2 + prior_weight |x - g|^2 + tv_weight |grad x|_1

(y blurred, g the generator's output, k the PSF) by half-quadratic splitting (Krishnan and Fergus
2009: a few rounds of soft-thresholding the gradients and solving in Fourier space): where the PSF
keeps a frequency, the data decide; where it erases one, the generator's output fills it in; the
total-variation term keeps flat regions flat, so edges do not ring. A PSF that comes out nearly a
point (the input had little blur to remove) hands the result back to the generator, so sharp inputs
are not sharpened further. From each edge of the frame the refinement fades in over as far as the PSF
reaches beyond that edge: there the blur drew on content outside the frame, and deconvolution would
ring. The blur is taken as one PSF per plane (uniform camera shake); where it visibly is not, the
generator's output is kept: where the PSF explains too little of what the generator changed
(:func:`unexplained`), or a corner region of the frame is explained much better by a PSF of its own
(:func:`varies_across_frame`). The dask path of ``deblur`` estimates one per block.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import fft, ndimage
from skimage import transform

from .images import centre_crop

FloatArray = NDArray[np.float32]

#: Side of the estimated PSF (pixels): blur paths up to about 35 px fit inside it.
KERNEL_SIZE = 41
#: Largest square (pixels) of the plane's centre used to estimate the PSF (0.4 MP: enough edges in
#: photos, and the estimate's cost stops growing with the image).
ESTIMATE_WINDOW = 640
#: Planes larger than this per side are deconvolved in tiles of this size (bounded memory).
DECONVOLVE_TILE = 2048
#: Radius of gyration (px) of the PSF below which the generator's output is kept, and above which the
#: deconvolution is; linear in between. Sharp inputs give 0.7-1.0 px, 8-10 px blur paths 1.6 px or more.
POINT_LIKE, BLUR_LIKE = 1.1, 1.5


def shock_filter(image: FloatArray, iterations: int = 3, step: float = 0.5, sigma: float = 1.0) -> FloatArray:
    """Osher-Rudin shock filter: steepens blurry edges into steps (the sign of a smoothed Laplacian
    decides which way each pixel moves). Gaussians are cut at 2 sigma (5 taps for sigma 1): as good
    on the validation set as 4 sigma and 5 iterations, in half the time."""
    out = ndimage.gaussian_filter(image, 0.5, truncate=2.0)
    for _ in range(iterations):
        laplacian = ndimage.laplace(ndimage.gaussian_filter(out, sigma, truncate=2.0))
        gy, gx = _central_gradients(out)
        out = out - step * np.sign(laplacian) * np.sqrt(gx * gx + gy * gy)
    return out


def _central_gradients(image: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``np.gradient(image)`` (central differences, one-sided at the edges), 8x faster on float32."""
    gy, gx = np.empty_like(image), np.empty_like(image)
    gy[1:-1] = image[2:] - image[:-2]
    gy[1:-1] *= 0.5
    gy[0], gy[-1] = image[1] - image[0], image[-1] - image[-2]
    gx[:, 1:-1] = image[:, 2:] - image[:, :-2]
    gx[:, 1:-1] *= 0.5
    gx[:, 0], gx[:, -1] = image[:, 1] - image[:, 0], image[:, -1] - image[:, -2]
    return gy, gx


def _gradients(image: FloatArray) -> tuple[FloatArray, FloatArray]:
    gx = np.zeros_like(image)
    gy = np.zeros_like(image)
    gx[:, :-1] = image[:, 1:] - image[:, :-1]
    gy[:-1] = image[1:] - image[:-1]
    return gx, gy


def estimate_psf(
    blurred: FloatArray,
    latent: FloatArray,
    size: int = KERNEL_SIZE,
    keep: float = 0.02,
    regularisation: float = 1e-2,
    threshold: float = 0.1,
    usable: NDArray[np.bool_] | None = None,
) -> FloatArray:
    """The (size, size) PSF that best blurs ``latent`` into ``blurred`` (2D gray planes, same shape).

    Least squares on image gradients, only where ``latent``'s gradients are in its strongest ``keep``
    share (strong edges constrain a PSF best; of the ``usable`` pixels only, if given), solved in
    Fourier space with Tikhonov ``regularisation`` (relative to the mean spectral energy). Then: values
    below ``threshold`` of the peak are dropped, only the connected part holding most of the mass is
    kept, and the PSF is normalised to sum 1 and centred on its centre of mass (so deconvolving with it
    does not shift the image).
    """
    h, w = blurred.shape
    margin = min(size, h // 4, w // 4)
    inside = np.zeros((h, w), dtype=np.float32)
    inside[margin : h - margin, margin : w - margin] = 1
    latent_grads, blurred_grads = _gradients(latent), _gradients(blurred)
    magnitude = np.hypot(*latent_grads)
    if usable is not None:
        magnitude *= usable
    strong = magnitude >= np.quantile(magnitude[inside > 0], 1 - keep)
    shape = _fast_shape(h, w)  # zero padding is harmless: the gradients are masked to the inside anyway
    numerator: NDArray[np.complex64] | float = 0.0
    energy: NDArray[np.float32] | float = 0.0
    for gl, gb in zip(latent_grads, blurred_grads):
        spectrum_l = fft.rfft2(gl * strong * inside, s=shape, workers=-1)
        numerator = numerator + np.conj(spectrum_l) * fft.rfft2(gb * inside, s=shape, workers=-1)
        energy = energy + np.abs(spectrum_l) ** 2
    spectrum = numerator / (energy + regularisation * float(np.mean(energy)) + 1e-12)
    full = fft.fftshift(fft.irfft2(spectrum, s=shape, workers=-1))
    r, cy, cx = size // 2, shape[0] // 2, shape[1] // 2
    psf = full[cy - r : cy + r + 1, cx - r : cx + r + 1].astype(np.float64)
    return _clean_psf(psf, threshold)


def _clean_psf(psf: NDArray[np.float64], threshold: float) -> FloatArray:
    size = psf.shape[0]
    psf = np.maximum(psf, 0)
    psf[psf < threshold * psf.max()] = 0
    labels, count = ndimage.label(psf > 0, structure=np.ones((3, 3)))
    if count > 1:
        mass = ndimage.sum(psf, labels, range(1, count + 1))
        psf[labels != 1 + int(np.argmax(mass))] = 0
    if not psf.sum() > 0:
        return point_psf(size)
    ys, xs = np.mgrid[:size, :size]
    r = size // 2
    offset = (float((psf * ys).sum() / psf.sum()) - r, float((psf * xs).sum() / psf.sum()) - r)
    # move the centre of mass to the middle, to a fraction of a pixel (bilinear: integer shifts alone
    # left 0.2 px on average, which cost 0.15-0.4 dB); what leaves the square is dropped
    shifted = ndimage.shift(psf, (-offset[0], -offset[1]), order=1, mode="constant")
    return (shifted / shifted.sum()).astype(np.float32)


def point_psf(size: int = KERNEL_SIZE) -> FloatArray:
    """The PSF of no blur: 1 at the centre."""
    psf = np.zeros((size, size), dtype=np.float32)
    psf[size // 2, size // 2] = 1
    return psf


def radius_of_gyration(psf: FloatArray) -> float:
    """RMS distance (px) of the PSF's mass from its centre: 0 for a point, about length / sqrt(12) for a
    straight blur path."""
    r = psf.shape[0] // 2
    ys, xs = np.mgrid[: psf.shape[0], : psf.shape[1]]
    return float(np.sqrt((psf * ((ys - r) ** 2 + (xs - r) ** 2)).sum()))


def _otf(kernel: NDArray[np.floating], shape: tuple[int, int]) -> NDArray[np.complex64]:
    padded = np.zeros(shape, dtype=np.float32)
    k = kernel.shape[0]
    padded[:k, :k] = kernel
    return fft.rfft2(np.roll(padded, (-(k // 2), -(k // 2)), axis=(0, 1)), workers=-1)


def _gradient_power(shape: tuple[int, int]) -> NDArray[np.float32]:
    """|FFT of the forward differences|^2, summed over both axes, on an rfft2 grid of ``shape``."""
    wy = 2 * np.pi * fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    wx = 2 * np.pi * fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    return (4 - 2 * np.cos(wy) - 2 * np.cos(wx)).astype(np.float32)


#: Edge taper of the deconvolution's input, in PSF sizes (see :func:`deconvolve`): it removes the ring
#: that content outside the frame left along real photos' edges (`clock`: +-5 grey levels -> +-2).
EDGE_TAPER = 0.5
#: Padding of the deconvolution's input on each side, in PSF sizes: the circular convolution's
#: wrap-around then meets only the ramps down to 0, since a centred PSF reaches half a size. 1 rather
#: than 2 PSF sizes: the refinement takes 26 % less time on 1 MP, the quality benchmark's test and
#: validation gains stay within 0.01 dB.
PADDING = 1
#: Half-quadratic splitting: the penalty on ``w - grad x`` starts at this and doubles each round.
SPLITTING_START = 0.01


def deconvolve(
    blurred: FloatArray,
    prior: FloatArray,
    psf: FloatArray,
    prior_weight: float = 0.005,
    tv_weight: float = 0.001,
    rounds: int = 4,
) -> FloatArray:
    """Deconvolve ``blurred`` by ``psf``, regularised towards ``prior`` and by total variation.

    Planes are (H, W) or (H, W, C). Borders are padded by :data:`PADDING` PSF sizes with ramps down to 0, so the
    Fourier solution's wrap-around meets no edge, and edge-tapered: over :data:`EDGE_TAPER` PSF sizes
    inside the frame the input fades into itself blurred by the PSF, which agrees with the blur model
    (the frame's edge pixels hold blur of content outside the frame, which would ring inwards). Planes
    larger than :data:`DECONVOLVE_TILE` are solved in tiles, each as a frame of its own with 4 PSF
    sizes of context that are then cut away. ``rounds`` of half-quadratic splitting follow the
    quadratic solution (0: no total variation).
    """
    args = (psf, prior_weight, tv_weight, rounds)
    h, w = blurred.shape[:2]
    if max(h, w) <= DECONVOLVE_TILE:
        return _deconvolve_frame(blurred, prior, *args)
    context = 4 * psf.shape[0]
    out = np.empty(blurred.shape, dtype=np.float32)
    for y in range(0, h, DECONVOLVE_TILE):
        for x in range(0, w, DECONVOLVE_TILE):
            th, tw = min(DECONVOLVE_TILE, h - y), min(DECONVOLVE_TILE, w - x)
            y0, x0 = max(0, y - context), max(0, x - context)
            window = (slice(y0, min(h, y + th + context)), slice(x0, min(w, x + tw + context)))
            solved = _deconvolve_frame(blurred[window], prior[window], *args)
            out[y : y + th, x : x + tw] = solved[y - y0 : y - y0 + th, x - x0 : x - x0 + tw]
    return out


def _deconvolve_frame(
    blurred: FloatArray, prior: FloatArray, psf: FloatArray, prior_weight: float, tv_weight: float, rounds: int
) -> FloatArray:
    margin = PADDING * psf.shape[0]
    pad = ((margin, margin), (margin, margin)) + (((0, 0),) if blurred.ndim == 3 else ())
    blurred_p = np.pad(blurred.astype(np.float32), pad, mode="linear_ramp")
    prior_p = np.pad(prior.astype(np.float32), pad, mode="linear_ramp")
    h, w = blurred.shape[:2]
    reach = EDGE_TAPER * psf.shape[0]
    ramp_y, ramp_x = (_edge_ramp(n, (reach, reach), margin, 0.5) for n in (h, w))
    taper = np.minimum(ramp_y[:, None], ramp_x[None, :])
    shape = _fast_shape(*blurred_p.shape[:2])  # zeros past the ramps: sizes the FFT factors quickly
    operators = (_otf(psf, shape), _gradient_power(shape))
    solved = _solve_channels(blurred_p, prior_p, shape, operators, taper, prior_weight, tv_weight, rounds)
    return solved[margin : margin + h, margin : margin + w]


def _edge_ramp(n: int, reach: tuple[float, float], margin: int = 0, offset: float = 0.0) -> NDArray[np.float32]:
    """Along an axis of ``n`` pixels padded by ``margin`` on each side: 0 in the padding, then
    (distance from the frame's edge + ``offset``) / reach, up to 1; ``reach`` is (from the first
    edge, from the last)."""
    i = np.arange(n + 2 * margin)
    before = (i - margin + offset) / reach[0]
    after = (n + margin - 1 - i + offset) / reach[1]
    return np.clip(np.minimum(before, after), 0, 1).astype(np.float32)


def _solve_channels(blurred: FloatArray, prior: FloatArray, *args: Any) -> FloatArray:
    """:func:`_solve` of a gray plane, or of a colour plane's channels side by side in threads (numpy
    and scipy.fft release the GIL, so their element-wise work runs in parallel too)."""
    if blurred.ndim == 2:
        return _solve(blurred, prior, *args, workers=-1)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        channels = pool.map(lambda c: _solve(blurred[..., c], prior[..., c], *args, workers=1), range(blurred.shape[2]))
        return np.stack(list(channels), axis=2)


def _solve(
    blurred: FloatArray,
    prior: FloatArray,
    shape: tuple[int, int],
    operators: tuple[NDArray[np.complex64], NDArray[np.float32]],
    taper: NDArray[np.float32],
    prior_weight: float,
    tv_weight: float,
    rounds: int,
    workers: int,
) -> FloatArray:
    """One channel; ``operators``: the PSF's OTF and |FFT of the gradients|^2 on the rfft2 grid of ``shape``."""
    h, w = blurred.shape[:2]
    otf, gradient_power = operators
    data_power = np.abs(otf) ** 2 + prior_weight
    observed = fft.rfft2(blurred, s=shape, workers=workers)
    if taper.min() < 1:  # a window at the frame's edge: edge taper (see deconvolve)
        reblurred = fft.irfft2(otf * observed, s=shape, workers=workers)[:h, :w]
        observed = fft.rfft2(taper * blurred + (1 - taper) * reblurred, s=shape, workers=workers)
    fixed = np.conj(otf) * observed
    fixed += prior_weight * fft.rfft2(prior, s=shape, workers=workers)
    spectrum = fixed / data_power
    penalty = SPLITTING_START
    for _ in range(rounds):
        x = fft.irfft2(spectrum, s=shape, workers=workers)
        # w: the forward differences soft-thresholded; the x-step's right-hand side needs D^T w
        adjoint = np.zeros_like(x)
        for axis in (0, 1):
            diff = np.roll(x, -1, axis=axis)
            diff -= x
            diff -= np.clip(diff, -tv_weight / penalty, tv_weight / penalty)
            adjoint += np.roll(diff, 1, axis=axis)
            adjoint -= diff
        spectrum = fft.rfft2(adjoint, workers=workers)
        spectrum *= penalty
        spectrum += fixed
        spectrum *= (1 / (data_power + penalty * gradient_power)).astype(np.float32)
        penalty *= 2
    return fft.irfft2(spectrum, s=shape, workers=workers)[:h, :w].astype(np.float32)


def _fast_shape(h: int, w: int) -> tuple[int, int]:
    return fft.next_fast_len(h, real=True), fft.next_fast_len(w, real=True)


def _gray(plane: FloatArray) -> FloatArray:
    return (plane.mean(axis=2) if plane.ndim == 3 else plane).astype(np.float32)


#: The estimates stop early once one moves less than this share of the PSF's mass (L1 change): on the
#: validation and test sets 5-6 estimates of the 8 on average, scores within 0.01 dB of all 8.
CONVERGED = 0.05
#: Where :func:`refine`'s three PSF estimates start (see there).
STARTS = ("strongest edges", "coarse to fine", "wide structures")


def refine(
    blurred: FloatArray, restored: FloatArray, size: int = KERNEL_SIZE, iterations: int = 8
) -> tuple[FloatArray, FloatArray]:
    """Refine the generator's output ``restored`` of ``blurred`` (both (H, W) or (H, W, C) in [0, 1]).

    Returns the refined plane (not clipped) and the PSF it used. Three estimates of the PSF, each
    re-estimated up to ``iterations`` times (:func:`settle`), start from different evidence: the
    strongest edges, the same at half resolution first (coarse to fine), and only the edges of
    structures wider than a thin line (:func:`wide_structures`). Of those neither point-like nor
    :func:`unreliable`, the one whose deconvolution re-blurs closest to the input is used
    (:func:`reblur_residual`), unless it explains too little of the generator's change
    (:func:`unexplained`) or the blur varies across the frame (:func:`varies_across_frame`).
    Planes with a side under 3 PSF sides are too small to estimate a PSF from: they keep ``restored``
    (and a point PSF); so do planes with no such estimate (the PSF returned is then the first estimate)
    and planes whose PSF and generator disagree or whose blur varies.
    """
    if min(blurred.shape[:2]) < 3 * size:
        return restored, point_psf(size)
    gray_blurred, gray_restored = (_gray(centre_crop(plane, ESTIMATE_WINDOW)) for plane in (blurred, restored))
    latent = shock_filter(gray_restored)
    wide = wide_structures(gray_blurred)

    def candidate(start: str) -> tuple[FloatArray, float]:
        usable = wide if start == "wide structures" else None
        if start == "coarse to fine":
            psf = _coarse_start(gray_blurred, gray_restored, size)
        else:
            psf = estimate_psf(gray_blurred, latent, size, usable=usable)
        psf = settle(gray_blurred, gray_restored, psf, iterations - 1, usable)
        if _blur_weight(psf) == 0:  # point-like: never used, and a point explains any input
            return psf, float("inf")
        return psf, reblur_residual(gray_blurred, gray_restored, psf)

    with ThreadPoolExecutor(max_workers=min(len(STARTS), os.cpu_count() or 1)) as pool:
        candidates = list(pool.map(candidate, STARTS))  # numpy, scipy.fft and ndimage release the GIL
    cross_check: FloatArray | None = None
    trusted = []
    for psf, residual in candidates:
        if residual == float("inf"):  # point-like (see candidate)
            continue
        if cross_check is None:
            cross_check = estimate_psf(gray_blurred, latent, size, keep=CROSS_CHECK_KEEP)
        if not unreliable(psf, cross_check):
            trusted.append((residual, psf))
    if not trusted:
        return restored, candidates[0][0]
    psf = min(trusted, key=lambda pair: pair[0])[1]
    if unexplained(gray_blurred, gray_restored, psf) > AGREEMENT:
        return restored, psf
    if varies_across_frame(_gray(blurred), _gray(restored), psf):
        return restored, psf
    weights = _blur_weight(psf) * border_weights(blurred.shape[:2], psf)
    change = deconvolve(blurred, restored, psf) - restored
    return restored + (weights[..., None] if change.ndim == 3 else weights) * change, psf


#: :func:`varies_across_frame`: side (px) of the corner regions (at most), the smallest side worth
#: checking, and how much better a region's own PSF may explain it than the chosen PSF before the blur
#: counts as varying across the frame. On the realistic validation set (as first synthesised, before its
#: paths were centred), where refinement lost 1.6-3.2 dB to the generator's output (zoom, camera roll),
#: a corner's own PSF explained it 1.23-8 times better; on one-kernel blur (validation gravel, test
#: camera/coffee/rocket) at most 1.15 times.
REGION_SIDE, MIN_REGION_SIDE, REGION_TOLERANCE = 320, 192, 0.2


def varies_across_frame(gray_blurred: FloatArray, gray_restored: FloatArray, psf: FloatArray) -> bool:
    """Whether one PSF fails to explain the whole frame (camera roll, a moving subject, zoom, depth):
    in some corner region, the PSF re-estimated there (two :func:`settle` steps from ``psf``) explains
    the region (:func:`reblur_residual`) more than :data:`REGION_TOLERANCE` better than ``psf`` does.
    Frames whose corner regions would be smaller than :data:`MIN_REGION_SIDE` are not checked.
    (A region's own PSF explaining it worse only means estimating there went less well: on one-kernel
    blur of camera, the true PSF explained the corners 13-28 % better than their own estimates.)"""
    h, w = gray_blurred.shape
    side = min(REGION_SIDE, h // 2, w // 2)
    if side < MIN_REGION_SIDE:
        return False
    for y, x in ((0, 0), (0, w - side), (h - side, 0), (h - side, w - side)):
        region_blurred, region_restored = (
            gray_blurred[y : y + side, x : x + side],
            gray_restored[y : y + side, x : x + side],
        )
        own = settle(region_blurred, region_restored, psf, 2)
        ratio = reblur_residual(region_blurred, region_restored, psf) / max(
            reblur_residual(region_blurred, region_restored, own), 1e-12
        )
        if ratio > 1 + REGION_TOLERANCE:
            return True
    return False


def settle(
    gray_blurred: FloatArray,
    gray_restored: FloatArray,
    psf: FloatArray,
    steps: int,
    usable: NDArray[np.bool_] | None = None,
) -> FloatArray:
    """Re-estimate ``psf`` up to ``steps`` times, each from ``gray_blurred`` deconvolved by the one
    before (shock-filtered; Cho and Lee 2009), stopping once it moves less than :data:`CONVERGED`."""
    for _ in range(steps):
        previous = psf
        latent = shock_filter(deconvolve(gray_blurred, gray_restored, psf))
        psf = estimate_psf(gray_blurred, latent, psf.shape[0], usable=usable)
        if np.abs(psf - previous).sum() < CONVERGED:
            break
    return psf


#: Coarse-to-fine start: the PSF is first estimated (and settled over this many steps) at half resolution.
COARSE_STEPS = 4


def _coarse_start(gray_blurred: FloatArray, gray_restored: FloatArray, size: int) -> FloatArray:
    """A PSF estimated at half resolution, where a blur path is half as long, scaled up to ``size``."""
    half_blurred, half_restored = (
        transform.rescale(plane, 0.5, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
        for plane in (gray_blurred, gray_restored)
    )
    half_size = (size // 2) | 1
    half = estimate_psf(half_blurred, shock_filter(half_restored), half_size)
    half = settle(half_blurred, half_restored, half, COARSE_STEPS)
    psf = centre_crop(ndimage.zoom(half.astype(np.float64), 2, order=1), size)
    lack = size - psf.shape[0]  # 2 x half_size is size + 1 or size - 1
    return _clean_psf(np.maximum(np.pad(psf, (0, lack)), 0), threshold=0.0)


#: :func:`wide_structures`: window side (px) and the share of a window's gradient magnitude that must
#: point one way.
WIDE_WINDOW, WIDE_THRESHOLD = 9, 0.2


def wide_structures(image: FloatArray) -> NDArray[np.bool_]:
    """Pixels on the edges of structures wider than a thin line (Xu and Jia 2010's r map): in the
    :data:`WIDE_WINDOW` square around the pixel, the gradients summed as vectors keep more than
    :data:`WIDE_THRESHOLD` of their summed magnitude. Across a line thinner than the window the two
    edges' gradients cancel; blurred, such lines mislead a PSF estimate (rocket's gantries)."""
    gx, gy = _gradients(image)
    flow = np.hypot(ndimage.uniform_filter(gx, WIDE_WINDOW), ndimage.uniform_filter(gy, WIDE_WINDOW))
    magnitude = ndimage.uniform_filter(np.hypot(gx, gy), WIDE_WINDOW)
    return flow > WIDE_THRESHOLD * (magnitude + 0.002 / WIDE_WINDOW**2)


def reblur_residual(gray_blurred: FloatArray, gray_restored: FloatArray, psf: FloatArray) -> float:
    """Mean squared difference, away from the borders, between ``gray_blurred`` and its deconvolution
    by ``psf`` blurred again by ``psf``: how well the PSF explains the input. Compare blurs only: a
    point explains any input (its deconvolution is the input itself)."""
    return _inner_mse(_reblur(deconvolve(gray_blurred, gray_restored, psf), psf), gray_blurred, psf.shape[0])


#: :func:`unexplained` above which the generator's output is kept. On the validation sets (12 one-kernel
#: and 48 GOPRO-like cases, the shipped generator), the 15 refined cases at or below 0.5 (0.21-0.49)
#: gained 30.3 dB over the generator's output together (11 gained, up to 5.8 dB; the worst lost 1.5),
#: the 14 above it (0.67-9.6) lost 18.8 dB together (up to 7.0 dB in one case): blur of light in linear
#: intensities, clipped highlights, JPEG, or several motions in one frame.
AGREEMENT = 0.5


def unexplained(gray_blurred: FloatArray, gray_restored: FloatArray, psf: FloatArray) -> float:
    """The share of the difference between the input and the generator's output that ``psf`` does not
    explain: mean squared ``psf * restored - blurred`` over mean squared ``restored - blurred``, away
    from the borders. Near the noise's share where the blur is one convolution and the generator
    restored it (then deconvolution with ``psf`` adds what the generator missed); near 1 or above where
    the generator's change is not that PSF's inverse: blur that is not one convolution (light added in
    linear intensities, clipped highlights, compression, motions that differ across the frame) or a
    PSF that missed the blur."""
    m = psf.shape[0]
    change = _inner_mse(gray_restored, gray_blurred, m)
    return _inner_mse(_reblur(gray_restored, psf), gray_blurred, m) / max(change, 1e-12)


def _reblur(image: FloatArray, psf: FloatArray) -> NDArray[np.float64]:
    """``image`` blurred by the centred ``psf`` (zero beyond its borders), same shape."""
    shape = _fast_shape(image.shape[0] + psf.shape[0], image.shape[1] + psf.shape[1])
    blurred = fft.irfft2(fft.rfft2(image, s=shape, workers=-1) * _otf(psf, shape), s=shape, workers=-1)
    return blurred[: image.shape[0], : image.shape[1]]


def _inner_mse(a: NDArray[np.floating], b: NDArray[np.floating], margin: int) -> float:
    """Mean squared difference of ``a`` and ``b`` without ``margin`` px along each border."""
    return float(np.mean((a[margin:-margin, margin:-margin] - b[margin:-margin, margin:-margin]) ** 2))


def _blur_weight(psf: FloatArray) -> float:
    """0 for a point-like PSF (:data:`POINT_LIKE`), 1 for a blur (:data:`BLUR_LIKE`), linear in between."""
    return float(np.clip((radius_of_gyration(psf) - POINT_LIKE) / (BLUR_LIKE - POINT_LIKE), 0, 1))


#: The PSF is cross-checked against one estimated from the generator's shock-filtered output with 5
#: times the share of edges (10 %): a PSF more than :data:`DISAGREEMENT` times as wide (radius of
#: gyration) as the cross-check is not trusted.
CROSS_CHECK_KEEP, DISAGREEMENT = 0.1, 1.3


def unreliable(psf: FloatArray, cross_check: FloatArray) -> bool:
    """Whether to distrust ``psf``: it fills its window, or it is much wider than ``cross_check``.

    Both catch the estimate's one known way to diverge: on edges that nearly all run one way (a brick
    wall's mortar lines), the strongest 2 % of the gradients leave the PSF's extent along them
    unconstrained, and it grows with each estimate into a streak (9 px paths came out 20-40 px long;
    deconvolving with them cost 4-20 dB), while a wider choice of edges, before any deconvolution
    could mislead it, still finds the true extent. On 75 cases (the validation and test sets, 12
    training images, brick with 6 more paths), every case the PSF was worse than the generator's output
    by more than 1.5 dB was past 1.3; the rest past it lost 0.3-0.5 dB on average (some gained).
    """
    return fills_window(psf) or radius_of_gyration(psf) > DISAGREEMENT * radius_of_gyration(cross_check)


def fills_window(psf: FloatArray) -> bool:
    """Whether the PSF reaches within 1 px of its square's edge: the blur is longer than the square
    holds, or the estimate diverged (see :func:`unreliable`). Centred PSFs of random paths up to 35 px
    stay 3 px or more inside (300 drawn at 28-35 px)."""
    support = np.argwhere(psf > 0)
    last = psf.shape[0] - 1
    return bool(support.min() <= 1 or support.max() >= last - 1)


def border_weights(shape: tuple[int, int], psf: FloatArray) -> FloatArray:
    """0 on the frame's edge rising to 1 as far inwards as the blur drew on content beyond that edge,
    plus 2 px; 1 inside. Per side: the top rows drew on content above the frame as far as the (centred)
    PSF extends below its centre, the left columns as far as it extends right of it, and so on."""
    support = np.argwhere(psf > 0)
    r = psf.shape[0] // 2
    ramp_y, ramp_x = (
        _edge_ramp(n, (float(support[:, axis].max() - r + 2), float(r - support[:, axis].min() + 2)))
        for axis, n in enumerate(shape)
    )
    return np.minimum(ramp_y[:, None], ramp_x[None, :])
