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
total-variation term keeps flat regions flat, so edges do not ring. A PSF that comes out nearly a point
(the input had little blur to remove) hands the result back to the generator; where, besides, the
generator changed only fine detail, the input was sharp and is kept as it was, since the generator
sharpens sharp photos further (:func:`sharp_input_share`). From each edge of the frame the refinement
fades in over as far as the PSF reaches beyond that edge: there the blur drew on content outside the
frame, and deconvolution would ring. The blur is taken as one PSF per plane (uniform camera shake);
where it visibly is not, the generator's output is kept: where the PSF explains too little of what the
generator changed (:func:`unexplained`; the deconvolution's weight falls from 1 to 0 as that share
grows, see :func:`agreement_weight`), where the deconvolution moves the image elsewhere than the
generator did (:func:`change_agreement`, :func:`direction_weight`), or a corner region of the frame is
explained much better by a PSF of its own (:func:`varies_across_frame`). The dask path of ``deblur``
estimates one per frame, and none for frames split into blocks.

Planes are torch tensors on the model's device (FFTs, filters and solves run there: on a GPU as well as
on the CPU); PSFs are small numpy arrays (41 x 41), cleaned on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from scipy import fft, ndimage

from ..filters import correlate, gaussian_filter, gaussian_taps, reflect_pad
from ..io.images import centre_crop

FloatArray = NDArray[np.float32]
Tensor = torch.Tensor

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


def _laplace(image: Tensor) -> Tensor:
    """``scipy.ndimage.laplace`` ('reflect' borders)."""
    p = reflect_pad(image, 1)
    centre = p[..., 1:-1, 1:-1]
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4 * centre


def shock_filter(image: Tensor, iterations: int = 3, step: float = 0.5, sigma: float = 1.0) -> Tensor:
    """Osher-Rudin shock filter: steepens blurry edges into steps (the sign of a smoothed Laplacian
    decides which way each pixel moves). Gaussians are cut at 2 sigma (5 taps for sigma 1): as good
    on the validation set as 4 sigma and 5 iterations, in half the time."""
    out = gaussian_filter(image, 0.5, truncate=2.0)
    for _ in range(iterations):
        laplacian = _laplace(gaussian_filter(out, sigma, truncate=2.0))
        gy, gx = torch.gradient(out, dim=(-2, -1))  # central differences, one-sided at the edges (numpy.gradient)
        out = out - step * torch.sign(laplacian) * torch.sqrt(gx * gx + gy * gy)
    return out


def _gradients(image: Tensor) -> Tensor:
    """Forward differences along the last two axes (0 at the last column/row), stacked as (x, y) on a new
    first axis."""
    grads = torch.zeros((2, *image.shape), dtype=image.dtype, device=image.device)
    grads[0, ..., :-1] = image[..., 1:] - image[..., :-1]
    grads[1, ..., :-1, :] = image[..., 1:, :] - image[..., :-1, :]
    return grads


def estimate_psf(
    blurred: Tensor,
    latent: Tensor,
    size: int = KERNEL_SIZE,
    keep: float = 0.02,
    regularisation: float = 1e-2,
    threshold: float = 0.1,
    usable: Tensor | None = None,
) -> FloatArray:
    """The (size, size) PSF that best blurs ``latent`` into ``blurred`` (2D gray planes, same shape).

    Least squares on image gradients, only where ``latent``'s gradients are in its strongest ``keep``
    share (strong edges constrain a PSF best; of the ``usable`` pixels only, if given), solved in
    Fourier space with Tikhonov ``regularisation`` (relative to the mean spectral energy). Then: values
    below ``threshold`` of the peak are dropped, only the connected part holding most of the mass is
    kept, and the PSF is normalised to sum 1 and centred on its centre of mass (so deconvolving with it
    does not shift the image).
    """
    batch = None if usable is None else usable[None]
    return estimate_psfs(blurred[None], latent[None], size, keep, regularisation, threshold, batch)[0]


