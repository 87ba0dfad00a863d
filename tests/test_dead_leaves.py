"""Dead-leaves images: procedural training images (their use in batches: test_batches.py)."""

from __future__ import annotations

import numpy as np
import pytest


def test_dead_leaves_are_deterministic_opaque_discs_in_the_palette_colours() -> None:
    from napari_deblurgan.gan.data.dead_leaves import dead_leaves

    palette = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    a = dead_leaves(np.random.default_rng(3), 64, palette, supersample=1)
    b = dead_leaves(np.random.default_rng(3), 64, palette, supersample=1)
    assert a.shape == (64, 64, 3) and a.dtype == np.float32 and np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and np.all(a[..., 1] == 0)  # shaded red and blue only
    red = a[..., 0] > a[..., 2]
    assert 0.05 < red.mean() < 0.95  # both colours occur: many leaves, not one
    edges = np.abs(np.diff(red.astype(int), axis=0)).sum()
    assert edges > 64  # occlusion boundaries: a piecewise image, not noise or a flat field
    with pytest.raises(ValueError, match="palette"):
        dead_leaves(np.random.default_rng(0), 8, np.zeros((0, 3), np.float32))
