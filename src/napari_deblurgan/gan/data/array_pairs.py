"""Training from in-memory stacks (for example two napari layers): a batch source for ``Trainer(source=...)``.

Frames are read one at a time (``np.asarray(stack[i])``), so lazy dask stacks stay lazy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ..io.images import as_rgb
from ..io.intensity import float_span, to_float01
from .batches import _augment, _random_crop, _rng, _to_tensor
from .pairs import check_same_shape


def _as_stack(array: Any, rgb: bool) -> Any:
    """(..., H, W) or (..., H, W, C) as (N, H, W, C) with C = 1 for grayscale (no copy for numpy or dask)."""
    spatial = 3 if rgb else 2
    if array.ndim < spatial:
        raise ValueError(f"Expected an image or a stack of {'RGB ' if rgb else ''}images, got shape {array.shape}")
    frames = array.reshape((-1, *array.shape[-spatial:]))
    return frames if rgb else frames[..., None]


class ArrayPairs:
    """Random aligned crops of blurred/sharp frames held in two arrays of one shape.

    Integer images map to [0, 1] by their dtype range; float images by ``[min(0, low), max(1, high)]``
    of both stacks. Batches are a pure function of ``(seed, step, rank)``, like :class:`~.batches.PairedCrops`.
    """

    def __init__(
        self, blurred: Any, sharp: Any, crop: int = 256, batch_size: int = 1, seed: int = 0, rgb: bool = False
    ) -> None:
        check_same_shape(blurred.shape, sharp.shape)
        self.blurred, self.sharp = _as_stack(blurred, rgb), _as_stack(sharp, rgb)
        self.crop, self.batch_size, self.seed = crop, batch_size, seed
        self.span = float_span(blurred, sharp)

    def __len__(self) -> int:
        return len(self.blurred)

    def _unit(self, image: NDArray) -> NDArray[np.float32]:
        return as_rgb(to_float01(image, self.span))

    def pair(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Frame ``index`` of both stacks as float32 RGB in [0, 1]."""
        return self._unit(np.asarray(self.blurred[index])), self._unit(np.asarray(self.sharp[index]))

    def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = _rng(self.seed, step, rank)
        blurred, sharp = [], []
        for _ in range(self.batch_size):
            i = int(rng.integers(len(self)))
            crops = _random_crop([np.asarray(self.blurred[i]), np.asarray(self.sharp[i])], self.crop, rng)
            a, b = _augment([self._unit(c) for c in crops], rng)
            blurred.append(a)
            sharp.append(b)
        return _to_tensor(blurred), _to_tensor(sharp)

    def validation_pairs(
        self, size: int = 256, count: int = 4
    ) -> list[tuple[NDArray[np.float32], NDArray[np.float32]]]:
        """Central ``size`` crops of up to ``count`` frames spread over the stack."""
        out = []
        for i in np.unique(np.linspace(0, len(self) - 1, min(count, len(self))).astype(int)):
            a, b = self.pair(int(i))
            y, x = max(0, (a.shape[0] - size) // 2), max(0, (a.shape[1] - size) // 2)
            out.append((a[y : y + size, x : x + size], b[y : y + size, x : x + size]))
        return out