def estimate_psfs(
    blurred: Tensor,
    latent: Tensor,
    size: int = KERNEL_SIZE,
    keep: float = 0.02,
    regularisation: float = 1e-2,
    threshold: float = 0.1,
    usable: Tensor | None = None,
) -> list[FloatArray]:
    """:func:`estimate_psf` of K cases at once: planes (K, H, W), or (1, H, W) shared by all K (a blurred
    plane, a latent, the ``usable`` mask), in one batched FFT and one copy of the PSFs to the CPU."""
    h, w = latent.shape[-2:]
    margin = min(size, h // 4, w // 4)
    inside = torch.zeros((h, w), dtype=latent.dtype, device=latent.device)
    inside[margin : h - margin, margin : w - margin] = 1
    latent_grads, blurred_grads = _gradients(latent), _gradients(blurred)
    magnitude = torch.hypot(latent_grads[0], latent_grads[1])
    if usable is not None:
        magnitude = magnitude * usable
    inner = magnitude[:, margin : h - margin, margin : w - margin].reshape(len(magnitude), -1)
    strong = magnitude >= _quantile(inner, 1 - keep)[:, None, None]
    shape = _fast_shape(h, w)  # zero padding is harmless: the gradients are masked to the inside anyway
    spectra_l = torch.fft.rfft2(latent_grads * (strong * inside), s=shape)
    numerator = (spectra_l.conj() * torch.fft.rfft2(blurred_grads * inside, s=shape)).sum(dim=0)
    energy = (spectra_l.real**2 + spectra_l.imag**2).sum(dim=0)
    spectrum = numerator / (energy + regularisation * energy.mean(dim=(-2, -1), keepdim=True) + 1e-12)
    full = torch.fft.fftshift(torch.fft.irfft2(spectrum, s=shape), dim=(-2, -1))
    r, cy, cx = size // 2, shape[0] // 2, shape[1] // 2
    psfs = full[:, cy - r : cy + r + 1, cx - r : cx + r + 1].double().cpu().numpy()
    return [_clean_psf(psf, threshold) for psf in psfs]


def _quantile(values: Tensor, q: float) -> Tensor:
    """``numpy.quantile(row, q)`` (linear interpolation) of each row of ``values`` (K, N), for a high ``q``:
    the two order statistics it interpolates are the smallest two of the row's top ``N - floor(q (N - 1))``,
    found by one selection (``topk``): 3x faster than two ``kthvalue`` calls on the CPU (3 rows of 900k, q = 0.98);
    ``kthvalue`` was the costliest refinement kernel on an H200."""
    n = values.shape[-1]
    position = q * (n - 1)
    low = int(position)
    top = values.topk(n - low, dim=-1, sorted=False).values
    if low + 1 == n:
        return top[..., 0]
    below, above = top.topk(2, dim=-1, largest=False).values.unbind(-1)  # ascending
    return below + (position - low) * (above - below)


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


def _otf(kernel: FloatArray, shape: tuple[int, int], device: torch.device) -> Tensor:
    """The rfft2 of a centred (k, k) kernel, or of a stack (K, k, k), on a grid of ``shape``."""
    padded = torch.zeros((*kernel.shape[:-2], *shape), dtype=torch.float32)
    k = kernel.shape[-1]
    padded[..., :k, :k] = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))
    return torch.fft.rfft2(torch.roll(padded, (-(k // 2), -(k // 2)), dims=(-2, -1)).to(device))


def _gradient_power(shape: tuple[int, int], device: torch.device) -> Tensor:
    """|FFT of the forward differences|^2, summed over both axes, on an rfft2 grid of ``shape``."""
    wy = 2 * torch.pi * torch.fft.fftfreq(shape[0], device=device)[:, None]
    wx = 2 * torch.pi * torch.fft.rfftfreq(shape[1], device=device)[None, :]
    return 4 - 2 * torch.cos(wy) - 2 * torch.cos(wx)


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
    blurred: Tensor,
    prior: Tensor,
    psf: FloatArray,
    prior_weight: float = 0.005,
    tv_weight: float = 0.001,
    rounds: int = 4,
) -> Tensor:
    """Deconvolve ``blurred`` by ``psf``, regularised towards ``prior`` and by total variation.

    Planes are (H, W) or (H, W, C). Borders are padded by :data:`PADDING` PSF sizes with ramps down to 0, so the
    Fourier solution's wrap-around meets no edge, and edge-tapered: over :data:`EDGE_TAPER` PSF sizes
    inside the frame the input fades into itself blurred by the PSF, which agrees with the blur model
    (the frame's edge pixels hold blur of content outside the frame, which would ring inwards). Planes
    larger than :data:`DECONVOLVE_TILE` are solved in tiles, each as a frame of its own with 4 PSF
    sizes of context that are then cut away. ``rounds`` of half-quadratic splitting follow the
    quadratic solution (0: no total variation). Colour channels are solved together (one batched FFT).
    """
    args = (prior_weight, tv_weight, rounds)
    h, w = blurred.shape[:2]
    if max(h, w) <= DECONVOLVE_TILE:
        return _deconvolve_together(blurred[None], prior[None], [psf], *args)[0]
    context = 4 * psf.shape[0]
    out = torch.empty_like(blurred)
    for y in range(0, h, DECONVOLVE_TILE):
        for x in range(0, w, DECONVOLVE_TILE):
            th, tw = min(DECONVOLVE_TILE, h - y), min(DECONVOLVE_TILE, w - x)
            y0, x0 = max(0, y - context), max(0, x - context)
            window = (slice(y0, min(h, y + th + context)), slice(x0, min(w, x + tw + context)))
            solved = _deconvolve_together(blurred[window][None], prior[window][None], [psf], *args)[0]
            out[y : y + th, x : x + tw] = solved[y - y0 : y - y0 + th, x - x0 : x - x0 + tw]
    return out


def _deconvolve_frames(blurred: Tensor, prior: Tensor, psfs: list[FloatArray]) -> Tensor:
    """:func:`deconvolve` of frames (F, H, W[, C]), each by its own PSF: their planes in one batch up to
    :data:`DECONVOLVE_TILE` per side, frame by frame beyond."""
    if max(blurred.shape[1:3]) > DECONVOLVE_TILE:
        return torch.stack([deconvolve(b, p, psf) for b, p, psf in zip(blurred, prior, psfs)])
    return _deconvolve_together(blurred, prior, psfs)


def _deconvolve_together(
    blurred: Tensor,
    prior: Tensor,
    psfs: list[FloatArray],
    prior_weight: float = 0.005,
    tv_weight: float = 0.001,
    rounds: int = 4,
) -> Tensor:
    """Frames (F, H, W[, C]), each by its own PSF, untiled: all their planes in one batch."""
    colour = blurred.ndim == 4
    planes_b, planes_p = (
        (frames.permute(0, 3, 1, 2) if colour else frames[:, None]).float() for frames in (blurred, prior)
    )
    channels = planes_b.shape[1]
    solved = _deconvolve_planes(
        planes_b.flatten(0, 1),
        planes_p.flatten(0, 1),
        np.repeat(np.stack(psfs), channels, axis=0),
        prior_weight,
        tv_weight,
        rounds,
    )
    solved = solved.unflatten(0, (len(psfs), channels))
    return solved.permute(0, 2, 3, 1) if colour else solved[:, 0]


def _deconvolve_planes(
    blurred: Tensor,
    prior: Tensor,
    psf: FloatArray,
    prior_weight: float = 0.005,
    tv_weight: float = 0.001,
    rounds: int = 4,
) -> Tensor:
    """:func:`deconvolve` of planes (N, H, W) by one PSF (k, k), or by a stack (K, k, k) paired with the
    planes (N = K) or shared by one plane (N = 1): (max(N, K), H, W), in batched FFTs."""
    margin = PADDING * psf.shape[-1]
    blurred_p, prior_p = (_pad_linear_ramp(planes, margin) for planes in (blurred, prior))
    h, w = blurred.shape[-2:]
    reach = EDGE_TAPER * psf.shape[-1]
    ramp_y, ramp_x = (_edge_ramp(n, (reach, reach), blurred.device, margin, 0.5) for n in (h, w))
    taper = torch.minimum(ramp_y[:, None], ramp_x[None, :])
    shape = _fast_shape(*blurred_p.shape[-2:])  # zeros past the ramps: sizes the FFT factors quickly
    operators = (_otf(psf, shape, blurred.device), _gradient_power(shape, blurred.device))
    solved = _solve(blurred_p, prior_p, shape, operators, taper, prior_weight, tv_weight, rounds)
    return solved[:, margin : margin + h, margin : margin + w]


def _deconvolve_gray(gray_blurred: Tensor, gray_restored: Tensor, psfs: list[FloatArray]) -> Tensor:
    """:func:`deconvolve` of gray planes (K or 1, H, W) by K PSFs: (K, H, W), at once up to
    :data:`DECONVOLVE_TILE` per side."""
    if max(gray_blurred.shape[-2:]) <= DECONVOLVE_TILE:
        return _deconvolve_planes(gray_blurred, gray_restored, np.stack(psfs))
    k = len(psfs)
    pairs = zip(gray_blurred.expand(k, -1, -1), gray_restored.expand(k, -1, -1), psfs)
    return torch.stack([deconvolve(b, r, psf) for b, r, psf in pairs])


def _pad_linear_ramp(planes: Tensor, margin: int) -> Tensor:
    """``numpy.pad(..., mode="linear_ramp")`` of the last two axes: ramps from the edge values down to 0."""
    ramp = torch.arange(margin, dtype=planes.dtype, device=planes.device) / margin
    planes = torch.cat([planes[..., :1, :] * ramp[:, None], planes, planes[..., -1:, :] * ramp.flip(0)[:, None]], -2)
    return torch.cat([planes[..., :1] * ramp, planes, planes[..., -1:] * ramp.flip(0)], -1)


def _edge_ramp(
    n: int, reach: tuple[float, float], device: torch.device, margin: int = 0, offset: float = 0.0
) -> Tensor:
    """Along an axis of ``n`` pixels padded by ``margin`` on each side: 0 in the padding, then
    (distance from the frame's edge + ``offset``) / reach, up to 1; ``reach`` is (from the first
    edge, from the last)."""
    i = torch.arange(n + 2 * margin, dtype=torch.float32, device=device)
    before = (i - margin + offset) / reach[0]
    after = (n + margin - 1 - i + offset) / reach[1]
    return torch.clamp(torch.minimum(before, after), 0, 1)


def _solve(
    blurred: Tensor,
    prior: Tensor,
    shape: tuple[int, int],
    operators: tuple[Tensor, Tensor],
    taper: Tensor,
    prior_weight: float,
    tv_weight: float,
    rounds: int,
) -> Tensor:
    """Planes (N, H, W), all at once; ``operators``: the PSF's OTF (or a stack of them, see
    :func:`_deconvolve_planes`) and |FFT of the gradients|^2 on the rfft2 grid of ``shape``. The input is
    edge-tapered (see :func:`deconvolve`)."""
    h, w = blurred.shape[-2:]
    otf, gradient_power = operators
    data_power = otf.real**2 + otf.imag**2 + prior_weight
    reblurred = torch.fft.irfft2(otf * torch.fft.rfft2(blurred, s=shape), s=shape)[..., :h, :w]
    observed = torch.fft.rfft2(taper * blurred + (1 - taper) * reblurred, s=shape)
    fixed = otf.conj() * observed + prior_weight * torch.fft.rfft2(prior, s=shape)
    spectrum = fixed * data_power.reciprocal()
    penalty = SPLITTING_START
    for _ in range(rounds):
        x = torch.fft.irfft2(spectrum, s=shape)
        adjoint = _shrunk_differences_adjoint(x, tv_weight / penalty)
        spectrum = (penalty * torch.fft.rfft2(adjoint) + fixed) * (data_power + penalty * gradient_power).reciprocal()
        penalty *= 2
    return torch.fft.irfft2(spectrum, s=shape)[..., :h, :w]


def _shrunk_differences_adjoint(x: Tensor, threshold: float) -> Tensor:
    """D^T w, where w is the circular forward differences of planes ``x`` along both axes, soft-thresholded
    by ``threshold``: half-quadratic splitting's w-step and its x-step's right-hand side."""
    parts = [_rolled_minus(F.softshrink(_rolled_minus(x, axis, -1), threshold), axis, 1) for axis in (-2, -1)]
    return parts[0] + parts[1]


def _rolled_minus(x: Tensor, axis: int, shift: int) -> Tensor:
    """``torch.roll(x, shift, axis) - x`` for a shift of -1 or 1, from slices (no rolled copy)."""
    n, out = x.shape[axis], torch.empty_like(x)
    first, rest = (0, 1) if shift == 1 else (n - 1, 0)  # where the wrapped-around difference goes
    torch.sub(x.narrow(axis, 1 - rest, n - 1), x.narrow(axis, rest, n - 1), out=out.narrow(axis, rest, n - 1))
    torch.sub(x.narrow(axis, n - 1 - first, 1), x.narrow(axis, first, 1), out=out.narrow(axis, first, 1))
    return out


def _each(planes: Tensor, copies: int) -> Tensor:
    """Planes (F, H, W), each repeated for ``copies`` cases in a row; a single plane as it is, shared by
    all cases (the functions that take planes (K or 1, H, W) broadcast it: its FFTs are taken once)."""
    return planes if len(planes) == 1 else planes.repeat_interleave(copies, dim=0)


def _rows(planes: Tensor, index: list[int]) -> Tensor:
    """The planes (K, H, W) of cases ``index``; a single plane shared by all cases as it is."""
    return planes if len(planes) == 1 else planes[index]


def _fast_shape(h: int, w: int) -> tuple[int, int]:
    return fft.next_fast_len(h, real=True), fft.next_fast_len(w, real=True)


def _gray(frames: Tensor) -> Tensor:
    """Gray planes (F, H, W) of frames (F, H, W[, C])."""
    return frames.mean(dim=-1) if frames.ndim == 4 else frames


def _centre_crop(planes: Tensor, size: int) -> Tensor:
    """:func:`~napari_deblurgan.gan.io.images.centre_crop` of planes (..., H, W): of their last two axes."""
    return centre_crop(planes.movedim((-2, -1), (0, 1)), size).movedim((0, 1), (-2, -1))


#: The estimates stop early once one moves less than this share of the PSF's mass (L1 change): on the
#: validation and test sets 5-6 estimates of the 8 on average, scores within 0.01 dB of all 8.
CONVERGED = 0.05
#: Where :func:`refine`'s three PSF estimates start (see there).
STARTS = ("strongest edges", "coarse to fine", "wide structures")


def refine(
    blurred: FloatArray | Tensor,
    restored: FloatArray | Tensor,
    size: int = KERNEL_SIZE,
    iterations: int = 8,
    device: str | torch.device | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Refine the generator's output ``restored`` of ``blurred`` (both (H, W) or (H, W, C) in [0, 1]).

    Returns the refined plane (float32 numpy, not clipped) and the PSF it used. The work runs on
    ``device`` (default: where ``blurred`` is; the CPU for numpy arrays). Three estimates of the PSF,
    each re-estimated up to ``iterations`` times (:func:`settle`), start from different evidence: the
    strongest edges, the same at half resolution first (coarse to fine), and only the edges of
    structures wider than a thin line (:func:`wide_structures`). Of those neither point-like nor
    :func:`unreliable`, the one whose deconvolution re-blurs closest to the input is used
    (:func:`reblur_residual`), weighted by how much of the generator's change it explains
    (:func:`agreement_weight`) and by how far its deconvolution moves the image the way the generator did
    (:func:`direction_weight`), unless the blur varies across the frame (:func:`varies_across_frame`).
    Where the blur was one convolution of light rather than of the stored values (a photo's exposure),
    the PSF is estimated and deconvolved in linear light (:data:`LINEAR_PREFERENCE`). Planes with a side
    under 3 PSF sides are too small to estimate a PSF from: they keep ``restored``
    (and a point PSF); so do planes with no such estimate (the PSF returned is then the first estimate)
    and planes whose PSF and generator disagree or whose blur varies. A plane whose first estimate is
    point-like and whose generator changed only fine detail keeps ``blurred`` instead, in part or whole
    (:func:`sharp_input_share`).
    """
    return refine_frames([blurred], [restored], size, iterations, device)[0]


def refine_frames(
    blurred: Sequence[FloatArray | Tensor],
    restored: Sequence[FloatArray | Tensor],
    size: int = KERNEL_SIZE,
    iterations: int = 8,
    device: str | torch.device | None = None,
) -> list[tuple[FloatArray, FloatArray]]:
    """:func:`refine` of frames of one shape (a stack's), each with its PSF and its own decisions, every
    step batched over the frames: on a GPU, where the refinement is bound by kernel launches (about
    4,300 a 720p frame on an H200), F frames take about the launches of one."""
    kept = [plane if isinstance(plane, np.ndarray) else plane.cpu().numpy() for plane in restored]
    if min(blurred[0].shape[:2]) < 3 * size:
        return [(plane, point_psf(size)) for plane in kept]
    dev = torch.device(device) if device is not None else torch.as_tensor(blurred[0][:0]).device
    with torch.inference_mode():
        y, g = (
            torch.stack([torch.as_tensor(p).to(dev, torch.float32) for p in planes]) for planes in (blurred, restored)
        )
        choices = _choose_psfs(y, g, size, iterations)
        results = [(plane, psf) for plane, (psf, _, _) in zip(kept, choices)]
        for i, share in _sharp_input_shares(y, g, choices).items():
            results[i] = ((y[i] + share * (g[i] - y[i])).cpu().numpy(), choices[i][0])
        for linear in (False, True):
            used = [i for i, (_, weight, in_linear) in enumerate(choices) if weight > 0 and in_linear == linear]
            if not used:
                continue
            psfs = [choices[i][0] for i in used]
            blurred_used, restored_used = y[used], g[used]
            start, guide = (to_linear(t) if linear else t for t in (blurred_used, restored_used))
            full = blend_deconvolution(start, guide, psfs)
            agreements = change_agreement(blurred_used, restored_used, from_linear(full) if linear else full)
            weights = [choices[i][1] * direction_weight(a) for i, a in zip(used, agreements)]
            kept = [k for k, weight in enumerate(weights) if weight > 0]  # the others keep the generator's output
            if not kept:
                continue
            scale = torch.tensor([weights[k] for k in kept], dtype=full.dtype, device=full.device)
            mixed = guide[kept] + scale.view(-1, *[1] * (full.ndim - 1)) * (full[kept] - guide[kept])
            refined = from_linear(mixed) if linear else mixed
            for k, plane in zip(kept, refined.cpu().numpy()):
                results[used[k]] = (plane, psfs[k])
    return results


#: A frame where no blur was found (its PSF estimate within ``STILL_WIDTH`` px radius of gyration) and
#: whose generator changed only fine detail (:func:`coarse_change` within ``STILL_CHANGE``) was sharp:
#: it keeps the input, in part or whole (:func:`sharp_input_share`), rather than the generator's output,
#: which sharpens sharp photos further. Estimates on the unblurred one-kernel images (noise 0.01) came
#: out 0.68-0.97 px wide, on 3-5 px one-kernel blur 0.98-1.66, on 10-30 px blur 1.0 and wider.
#: Point-like estimates also come from blurred photos where the blur is not one kernel (a moving subject
#: or a zoom on a still background), but there the generator moves coarse structure. Chosen on the
#: validation sets' cached outcomes (the change's whole-frame deviation chose as well, but a small
#: subject in a large frame would be diluted in it), then measured (default pipeline,
#: ``benchmarks/quality.py``): unblurred one-kernel images -0.59 -> +0.14 dB (test -2.35 -> -0.61), 2 px
#: one-kernel blur (test) -0.72 -> -0.40, realistic blur +1.55 / +1.62 -> +1.54 / +1.62 (test +1.66 ->
#: +1.65), 10-30 px one-kernel blur unchanged; realistic photos without motion, test +1.30 -> +1.57
#: (worst -22.0 -> -1.3), validation +1.16 -> +0.98 (their noise and JPEG, which the generator removes,
#: are fine detail too), frames losing more than 0.5 dB 14 -> 3 and 9 -> 6.
STILL_WIDTH = (0.8, 1.0)
STILL_CHANGE = (0.0005, 0.006)
COARSE_SIGMA, COARSE_BLOCK = 3.0, 128


def coarse_change(gray_blurred: Tensor, gray_restored: Tensor) -> list[float]:
    """Per frame of gray planes (F, H, W), how far the generator moved structure wider than fine detail
    and noise: its change after a Gaussian of :data:`COARSE_SIGMA` px, as the root mean square of the
    :data:`COARSE_BLOCK` px block where it is largest (so a small moving subject counts in a large frame).
    The blocks tile the frame from each of its four corners, so every pixel is in a whole block."""
    low = gaussian_filter(gray_restored - gray_blurred, COARSE_SIGMA)
    power = low[:, None] ** 2
    block = min(COARSE_BLOCK, *low.shape[-2:])
    anchored = [power, power.flip(-1), power.flip(-2), power.flip(-2, -1)]
    pooled = torch.cat([F.avg_pool2d(p, block).flatten(1) for p in anchored], dim=1)
    return pooled.amax(dim=1).sqrt().tolist()


def sharp_input_share(psf: FloatArray, coarse: float) -> float:
    """The share of the generator's change kept on a frame that refinement leaves to the generator, from
    its PSF estimate and :func:`coarse_change`: 1 where either says blur (``STILL_WIDTH[1]``,
    ``STILL_CHANGE[1]`` and above), 0 where both say sharp (the first values and below), linear in
    between (the larger of the two)."""
    by_width = _ramp(radius_of_gyration(psf), *STILL_WIDTH, nan=1.0)
    return max(by_width, _ramp(coarse, *STILL_CHANGE, nan=1.0))


def _sharp_input_shares(
    blurred: Tensor, restored: Tensor, choices: list[tuple[FloatArray, float, bool]]
) -> dict[int, float]:
    """Frame -> :func:`sharp_input_share`, for the frames :func:`_choose_psfs` refines with weight 0 whose
    share is below 1."""
    left = [i for i, (_, weight, _) in enumerate(choices) if weight == 0]
    coarse = coarse_change(_gray(blurred)[left], _gray(restored)[left]) if left else []
    shares = {i: sharp_input_share(choices[i][0], c) for i, c in zip(left, coarse)}
    return {i: share for i, share in shares.items() if share < 1}


#: Display values (photos as stored: sRGB-like) become linear light as ``value ** LINEAR_GAMMA``.
LINEAR_GAMMA = 2.2
#: A frame whose display-value PSF passes the gate is refined in linear light instead when the PSF
#: estimated there passes it too and leaves at most this share of the display PSF's unexplained share
#: (:func:`unexplained`): the blur was one convolution of light (a camera's exposure), not of the stored
#: values. On the realistic validation set (blur in linear light, camera response gamma 2-2.4) the
#: linear/display share ratio of the frames the display PSF refined was 0.36-0.84, on the one-kernel
#: validation set (blur of stored values) 0.97-1.71, on the one-kernel test set 0.70-1.40 (rocket 0.70,
#: which linear light cost 0.75 dB). With 0.65 the pipeline (``benchmarks/quality.py``) gave realistic
#: validation +1.43 -> +1.53 dB (kcas0/kernel +0.46 -> +3.03), test +1.49 -> +1.58, one-kernel sets
#: unchanged. The weight stays the display PSF's at most: test erase_webp13/camera (display weight 0.02,
#: linear 1) lost 1.8 dB at 1.
LINEAR_PREFERENCE = 0.65


def to_linear(frames: Tensor) -> Tensor:
    """Display values in [0, 1] as linear light (:data:`LINEAR_GAMMA`)."""
    return frames.clamp(0, 1) ** LINEAR_GAMMA


def from_linear(frames: Tensor) -> Tensor:
    """Linear light back to display values (negative light is none; above 1 stays above 1)."""
    return frames.clamp(min=0) ** (1 / LINEAR_GAMMA)


#: :func:`direction_weight`: the deconvolution's change gets none of its weight up to the first
#: agreement with the generator's change (:func:`change_agreement`) and all of it from the second,
#: linearly in between. Where the blur is one convolution and the PSF found it, the deconvolution
#: moves each region the way the generator did, only further: on the one-kernel validation and test
#: sets (blur of stored values, 36 frames) the frames it improved agreed at 0.45-0.77. Where the PSF
#: misses the blur (a moving subject, blur that varies, a PSF from the wrong edges) it moves elsewhere:
#: the second draw of realistic validation blur's coins/camera agreed at 0.12 and lost 3.8 dB with the
#: weight of its share alone. Chosen with :data:`AGREEMENT` on the validation sets' cached outcomes
#: (one-kernel, realistic and its second draw: +4.21 / +1.53 / +1.53 dB -> +4.21 / +1.55 / +1.62).
DIRECTION = (0.35, 0.55)


def change_agreement(blurred: Tensor, restored: Tensor, refined: Tensor) -> list[float]:
    """Per frame (F, H, W[, C]), the cosine between the refinement's change to ``blurred`` and the
    generator's (gray planes): near 1 where both move the image the same way, near 0 or below where the
    deconvolution does something else (see :data:`DIRECTION`)."""
    gray_blurred = _gray(blurred)
    ours, theirs = ((_gray(frames) - gray_blurred).flatten(1).double() for frames in (refined, restored))
    norms = (ours.norm(dim=1) * theirs.norm(dim=1)).clamp(min=1e-12)
    return ((ours * theirs).sum(dim=1) / norms).tolist()


def direction_weight(agreement: float) -> float:
    """The share of the deconvolution's weight kept at ``agreement`` (:func:`change_agreement`): 0 up to
    ``DIRECTION[0]``, 1 from ``DIRECTION[1]``, linear in between."""
    return _ramp(agreement, *DIRECTION, nan=0.0)


def blend_deconvolution(blurred: Tensor, restored: Tensor, psfs: list[FloatArray]) -> Tensor:
    """Frames (F, H, W[, C]) of ``restored`` moved towards ``blurred`` deconvolved by their PSFs, each by
    the PSF's :func:`_blur_weight`, fading to ``restored`` at the borders (:func:`border_weights`): the
    refinement at full weight (:func:`refine_frames` then weighs it by the gate)."""
    weights = torch.stack([_blur_weight(psf) * border_weights(blurred.shape[1:3], psf, blurred.device) for psf in psfs])
    change = _deconvolve_frames(blurred, restored, psfs) - restored
    return restored + (weights[..., None] if change.ndim == 4 else weights) * change


def _choose_psfs(blurred: Tensor, restored: Tensor, size: int, iterations: int) -> list[tuple[FloatArray, float, bool]]:
    """:func:`refine`'s PSF of each of F frames (F, H, W[, C]), the weight of its deconvolution (0: the
    generator's output is kept; see there) and whether it works in linear light (:data:`LINEAR_PREFERENCE`;
    only frames the display-value PSF would refine are estimated again in linear light, and refined there
    with at most the display PSF's weight; the blur's variation across the frame is checked in display
    values only)."""
    display = _gated_psfs(blurred, restored, size, iterations)
    passing = [frame for frame, (_, _, weight) in enumerate(display) if weight > 0]
    in_light = (to_linear(frames[passing]) for frames in (blurred, restored))
    # whether the blur varies across the frame was decided in display values: not checked again
    linear = dict(zip(passing, _gated_psfs(*in_light, size, iterations, check_variation=False) if passing else []))
    choices = []
    for frame, (psf, share, weight) in enumerate(display):
        in_linear = frame in linear and linear[frame][2] > 0 and linear[frame][1] <= LINEAR_PREFERENCE * share
        choices.append((linear[frame][0], min(weight, linear[frame][2]), True) if in_linear else (psf, weight, False))
    return choices


def _gated_psfs(
    blurred: Tensor, restored: Tensor, size: int, iterations: int, check_variation: bool = True
) -> list[tuple[FloatArray, float, float]]:
    """Per frame, the trusted PSF (:func:`trusted_psfs`), its unexplained share and the weight of its
    deconvolution: :func:`agreement_weight`, 0 where the blur varies across the frame (unless
    ``check_variation`` is False: the linear-light estimate of a frame found uniform in display values)."""
    choices = trusted_psfs(blurred, restored, size, iterations)
    weights = [agreement_weight(share) if np.isfinite(share) else 0.0 for _, share in choices]
    agreeing = [frame for frame, weight in enumerate(weights) if weight > 0] if check_variation else []
    varies = (
        _varies_across_frames(_gray(blurred)[agreeing], _gray(restored)[agreeing], [choices[i][0] for i in agreeing])
        if agreeing
        else []
    )
    varying = {frame for frame, v in zip(agreeing, varies) if v}
    return [(psf, share, 0.0 if frame in varying else weights[frame]) for frame, (psf, share) in enumerate(choices)]


def trusted_psfs(blurred: Tensor, restored: Tensor, size: int, iterations: int) -> list[tuple[FloatArray, float]]:
    """Per frame of F (F, H, W[, C]), the PSF :func:`refine` would use and the share of the generator's
    change it leaves unexplained (:func:`unexplained`; infinite where no estimate is trusted)."""
    f, n = len(blurred), len(STARTS)
    gray_blurred, gray_restored = (_centre_crop(_gray(frames), ESTIMATE_WINDOW) for frames in (blurred, restored))
    latent = shock_filter(gray_restored)
    ones = torch.ones_like(latent)
    # frame by frame, the starts' usable edges in STARTS' order: all, all (coarse to fine), wide structures only
    usable = torch.stack([ones, ones, wide_structures(gray_blurred).to(latent.dtype)], dim=1)
    twice = (_each(planes, 2) for planes in (gray_blurred, latent))
    first = estimate_psfs(*twice, size, usable=usable[:, ::2].flatten(0, 1))  # strongest edges, wide structures
    coarse = _coarse_starts(gray_blurred, gray_restored, size)
    starts = [psf for i in range(f) for psf in (first[2 * i], coarse[i], first[2 * i + 1])]
    # all settle side by side (batched FFTs: fewer, larger steps on a GPU, as fast on the CPU)
    blurred_n, restored_n = (_each(planes, n) for planes in (gray_blurred, gray_restored))
    settled = _settle_many(blurred_n, restored_n, starts, iterations - 1, usable.flatten(0, 1))
    blurs = [i for i, psf in enumerate(settled) if _blur_weight(psf) > 0]  # a point explains any input
    blur_psfs = [settled[i] for i in blurs]
    measured = _reblur_residuals(_rows(blurred_n, blurs), _rows(restored_n, blurs), blur_psfs) if blurs else []
    residuals = dict(zip(blurs, measured))
    checked = sorted({i // n for i in blurs})  # frames with a blur-like estimate to cross-check
    cross_checks = (
        dict(zip(checked, estimate_psfs(gray_blurred[checked], latent[checked], size, keep=CROSS_CHECK_KEEP)))
        if checked
        else {}
    )
    chosen: list[FloatArray] = []
    trusting: list[int] = []  # frames with a trusted estimate
    for frame in range(f):
        candidates = range(frame * n, (frame + 1) * n)
        trusted = [(residuals[i], settled[i]) for i in candidates if i in residuals]
        trusted = [(r, psf) for r, psf in trusted if not unreliable(psf, cross_checks[frame])]
        chosen.append(min(trusted, key=lambda pair: pair[0])[1] if trusted else settled[candidates[0]])
        if trusted:
            trusting.append(frame)
    shares = (
        _unexplained_many(gray_blurred[trusting], gray_restored[trusting], [chosen[i] for i in trusting])
        if trusting
        else []
    )
    share_of = dict(zip(trusting, shares))
    return [(psf, share_of.get(frame, float("inf"))) for frame, psf in enumerate(chosen)]


#: :func:`varies_across_frame`: side (px) of the corner regions (at most), the smallest side worth
#: checking, and how much better a region's own PSF may explain it than the chosen PSF before the blur
#: counts as varying across the frame. On the realistic validation set (as first synthesised, before its
#: paths were centred), where refinement lost 1.6-3.2 dB to the generator's output (zoom, camera roll),
#: a corner's own PSF explained it 1.23-8 times better; on one-kernel blur (validation gravel, test
#: camera/coffee/rocket) at most 1.15 times.
REGION_SIDE, MIN_REGION_SIDE, REGION_TOLERANCE = 320, 192, 0.2
#: ... or every corner's own PSF is wider (radius of gyration) than this many times the chosen one: the
#: blur grows away from the centre, as when the camera rolls about its axis. On the validation sets'
#: uniform blur (84 frames) the smallest of the four ratios reached 1.10 at most; camera roll of gravel
#: 1.21 (refined: -1.4 dB), one-kernel blur of Volna's smooth sea 1.6 (-2.1 and -0.4 dB).
WIDER_IN_CORNERS = 1.15


def varies_across_frame(gray_blurred: Tensor, gray_restored: Tensor, psf: FloatArray) -> bool:
    """Whether one PSF fails to explain the whole frame (camera roll, a moving subject, zoom, depth):
    in some corner region, the PSF re-estimated there (two :func:`settle` steps from ``psf``) explains
    the region (:func:`reblur_residual`) more than :data:`REGION_TOLERANCE` better than ``psf`` does,
    or in every corner it is more than :data:`WIDER_IN_CORNERS` times as wide. Frames whose corner
    regions would be smaller than :data:`MIN_REGION_SIDE` are not checked.
    (A region's own PSF explaining it worse only means estimating there went less well: on one-kernel
    blur of camera, the true PSF explained the corners 13-28 % better than their own estimates.)"""
    return _varies_across_frames(gray_blurred[None], gray_restored[None], [psf])[0]


def _varies_across_frames(gray_blurred: Tensor, gray_restored: Tensor, psfs: list[FloatArray]) -> list[bool]:
    """:func:`varies_across_frame` of F frames (F, H, W) and their PSFs, the 4 F corner regions at once."""
    evidence = corner_evidence(gray_blurred, gray_restored, psfs)
    if evidence is None:
        return [False] * len(psfs)
    return [
        any(r > 1 + REGION_TOLERANCE for r in ratios) or min(widening) > WIDER_IN_CORNERS
        for ratios, widening in evidence
    ]


def corner_evidence(
    gray_blurred: Tensor, gray_restored: Tensor, psfs: list[FloatArray]
) -> list[tuple[list[float], list[float]]] | None:
    """Per frame of F (F, H, W) and its PSF, the four corner regions' residual ratios (the PSF's
    :func:`reblur_residual` over that of the region's own PSF, two :func:`settle` steps from it) and
    widths (the region's own PSF's radius of gyration over the PSF's); None where the regions would be
    smaller than :data:`MIN_REGION_SIDE` (not checked)."""
    h, w = gray_blurred.shape[-2:]
    side = min(REGION_SIDE, h // 2, w // 2)
    if side < MIN_REGION_SIDE:
        return None
    corners = ((0, 0), (0, w - side), (h - side, 0), (h - side, w - side))
    regions_blurred, regions_restored = (
        torch.stack([plane[..., y : y + side, x : x + side] for y, x in corners], dim=1).flatten(0, 1)
        for plane in (gray_blurred, gray_restored)
    )
    given = [psf for psf in psfs for _ in corners]
    own = _settle_many(regions_blurred, regions_restored, given, 2)
    ratios = [
        with_given / max(with_own, 1e-12)
        for with_given, with_own in zip(
            _reblur_residuals(regions_blurred, regions_restored, given),
            _reblur_residuals(regions_blurred, regions_restored, own),
        )
    ]
    widening = [radius_of_gyration(o) / max(radius_of_gyration(g), 1e-6) for o, g in zip(own, given)]
    n = len(corners)
    return [(ratios[i : i + n], widening[i : i + n]) for i in range(0, len(ratios), n)]


def settle(
    gray_blurred: Tensor, gray_restored: Tensor, psf: FloatArray, steps: int, usable: Tensor | None = None
) -> FloatArray:
    """Re-estimate ``psf`` up to ``steps`` times, each from ``gray_blurred`` deconvolved by the one
    before (shock-filtered; Cho and Lee 2009), stopping once it moves less than :data:`CONVERGED`."""
    batch = None if usable is None else usable[None]
    return _settle_many(gray_blurred[None], gray_restored[None], [psf], steps, batch)[0]


def _settle_many(
    gray_blurred: Tensor, gray_restored: Tensor, psfs: list[FloatArray], steps: int, usable: Tensor | None = None
) -> list[FloatArray]:
    """:func:`settle` of K PSFs side by side: planes (K or 1, H, W); each stops on its own."""
    psfs = list(psfs)
    active = list(range(len(psfs)))
    for _ in range(steps):
        if not active:
            break
        blurred = _rows(gray_blurred, active)
        latent = shock_filter(_deconvolve_gray(blurred, _rows(gray_restored, active), [psfs[i] for i in active]))
        usable_now = None if usable is None else _rows(usable, active)
        estimates = estimate_psfs(blurred, latent, psfs[active[0]].shape[0], usable=usable_now)
        moving = []
        for i, psf in zip(active, estimates):
            if np.abs(psf - psfs[i]).sum() >= CONVERGED:
                moving.append(i)
            psfs[i] = psf
        active = moving
    return psfs


#: Coarse-to-fine start: the PSF is first estimated (and settled over this many steps) at half resolution.
COARSE_STEPS = 4


def _coarse_start(gray_blurred: Tensor, gray_restored: Tensor, size: int) -> FloatArray:
    """A PSF estimated at half resolution, where a blur path is half as long, scaled up to ``size``."""
    return _coarse_starts(gray_blurred[None], gray_restored[None], size)[0]


def _coarse_starts(gray_blurred: Tensor, gray_restored: Tensor, size: int) -> list[FloatArray]:
    """:func:`_coarse_start` of F frames (F, H, W) at once."""
    half_blurred, half_restored = (_half_scale(planes) for planes in (gray_blurred, gray_restored))
    half_size = (size // 2) | 1
    halves = estimate_psfs(half_blurred, shock_filter(half_restored), half_size)
    starts = []
    for half in _settle_many(half_blurred, half_restored, halves, COARSE_STEPS):
        psf = centre_crop(ndimage.zoom(half.astype(np.float64), 2, order=1), size)
        lack = size - psf.shape[0]  # 2 x half_size is size + 1 or size - 1
        starts.append(_clean_psf(np.maximum(np.pad(psf, (0, lack)), 0), threshold=0.0))
    return starts


def _half_scale(planes: Tensor) -> Tensor:
    """``skimage.transform.rescale(plane, 0.5, order=1, anti_aliasing=True)`` of planes (..., H, W): per axis a
    Gaussian of sigma (factor - 1) / 2 (4 sigma, 'mirror' borders), then bilinear sampling at pixel centres."""
    lead, (h, w) = planes.shape[:-2], planes.shape[-2:]
    out = (max(1, round(h / 2)), max(1, round(w / 2)))
    smooth = planes.reshape(-1, 1, h, w)
    for axis, (n, m) in enumerate(zip((h, w), out)):
        taps = gaussian_taps((n / m - 1) / 2, 4.0)
        r = len(taps) // 2
        pad = (0, 0, r, r) if axis == 0 else (r, r, 0, 0)
        smooth = correlate(F.pad(smooth, pad, mode="reflect"), taps, axis - 2)  # torch's reflect: scipy's mirror
    return F.interpolate(smooth, size=out, mode="bilinear", align_corners=False).reshape(*lead, *out)


#: :func:`wide_structures`: window side (px) and the share of a window's gradient magnitude that must
#: point one way.
WIDE_WINDOW, WIDE_THRESHOLD = 9, 0.2


def wide_structures(image: Tensor) -> Tensor:
    """Pixels on the edges of structures wider than a thin line (Xu and Jia 2010's r map): in the
    :data:`WIDE_WINDOW` square around the pixel, the gradients summed as vectors keep more than
    :data:`WIDE_THRESHOLD` of their summed magnitude. Across a line thinner than the window the two
    edges' gradients cancel; blurred, such lines mislead a PSF estimate (rocket's gantries)."""
    grads = _gradients(image)
    summed = _box_sum(torch.cat([grads, torch.hypot(grads[0], grads[1])[None]]), WIDE_WINDOW)
    flow = torch.hypot(summed[0], summed[1])
    return flow > WIDE_THRESHOLD * (summed[2] + 0.002)


def _box_sum(planes: Tensor, side: int) -> Tensor:
    """Sums over the ``side`` x ``side`` square around each pixel (odd side; 'reflect' borders), by
    cumulative sums in float64: ``side**2`` times scipy.ndimage's ``uniform_filter``."""
    r = side // 2
    total = reflect_pad(planes, r).double()
    for axis in (-2, -1):
        total = torch.nn.functional.pad(total.cumsum(axis), (1, 0) if axis == -1 else (0, 0, 1, 0))
        n = total.shape[axis]
        total = total.narrow(axis, side, n - side) - total.narrow(axis, 0, n - side)
    return total.float()


def reblur_residual(gray_blurred: Tensor, gray_restored: Tensor, psf: FloatArray) -> float:
    """Mean squared difference, away from the borders, between ``gray_blurred`` and its deconvolution
    by ``psf`` blurred again by ``psf``: how well the PSF explains the input. Compare blurs only: a
    point explains any input (its deconvolution is the input itself)."""
    return _reblur_residuals(gray_blurred[None], gray_restored[None], [psf])[0]


def _reblur_residuals(gray_blurred: Tensor, gray_restored: Tensor, psfs: list[FloatArray]) -> list[float]:
    """:func:`reblur_residual` of K PSFs of one size at once; planes (K or 1, H, W)."""
    stack = np.stack(psfs)
    m = stack.shape[-1]
    error = _reblur(_deconvolve_gray(gray_blurred, gray_restored, psfs), stack) - gray_blurred
    return (error[:, m:-m, m:-m].double() ** 2).mean(dim=(-2, -1)).tolist()


#: :func:`unexplained` at or below which the deconvolution gets its full weight, and at or above which
#: the generator's output is kept; the weight falls linearly in between, so a small change in the input
#: (or in the generator: its float16 and float32 weights) moves the result a little, not by a step (a
#: hard threshold at 0.5 refined two realistic validation frames with the float16 weights and not with
#: the float32 ones: -2.3 and -2.6 dB). Chosen on the validation sets with the shipped generator (48
#: GOPRO-like frames, 12 one-kernel frames, 36 one-kernel frames of the corpus' validation photos), from
#: cached generator outputs: against the hard 0.5, +1.36 -> +1.42, +4.21 -> +4.20, +2.92 -> +2.93 dB
#: (0.2-0.6: +1.43 / +4.15 / +2.87; 0.5-0.8: +1.31 / +4.19 / +3.30); the pipeline then measured +1.41
#: and +4.19 (``benchmarks/quality.py``). High shares come from blur of light in linear intensities,
#: clipped highlights, JPEG, several motions in one frame, or a generator that removed little of the
#: blur. With the direction check (:data:`DIRECTION`) catching PSFs that miss the blur, the weight
#: reaches 0 at 0.8 instead of 0.6, so frames whose PSF found the blur keep more of its deconvolution
#: (one-kernel test camera with 20 px of shake, share 0.54: weight 0.2 -> 0.52 before the direction
#: check; at full weight +3.3 dB over the generator).
AGREEMENT = (0.3, 0.8)


def unexplained(gray_blurred: Tensor, gray_restored: Tensor, psf: FloatArray) -> float:
    """The share of the difference between the input and the generator's output that ``psf`` does not
    explain: mean squared ``psf * restored - blurred`` over mean squared ``restored - blurred``, away
    from the borders. Near the noise's share where the blur is one convolution and the generator
    restored it (then deconvolution with ``psf`` adds what the generator missed); near 1 or above where
    the generator's change is not that PSF's inverse: blur that is not one convolution (light added in
    linear intensities, clipped highlights, compression, motions that differ across the frame) or a
    PSF that missed the blur."""
    return _unexplained_many(gray_blurred[None], gray_restored[None], [psf])[0]


def _unexplained_many(gray_blurred: Tensor, gray_restored: Tensor, psfs: list[FloatArray]) -> list[float]:
    """:func:`unexplained` of F frames (F, H, W) and their PSFs (of one size) at once."""
    m = psfs[0].shape[0]
    change = _inner_mse(gray_restored, gray_blurred, m)
    missed = _inner_mse(_reblur(gray_restored, np.stack(psfs)), gray_blurred, m)
    return [a / max(b, 1e-12) for a, b in zip(missed, change)]


def _reblur(image: Tensor, psf: FloatArray) -> Tensor:
    """``image`` blurred by the centred ``psf`` (zero beyond its borders), same shape; planes (..., H, W)
    and a stack of PSFs (K, k, k) pair up (or broadcast) along the leading axis."""
    h, w = image.shape[-2:]
    shape = _fast_shape(h + psf.shape[-1], w + psf.shape[-1])
    spectrum = torch.fft.rfft2(image, s=shape) * _otf(psf, shape, image.device)
    return torch.fft.irfft2(spectrum, s=shape)[..., :h, :w]


def _inner_mse(a: Tensor, b: Tensor, margin: int) -> list[float]:
    """Mean squared difference of planes ``a`` and ``b`` (F, H, W) per plane, ``margin`` px from each border."""
    inner = (..., slice(margin, -margin), slice(margin, -margin))
    return ((a[inner].double() - b[inner]) ** 2).mean(dim=(-2, -1)).tolist()


def _blur_weight(psf: FloatArray) -> float:
    """0 for a point-like PSF (:data:`POINT_LIKE`), 1 for a blur (:data:`BLUR_LIKE`), linear in between."""
    return _ramp(radius_of_gyration(psf), POINT_LIKE, BLUR_LIKE, nan=0.0)


def _ramp(value: float, zero_at: float, one_at: float, nan: float) -> float:
    """0 up to ``zero_at``, 1 from ``one_at`` (the larger), linear in between; ``nan`` for NaN."""
    return nan if np.isnan(value) else float(np.clip((value - zero_at) / (one_at - zero_at), 0, 1))


def agreement_weight(share: float) -> float:
    """The deconvolution's weight for a PSF that leaves ``share`` of the generator's change unexplained
    (:func:`unexplained`): 1 up to ``AGREEMENT[0]``, 0 from ``AGREEMENT[1]``, linear in between."""
    full, none = AGREEMENT
    if share <= full:
        return 1.0
    return 0.0 if share >= none else (none - share) / (none - full)


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


def border_weights(shape: tuple[int, int], psf: FloatArray, device: torch.device | str = "cpu") -> Tensor:
    """0 on the frame's edge rising to 1 as far inwards as the blur drew on content beyond that edge,
    plus 2 px; 1 inside. Per side: the top rows drew on content above the frame as far as the (centred)
    PSF extends below its centre, the left columns as far as it extends right of it, and so on."""
    support = np.argwhere(psf > 0)
    r = psf.shape[0] // 2
    ramp_y, ramp_x = (
        _edge_ramp(n, (float(support[:, axis].max() - r + 2), float(r - support[:, axis].min() + 2)), device)
        for axis, n in enumerate(shape)
    )
    return torch.minimum(ramp_y[:, None], ramp_x[None, :])
