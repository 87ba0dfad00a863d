from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_deblurgan.gan.restoration.tiling import balanced_size, plan_tiles, tile_starts, tile_weights


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"), [(1056, 1056, 1024, 64), (4128, 2000, 512, 128), (64, 300, 64, 16)]
)
def test_tiles_cover_the_frame_on_the_stride_grid_with_unit_weights(height, width, tile, overlap) -> None:
    tiles = plan_tiles(height, width, tile, overlap)
    total = np.zeros((height, width))
    for t in tiles:
        assert t.y % 4 == 0 and t.x % 4 == 0 and t.h <= tile and t.w <= tile
        total[t.y : t.y + t.h, t.x : t.x + t.w] += tile_weights(t, tiles, height, width)
    np.testing.assert_allclose(total, 1.0, atol=1e-5)  # a partition of unity: no seam can come from weights


def test_neighbours_overlap_by_at_least_the_request() -> None:
    for length in range(600, 1400, 36):
        size = balanced_size(length, 512, 96)
        starts = tile_starts(length, size, 96)
        assert starts[0] == 0 and starts[-1] + size == length
        assert all(a + size - b >= 96 for a, b in itertools.pairwise(starts))


def test_cut_edges_get_no_weight() -> None:
    tiles = plan_tiles(100, 200, 120, 40)
    left = next(t for t in tiles if t.x == 0)
    w = tile_weights(left, tiles, 100, 200)
    assert w[:, -10:].max() == 0 and w[:, 0].min() == 1  # frame edge keeps full weight


def test_balanced_tiles_avoid_waste() -> None:
    assert balanced_size(1056, 1024, 64) == 564  # two tiles of 564, not two of 1024
    for length, tile in ((1056, 768), (1056, 512), (4128, 1024), (2000, 700)):
        size = balanced_size(length, tile, 64)
        fewest = int(np.ceil((length - 68) / (tile - 68)))
        assert len(tile_starts(length, size, 64)) == fewest  # no extra row of tiles
    assert balanced_size(900, 1024, 64) == 900


def test_a_step_under_the_grid_gives_each_tile_once() -> None:
    starts = tile_starts(144, 32, 7, 16)  # steps of 9 px on a 16 px grid
    assert starts == sorted(set(starts)) and starts[0] == 0 and starts[-1] == 144 - 32
    assert all(b - a <= 32 - 7 for a, b in itertools.pairwise(starts))  # still overlapping by at least 7
