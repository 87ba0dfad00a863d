"""Training pairs made on the fly from sharp photographs by the GOPRO-like engine (:mod:`.realistic`).

Every batch is a pure function of ``(seed, step, rank)``: the random choices are drawn on the CPU and
the engine renders them on ``device`` (the CPU, or the GPU that trains, where it keeps training fed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from .realistic import Plan, RealisticBlur, plan_batch, render


def load_photos(folder: str | Path) -> list[NDArray[np.uint8]]:
    """The photos of a folder (a corpus split or a pack) as uint8 RGB arrays, in name order."""
    from ..io.images import as_rgb, is_image_file, read_opaque
    from ..io.intensity import to_float01

    if not Path(folder).is_dir():
        raise FileNotFoundError(
            f"Photo folder {folder} does not exist; build the corpus with `napari-deblurgan corpus`"
        )
    files = sorted(p for p in Path(folder).iterdir() if is_image_file(p))
    if not files:
        raise FileNotFoundError(f"No photos (.png, .jpg) in {folder}; build them with `napari-deblurgan corpus`")
    photos = []
    for f in files:
        image = as_rgb(read_opaque(f, single=True))
        if image.dtype != np.uint8:  # 16-bit, float (TIFF)
            image = np.round(to_float01(image) * 255).astype(np.uint8)
        photos.append(np.ascontiguousarray(image))
    return photos


class RealisticPairs:
    """Batches of (blurred, sharp) crops of ``photos``, float32 (N, 3, crop, crop) in [-1, 1].

    Each sample is a ``crop`` square of a photo downscaled by a random factor in [``scale_min``, 1]
    (the photo is the frame: a camera's roll blurs its corners more than its centre), blurred by the
    engine with ``options``, then flipped or turned at random.
    """

    def __init__(
        self,
        photos: Sequence[NDArray[np.uint8]],
        crop: int = 256,
        batch_size: int = 8,
        seed: int = 0,
        options: RealisticBlur | None = None,
        scale_min: float = 0.5,
        device: str | torch.device = "cpu",
    ) -> None:
        if len(photos) < 2:
            raise ValueError("RealisticPairs needs at least two photos (moving objects come from another one)")
        if not 0 < scale_min <= 1:
            raise ValueError(f"scale_min is the smallest downscaling factor, in (0, 1]; got {scale_min}")
        self.photos = list(photos)
        self.crop, self.batch_size, self.seed, self.scale_min = crop, batch_size, seed, scale_min
        self.options = options or RealisticBlur()
        self.device = torch.device(device)
        self.margin = math.ceil(self.options.extent[1]) + 2
        areas = np.array([math.sqrt(p.shape[0] * p.shape[1]) for p in self.photos])
        self.weights = areas / areas.sum()

    def _region(self, photo: NDArray[np.uint8], top: float, left: float, size: float, side: int) -> NDArray[np.float16]:
        """The square of ``size`` photo px at (top, left), resampled to ``side`` px (mirrored past the edges)."""
        n = max(1, round(size))
        window = torch.from_numpy(_window(photo, math.floor(top), math.floor(left), n, n))
        patch = window.permute(2, 0, 1)[None].contiguous().float() / 255
        if n != side:
            patch = F.interpolate(patch, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        # float16 (within 1/16 of a grey level) numpy: a data worker sends a quarter of float32 tensors' time
        return patch[0].clamp(0, 1).half().numpy()

    def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return self.finish(self.prepare(step, rank))

    def prepare(self, step: int, rank: int = 0) -> PreparedBatch:
        """The CPU part of a batch: the canvases cut from the photos and every random choice. Data workers
        run this (:class:`.prefetch.PrefetchedSource`) while the training process renders on its GPU."""
        rng = np.random.default_rng([self.seed, step, rank])
        side = self.crop + 2 * self.margin
        frames, crops, canvases, object_regions = [], [], [], []
        for _ in range(self.batch_size):
            photo = self.photos[rng.choice(len(self.photos), p=self.weights)]
            s = rng.uniform(self.scale_min, 1.0)
            fh, fw = max(self.crop, round(photo.shape[0] * s)), max(self.crop, round(photo.shape[1] * s))
            top, left = int(rng.integers(fh - self.crop + 1)), int(rng.integers(fw - self.crop + 1))
            frames.append((fh, fw))
            crops.append((top, left))
            canvases.append(self._region(photo, (top - self.margin) / s, (left - self.margin) / s, side / s, side))
            other = self.photos[rng.choice(len(self.photos), p=self.weights)]
            so = rng.uniform(self.scale_min, 1.0)
            oh, ow = other.shape[0] * so, other.shape[1] * so
            oy, ox = rng.uniform(0, max(0.0, oh - side)), rng.uniform(0, max(0.0, ow - side))
            object_regions.append((other, oy / so, ox / so, side / so))
        plan = plan_batch(rng, self.options, (self.crop, self.crop), self.margin, frames, crops)
        turns, flips = rng.integers(4, size=self.batch_size), rng.integers(2, size=self.batch_size)
        # only the samples with a moving object (the "object" kind) use an object region: cut only theirs
        objects = [self._region(*object_regions[i], side) for i in np.flatnonzero(plan.has_object)]
        movers = np.stack(objects) if objects else np.zeros((0, 3, side, side), np.float16)
        return PreparedBatch(np.stack(canvases), movers, plan, turns, flips)

    def finish(self, prepared: PreparedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Render a prepared batch on :attr:`device`: (blurred, sharp), turned and flipped, in [-1, 1]."""
        canvases = torch.from_numpy(prepared.canvases).to(self.device).float()
        objects = torch.zeros_like(canvases)  # render reads the object regions of the movers only
        movers = torch.as_tensor(np.flatnonzero(prepared.plan.has_object), device=self.device)
        objects[movers] = torch.from_numpy(prepared.objects).to(self.device).float()
        blurred, sharp = render(canvases, objects, prepared.plan, (self.crop, self.crop))
        pairs = []
        for t in (blurred, sharp):
            out = [torch.rot90(x, int(k), dims=(1, 2)) for x, k in zip(t, prepared.turns)]
            pairs.append(torch.stack([x.flip(2) if f else x for x, f in zip(out, prepared.flips)]).contiguous() * 2 - 1)
        return pairs[0], pairs[1]


@dataclass
class PreparedBatch:
    """What :meth:`RealisticPairs.prepare` makes on the CPU for :meth:`RealisticPairs.finish` to render."""

    canvases: NDArray[np.float16]  # (B, 3, side, side) in [0, 1]: the sharp frames' regions
    objects: NDArray[np.float16]  # (M, 3, side, side): the regions the M samples' moving objects come from
    plan: Plan
    turns: NDArray[np.int64]  # quarter turns of each sample
    flips: NDArray[np.int64]  # 1: mirrored left-right


def _mirrored(index: NDArray[np.int64], length: int) -> NDArray[np.int64]:
    """Indices mirrored into [0, length) about the first and last element (numpy's "reflect"), however far out."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    folded = np.abs(index) % period
    return np.where(folded >= length, period - folded, folded)


def _window(photo: NDArray, top: int, left: int, height: int, width: int) -> NDArray:
    """The ``height`` x ``width`` window of ``photo`` at (top, left), mirrored past its edges."""
    if top >= 0 and left >= 0 and top + height <= photo.shape[0] and left + width <= photo.shape[1]:
        return photo[top : top + height, left : left + width]  # inside: a view, no gather
    rows = _mirrored(np.arange(top, top + height), photo.shape[0])
    cols = _mirrored(np.arange(left, left + width), photo.shape[1])
    return np.ascontiguousarray(photo[rows[:, None], cols[None, :]])


def realistic_cases(
    photos: Sequence[NDArray],
    options: RealisticBlur,
    size: int | None,
    count: int,
    seed: int,
    kinds: Sequence[str] | None = None,
    eight_bit: bool = True,
) -> list[tuple[NDArray[np.float32], NDArray[np.float32]]]:
    """Fixed (blurred, sharp) float32 RGB test cases in [0, 1]. Case ``i`` blurs RGB photo ``i % len(photos)``
    (uint8, uint16 or float in [0, 1]; its central ``size`` square, or all of it with ``size=None``; the
    photo is the frame) with the blur kind ``kinds[i % len(kinds)]`` (default: drawn from
    ``options.mix``), from the seed ``(seed, i)``; its moving objects come from the next photo in the list
    that is another image (a list that repeats each photo, one case a kind, still cuts them from another).
    ``eight_bit``: the blurred frames rounded to 8 bits (see :func:`.realistic.render`)."""
    from dataclasses import replace

    from ..io.intensity import to_float01

    def as_tensor(image: NDArray) -> torch.Tensor:
        return torch.from_numpy(to_float01(image)).permute(2, 0, 1)[None]

    cases = []
    margin = math.ceil(options.extent[1]) + 2
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = (min(size, h), min(size, w)) if size else (h, w)
        top, left = (h - ch) // 2, (w - cw) // 2
        canvas = _window(photo, top - margin, left - margin, ch + 2 * margin, cw + 2 * margin)
        others = (photos[(i + k) % len(photos)] for k in range(1, len(photos)))
        objects = _window(next((p for p in others if p is not photo), photo), 0, 0, *canvas.shape[:2])
        case_options = replace(options, mix={kinds[i % len(kinds)]: 1.0}) if kinds else options
        plan = plan_batch(np.random.default_rng([seed, i]), case_options, (ch, cw), margin, [(h, w)], [(top, left)])
        blurred, sharp = render(as_tensor(canvas), as_tensor(objects), plan, (ch, cw), eight_bit)
        cases.append(tuple(t[0].permute(1, 2, 0).numpy().astype(np.float32) for t in (blurred, sharp)))
    return cases  # type: ignore[return-value]
