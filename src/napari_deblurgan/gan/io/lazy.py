"""Dask arrays: a lazy result computed block by block (locally or on a dask cluster). The work on a block
comes from the caller (:func:`..restoration.pipeline.deblur_lazy`), so this module needs no model code: numpy only.

Leading (stack) axes are split into single planes; large planes are split into blocks that overlap by
``context`` pixels, on the network's grid (its stride) and without padding at the frame edges, so each
block sees what the whole frame would and the seams blend away when the overlap is trimmed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def is_dask_array(obj: Any) -> bool:
    return type(obj).__module__.startswith("dask.") and hasattr(obj, "map_overlap")


def _block_sizes(length: int, block: int, multiple: int) -> tuple[int, ...]:
    """Blocks of about equal size, at most about ``block`` pixels, along an axis of ``length``: each but the
    last a multiple of ``multiple`` (the network's grid), the last the rest, never smaller than the others,
    so that no thin leftover block at the far edge lacks the context (or, for PSF refinement, the size)
    the others have."""
    if length <= block * 1.5:
        return (length,)
    count = -(-length // block)
    size = max(multiple, length // count // multiple * multiple)
    return (size,) * (count - 1) + (length - size * (count - 1),)


def deblur_dask(
    arr: Any,
    run: Callable[[np.ndarray], np.ndarray],
    colour: bool,
    block_size: int = 2048,
    context: int = 64,
    multiple: int = 4,
    frames_per_block: int = 1,
    run_split: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Any:
    """Lazy ``run`` over the blocks of a dask array whose channels (if any) are on the last axis.

    ``run`` deblurs one block (a numpy array of the same layout) and must map every block the same way:
    the whole array's value range, bound in by the caller (a block only knows its own). Blocks of at
    most ``block_size`` pixels per side overlap their neighbours by ``context`` on each side; both are
    multiples of the network's stride, ``multiple``. ``run_split`` (default ``run``) deblurs the blocks of
    frames that are split into several: work whose result depends on the whole block (one PSF per block)
    would not join at the seams, since the overlaps are trimmed, not blended.
    """
    if context % multiple:
        raise ValueError(f"context must be a multiple of {multiple} (the network's stride), got {context}")
    spatial = (arr.ndim - 3, arr.ndim - 2) if colour else (arr.ndim - 2, arr.ndim - 1)
    chunks: dict[int, Any] = {ax: 1 for ax in range(spatial[0])}
    chunks.update({ax: _block_sizes(arr.shape[ax], block_size, multiple) for ax in spatial})
    split = any(len(chunks[ax]) > 1 for ax in spatial)
    if spatial[0] > 0 and not split:
        chunks[spatial[0] - 1] = frames_per_block
    if colour:
        chunks[arr.ndim - 1] = -1
    arr = arr.rechunk(chunks)
    if not split:
        return arr.map_blocks(run, dtype=arr.dtype)
    depth = {ax: (context if ax in spatial else 0) for ax in range(arr.ndim)}
    split_run = run if run_split is None else run_split
    return arr.map_overlap(split_run, depth=depth, boundary="none", trim=True, dtype=arr.dtype)
