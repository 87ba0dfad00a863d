"""Overlapping tiles with partition-of-unity blending, so tiled output matches whole-frame output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Tile:
    y: int
    x: int
    h: int
    w: int


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 4) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` overlap.

    Starts are multiples of ``multiple`` (the network's stride; ``length - tile`` must be one too), so
    every tile sees the same sampling grid as the whole frame.
    """
    if tile >= length:
        return [0]
    if (length - tile) % multiple:
        raise ValueError(f"length - tile must be a multiple of {multiple}, got {length} - {tile}")
    step = tile - overlap - multiple  # rounding a start may move it by up to multiple/2 each way
    if step <= 0:
        raise ValueError(f"tile size {tile} must be larger than the overlap {overlap} plus {multiple}")
    n = int(np.ceil((length - tile) / step)) + 1
    # rounding onto the grid can land two starts on one place (a step under the grid): each tile once
    return sorted({round(i * (length - tile) / (n - 1) / multiple) * multiple for i in range(n)})


def balanced_size(length: int, tile: int, overlap: int, multiple: int = 4) -> int:
    """The smallest tile size (a multiple of ``multiple``, at most ``tile``) that covers ``length`` with
    as few tiles as ``tile`` needs: 1056 px in tiles of at most 1024 become two tiles of 580, not 1024."""
    if tile >= length:
        return length
    overlap += multiple  # the slack tile_starts keeps for rounding starts onto the grid
    n = int(np.ceil((length - overlap) / (tile - overlap)))
    size = int(np.ceil((length + (n - 1) * overlap) / n))
    return min(tile, -(-size // multiple) * multiple)


def plan_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 4) -> list[Tile]:
    """Equal-size tiles covering a (height, width) frame, each at most ``tile`` on a side, starting on
    the network's grid of ``multiple`` px."""
    th, tw = (balanced_size(n, tile, overlap, multiple) for n in (height, width))
    ys, xs = tile_starts(height, th, overlap, multiple), tile_starts(width, tw, overlap, multiple)
    return [Tile(y, x, th, tw) for y in ys for x in xs]


def _ramp(length: int, overlap_before: int, overlap_after: int) -> NDArray[np.float32]:
    """1D weights: 0 over the first quarter of an overlap, a linear ramp over its middle half, then 1.

    Where two tiles overlap by ``v`` pixels their ramps sum to exactly 1, and the quarter nearest each
    tile's cut edge (the pixels that lack context) gets no weight at all.
    """
    w = np.ones(length, dtype=np.float32)
    d = np.arange(length, dtype=np.float32) + 0.5
    if overlap_before > 0:
        w = np.minimum(w, np.clip((d - overlap_before / 4) / (overlap_before / 2), 0, 1))
    if overlap_after > 0:
        w = np.minimum(w, np.clip((length - d - overlap_after / 4) / (overlap_after / 2), 0, 1))
    return w


def tile_weights(tile: Tile, tiles: list[Tile], height: int, width: int) -> NDArray[np.float32]:
    """(h, w) blending weights of ``tile``: ramps only on sides that overlap a neighbour."""
    ys = sorted({t.y for t in tiles})
    xs = sorted({t.x for t in tiles})
    iy, ix = ys.index(tile.y), xs.index(tile.x)
    before_y = ys[iy - 1] + tile.h - tile.y if iy > 0 else 0
    after_y = tile.y + tile.h - ys[iy + 1] if iy + 1 < len(ys) else 0
    before_x = xs[ix - 1] + tile.w - tile.x if ix > 0 else 0
    after_x = tile.x + tile.w - xs[ix + 1] if ix + 1 < len(xs) else 0
    return np.outer(_ramp(tile.h, before_y, after_y), _ramp(tile.w, before_x, after_x))
