"""Training data: crops of blurred/sharp pairs from A/B folders, GOPRO_Large and aligned-AB images
(found by :mod:`.pairs`), or pairs synthesised on the fly from sharp images.

Every batch is a pure function of ``(seed, step, rank)``, so a resumed or distributed run sees exactly
the data a straight run would. Batches are float32 (N, 3, crop, crop) tensors in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from ..io.images import as_rgb
from ..io.intensity import to_float01
from .blur import defocus_kernel, linear_kernel, motion_kernels
from .dead_leaves import dead_leaves as dead_leaves_image
from .pairs import load_pair

#: scikit-image's bundled images (no download needed), split once and for all. ``clock`` is real
#: motion blur (the demo image); ``test`` images are never trained or validated on.
SKIMAGE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut",
        "brick",
        "cell",
        "colorwheel",
        "grass",
        "hubble_deep_field",
        "immunohistochemistry",
        "logo",
        "microaneurysms",
        "moon",
        "page",
        "retina",
        "text",
        "stereo_motorcycle",
    ),
    "val": ("coins", "gravel"),
    "test": ("camera", "coffee", "rocket", "chelsea"),
}


def skimage_images(split: Literal["train", "val", "test"]) -> list[NDArray[np.float32]]:
    """The scikit-image images of ``split`` as float32 RGB arrays in [0, 1]."""
    import skimage.data

    images = []
    for name in SKIMAGE_SPLITS[split]:
        data = getattr(skimage.data, name)()
        for img in data[:2] if name == "stereo_motorcycle" else (data,):
            images.append(as_rgb(to_float01(np.asarray(img))))
    return images


class BatchSource(Protocol):
    """Anything that yields the training batch for a given step."""

    def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (blurred, sharp) for ``step``: float32 (N, 3, crop, crop) in [-1, 1]."""
        ...


def _rng(seed: int, step: int, rank: int) -> np.random.Generator:
    return np.random.default_rng([seed, step, rank])


