"""Synthetic blur: random camera-trajectory motion PSFs (Boracchi and Foi 2012, as used by DeblurGAN),
linear-motion and defocus kernels, and applying them to images of any shape.

Every kernel is a float32 (k, k) array with odd k, summing to 1, with its centre of mass exactly on the
central pixel, so blurring never shifts the content (the original code normalised by min-max and only
accepted square RGB images).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

FloatArray = NDArray[np.float32]


def random_trajectories(
    rng: np.random.Generator, lengths: NDArray[np.float64], steps: int = 512
) -> NDArray[np.complex128]:
    """Random camera paths (complex positions, shape (len(lengths), steps)) of total lengths ``lengths``.

    Boracchi-Foi model: each path has random centripetal pull, gaussian shake and rare abrupt turns;
    the velocity keeps constant magnitude, so the path length is exactly ``length``.
    """
    count = len(lengths)
    centripetal = 0.7 * rng.random(count)
    big_shake = 0.2 * rng.random(count)
    gaussian_shake = 10.0 * rng.random(count)
    explosiveness = 0.005
    speed = np.asarray(lengths, dtype=np.float64) / (steps - 1)
    v = np.exp(1j * 2 * np.pi * rng.random(count)) * speed
    x = np.zeros((count, steps), dtype=np.complex128)
    for t in range(steps - 1):
        abrupt = rng.random(count) < big_shake * explosiveness
        turn = 2 * v * np.exp(1j * (np.pi + (rng.random(count) - 0.5)))
        shake = gaussian_shake * (rng.standard_normal(count) + 1j * rng.standard_normal(count))
        dv = np.where(abrupt, turn, 0) + explosiveness * (shake - centripetal * x[:, t]) * speed
        v = v + dv
        v = v / np.maximum(np.abs(v), 1e-12) * speed
        x[:, t + 1] = x[:, t] + v
    return x


def rasterize(path: NDArray[np.complex128], size: int | None = None) -> FloatArray:
    """Splat a path (complex positions) bilinearly into a centred PSF of odd ``size`` summing to 1."""
    path = path - path.mean()  # centre of mass of the PSF = mean position = centre pixel
    extent = float(np.max(np.abs(np.concatenate([path.real, path.imag])))) if path.size else 0.0
    if size is None:
        size = 2 * int(np.ceil(extent)) + 3
    if size % 2 == 0 or size < 2 * np.ceil(extent) + 3:
        raise ValueError(f"PSF size must be odd and >= {2 * int(np.ceil(extent)) + 3}, got {size}")
    c = size // 2
    xs, ys = path.real + c, path.imag + c
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    psf = np.zeros((size, size), dtype=np.float64)
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(psf, (y0 + dy, x0 + dx), w)
    return (psf / psf.sum()).astype(np.float32)


def motion_kernels(
    rng: np.random.Generator, count: int, length_range: tuple[float, float] = (3.0, 30.0), size: int | None = None
) -> list[FloatArray]:
    """``count`` random-trajectory PSFs whose paths have lengths drawn uniformly from ``length_range``.

    A random exposure fraction of each path is used, as in DeblurGAN. With ``size=None`` each kernel
    is as small as its path allows; otherwise all have ``size`` (odd), and a path that would not fit
    is shrunk until it does.
    """
    if count == 0:  # draws nothing either way; skips the paths' 511-step loop
        return []
    lengths = rng.uniform(*length_range, size=count)
    exposures = rng.uniform(0.6, 1.0, size=count)
    paths = random_trajectories(rng, lengths / exposures)
    kernels = []
    for path, exposure in zip(paths, exposures):
        path = path[: max(2, int(len(path) * exposure))]
        kernels.append(rasterize(_fit(path, size), size))
    return kernels


def _fit(path: NDArray[np.complex128], size: int | None) -> NDArray[np.complex128]:
    """The centred path, shrunk if needed so that it fits a ``size`` kernel."""
    centred = path - path.mean()
    if size is None:
        return centred
    extent = float(np.max(np.abs(np.concatenate([centred.real, centred.imag]))))
    limit = (size - 3) // 2 * (1 - 1e-9)  # rasterize needs size >= 2 * ceil(extent) + 3
    return centred * (limit / extent) if extent > limit else centred


def linear_kernel(length: float, angle_deg: float, size: int | None = None) -> FloatArray:
    """A straight motion blur of ``length`` pixels at ``angle_deg`` degrees."""
    n = max(2, int(np.ceil(length * 4)))
    t = np.linspace(-length / 2, length / 2, n)
    return rasterize(t * np.exp(1j * np.deg2rad(angle_deg)), size)


def defocus_kernel(radius: float, size: int | None = None) -> FloatArray:
    """A uniform disk (out-of-focus blur) of ``radius`` pixels, anti-aliased by supersampling."""
    size = size or 2 * int(np.ceil(radius)) + 3
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    s = 8
    coords = (np.arange(size * s) + 0.5) / s - size / 2
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    disk = (xx**2 + yy**2 <= max(radius, 0.5) ** 2).astype(np.float64)
    psf = disk.reshape(size, s, size, s).sum(axis=(1, 3))
    return (psf / psf.sum()).astype(np.float32)


def blur_image(
    image: NDArray, kernel: FloatArray, noise_sigma: float = 0.0, rng: np.random.Generator | None = None
) -> FloatArray:
    """Blur a float image (H, W) or (H, W, C) with values in [0, 1] by ``kernel``; add gaussian noise.

    Borders are handled by reflection, so any shape works and the output has the input's shape.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim not in (2, 3):
        raise ValueError(f"blur_image expects (H, W) or (H, W, C), got shape {img.shape}")
    k = kernel[:, :, None] if img.ndim == 3 else kernel
    out = ndimage.convolve(img, k, mode="reflect")
    if noise_sigma > 0:
        rng = rng or np.random.default_rng()
        out = out + rng.normal(0.0, noise_sigma, out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