def _augment(patches: list[NDArray], rng: np.random.Generator) -> list[NDArray]:
    """The same random flip/transpose for every array of one sample (keeps pairs aligned)."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = [np.rot90(p, k, axes=(0, 1)) for p in patches]
    return [np.ascontiguousarray(p[:, ::-1] if flip else p) for p in out]


def _random_crop(images: Sequence[NDArray], size: int, rng: np.random.Generator) -> list[NDArray]:
    """The same random ``size`` crop of aligned images; smaller images are reflect-padded first."""
    h, w = images[0].shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
        images = [np.pad(im, pad, mode="symmetric") for im in images]
        h, w = images[0].shape[:2]
    y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    return [im[y : y + size, x : x + size] for im in images]


def _to_tensor(patches: Sequence[NDArray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).contiguous() * 2.0 - 1.0


@dataclass
class BlurCurriculum:
    """Maximum motion length grows linearly from ``start`` to ``end`` px over ``ramp_steps`` steps."""

    start: float = 8.0
    end: float = 35.0
    ramp_steps: int = 0

    def max_length(self, step: int) -> float:
        if self.ramp_steps <= 0:
            return self.end
        return self.start + (self.end - self.start) * min(1.0, step / self.ramp_steps)


class SyntheticPairs:
    """Pairs made on the fly: random crops of sharp images blurred by random kernels, plus noise.

    Kernels: random-trajectory motion (most), straight-line motion (10 %), a fraction ``defocus`` of
    defocus discs (0 keeps defocus, e.g. an intentionally soft background, as it is) and a fraction
    ``small_blur`` of slight motion (paths of at most 3 px: next to no blur), so that the network
    learns to leave an image that is already sharp, or only slightly soft, as it is. The blur is a valid
    convolution of a larger crop, so there is no border effect, and the PSFs are centred, so blurred
    and sharp are aligned. Noise is gaussian with sigma up to ``max_noise``; blurred values are then
    quantised to 8 bits like a real photo.

    Against overfitting a few images: a fraction ``dead_leaves`` of the crops comes from a pool of
    procedural dead-leaves images coloured with the images' pixels; crops are downscaled (antialiased)
    by a random factor in [``scale_min``, 1]; crops whose mean absolute gradient is below
    ``min_detail`` (flat sky, black borders) are redrawn up to 4 times; crops' contrast about their
    mean is scaled by a random factor in [``contrast_min``, 1], so that low-contrast detail (fur, haze,
    shadows), where noise hides what blur left, is as common as in photos.
    """

    def __init__(
        self,
        images: Sequence[NDArray[np.float32]],
        crop: int = 128,
        batch_size: int = 8,
        seed: int = 0,
        kernel_size: int = 41,
        curriculum: BlurCurriculum | None = None,
        max_noise: float = 0.02,
        gray_prob: float = 0.2,
        scale_min: float = 1.0,
        dead_leaves: float = 0.0,
        min_detail: float = 0.0,
        pool_size: int = 48,
        soft_regions: float = 0.0,
        defocus: float = 0.1,
        contrast_min: float = 1.0,
        small_blur: float = 0.0,
    ) -> None:
        if not images:
            raise ValueError("SyntheticPairs needs at least one sharp image")
        if not (0 < scale_min <= 1 and 0 <= dead_leaves <= 1):
            raise ValueError(f"need 0 < scale_min <= 1 and 0 <= dead_leaves <= 1, got {scale_min}, {dead_leaves}")
        if not 0 < contrast_min <= 1:
            raise ValueError(f"contrast_min is the lowest contrast factor, in (0, 1]; got {contrast_min}")
        if not (defocus >= 0 and small_blur >= 0 and defocus + small_blur <= 0.9):  # NaN fails too
            raise ValueError(
                f"defocus and small_blur are fractions of the kernels, >= 0 and 0.9 at most together; "
                f"got {defocus} and {small_blur}"
            )
        self.images = [as_rgb(np.asarray(im, dtype=np.float32)) for im in images]
        self.crop, self.batch_size, self.seed = crop, batch_size, seed
        self.kernel_size = kernel_size
        self.curriculum = curriculum or BlurCurriculum()
        self.max_noise, self.gray_prob = max_noise, gray_prob
        self.scale_min, self.dead_leaves, self.min_detail = scale_min, dead_leaves, min_detail
        self.soft_regions, self.defocus, self.contrast_min = soft_regions, defocus, contrast_min
        self.small_blur = small_blur
        areas = np.array([np.sqrt(im.shape[0] * im.shape[1]) for im in self.images])
        self.weights = areas / areas.sum()
        self.pool: list[NDArray[np.float32]] = []
        if dead_leaves > 0:
            rng = np.random.default_rng([seed, 2**32 - 1])
            palette = np.concatenate([im.reshape(-1, 3)[rng.integers(im.size // 3, size=256)] for im in self.images])
            size = int(np.ceil((crop + kernel_size) / scale_min))
            self.pool = [dead_leaves_image(rng, size, palette) for _ in range(pool_size)]

    def _sharp_patch(self, rng: np.random.Generator) -> NDArray[np.float32]:
        """One augmented sharp crop of side ``crop + kernel_size - 1``."""
        side = self.crop + 2 * (self.kernel_size // 2)
        scale = rng.uniform(self.scale_min, 1.0) if self.scale_min < 1 else 1.0
        source_side = round(side / scale)
        for _ in range(5):
            if self.pool and rng.random() < self.dead_leaves:
                img = self.pool[rng.integers(len(self.pool))]
            else:
                img = self.images[rng.choice(len(self.images), p=self.weights)]
            (patch,) = _random_crop([img], source_side, rng)
            if self.min_detail <= 0 or _detail(patch) >= self.min_detail * scale:
                break
        if source_side != side:
            t = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None]
            t = torch.nn.functional.interpolate(t, size=(side, side), mode="bilinear", antialias=True)
            patch = t[0].permute(1, 2, 0).clamp(0, 1).numpy()
        (patch,) = _augment([patch], rng)
        if self.soft_regions > 0 and rng.random() < self.soft_regions:
            patch = _soften_region(patch, rng)
        if self.contrast_min < 1:
            mean = patch.mean(axis=(0, 1), keepdims=True)
            patch = mean + rng.uniform(self.contrast_min, 1.0) * (patch - mean)
        return patch

    def kernels(self, rng: np.random.Generator, count: int, max_length: float) -> list[NDArray[np.float32]]:
        size = self.kernel_size
        motion_share = max(0.0, 0.9 - self.defocus - self.small_blur)  # not -1e-17 from rounding
        kinds = rng.choice(4, size=count, p=[motion_share, 0.1, self.defocus, self.small_blur])
        motion = iter(motion_kernels(rng, int((kinds == 0).sum()), (1.0, max_length), size))
        slight = iter(motion_kernels(rng, int((kinds == 3).sum()), (0.0, 3.0), size))
        out = []
        for kind in kinds:
            if kind == 0:
                out.append(next(motion))
            elif kind == 3:
                out.append(next(slight))
            elif kind == 1:
                out.append(linear_kernel(rng.uniform(1.0, min(max_length, size - 3)), rng.uniform(0, 180), size))
            else:  # kind 2
                out.append(defocus_kernel(rng.uniform(0.5, min(max_length / 4, size // 2 - 1)), size))
        return out

    def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = _rng(self.seed, step, rank)
        r = self.kernel_size // 2
        patches, gray = [], []
        for _ in range(self.batch_size):
            patch = self._sharp_patch(rng)[:, :, rng.permutation(3)]
            gray.append(rng.random() < self.gray_prob)
            if gray[-1]:
                patch = np.repeat(patch.mean(axis=2, keepdims=True), 3, axis=2)
            patches.append(patch)
        sharp_big = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2)
        kernels = torch.from_numpy(np.stack(self.kernels(rng, self.batch_size, self.curriculum.max_length(step))))
        blurred = fft_blur_valid(sharp_big, kernels)
        sigma = torch.from_numpy(rng.uniform(0, self.max_noise, (self.batch_size, 1, 1, 1)).astype(np.float32))
        noise = torch.from_numpy(rng.standard_normal(blurred.shape).astype(np.float32))
        noise[gray] = noise[gray][:, :1].expand(-1, 3, -1, -1)  # a gray sample's noise is gray too
        blurred = torch.round(torch.clamp(blurred + sigma * noise, 0, 1) * 255) / 255
        sharp = sharp_big[:, :, r : r + self.crop, r : r + self.crop]
        return blurred * 2 - 1, sharp.contiguous() * 2 - 1


def _soften_region(patch: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    """Defocus one side of a random soft-edged line, like an out-of-focus background: the target itself
    is soft there, so the network learns to leave soft regions soft and remove only the motion blur."""
    from scipy.ndimage import gaussian_filter

    h, w = patch.shape[:2]
    soft = gaussian_filter(patch, sigma=(rng.uniform(1.0, 4.0),) * 2 + (0,), mode="reflect")
    angle, offset = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.3) * min(h, w)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    side = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle) - offset
    mask = 1 / (1 + np.exp(-side / rng.uniform(2.0, 10.0)))
    return (patch * (1 - mask[..., None]) + soft * mask[..., None]).astype(np.float32)


def _detail(patch: NDArray) -> float:
    """Mean absolute horizontal + vertical difference: about 0 for flat regions."""
    return float(np.abs(np.diff(patch, axis=0)).mean() + np.abs(np.diff(patch, axis=1)).mean())


def fft_blur_valid(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Valid convolution of each (C, P, P) image with its own (k, k) kernel: (N, C, P-k+1, P-k+1)."""
    p, k = images.shape[-1], kernels.shape[-1]
    fi = torch.fft.rfft2(images.double(), s=(p, p))
    fk = torch.fft.rfft2(kernels.double(), s=(p, p))[:, None]
    full = torch.fft.irfft2(fi * fk, s=(p, p))
    return full[..., k - 1 :, k - 1 :].float()


class PairedCrops:
    """Random aligned crops of blurred/sharp pairs read from disk (cached in memory up to a budget)."""

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        crop: int = 256,
        batch_size: int = 1,
        seed: int = 0,
        cache_bytes: int = 4 << 30,
    ) -> None:
        if not pairs:
            raise ValueError("PairedCrops needs at least one pair")
        self.pairs, self.crop, self.batch_size, self.seed = list(pairs), crop, batch_size, seed
        self.cache: dict[int, tuple[NDArray, NDArray]] = {}
        self.cache_bytes, self._cached = cache_bytes, 0

    def _load(self, i: int) -> tuple[NDArray, NDArray]:
        if i in self.cache:
            return self.cache[i]
        pair = load_pair(*self.pairs[i])
        size = pair[0].nbytes * 2
        if self._cached + size <= self.cache_bytes:
            self.cache[i] = pair
            self._cached += size
        return pair

    def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = _rng(self.seed, step, rank)
        blurred, sharp = [], []
        for _ in range(self.batch_size):
            a, b = _augment(_random_crop(self._load(int(rng.integers(len(self.pairs)))), self.crop, rng), rng)
            blurred.append(a)
            sharp.append(b)
        return _to_tensor(blurred), _to_tensor(sharp)
