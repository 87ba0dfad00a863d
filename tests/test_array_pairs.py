"""Training batches from in-memory stacks (the training widget's "open layers" source)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_deblurgan.gan.data.array_pairs import ArrayPairs
from napari_deblurgan.gan.data.pairs import PairingError


def test_batches_are_aligned_deterministic_and_in_range() -> None:
    sharp = np.random.default_rng(0).integers(0, 65535, (3, 40, 50), dtype=np.uint16)
    pairs = ArrayPairs(sharp, sharp, crop=32, batch_size=4, seed=1)
    blurred_batch, sharp_batch = pairs.batch(7)
    assert blurred_batch.shape == (4, 3, 32, 32) and blurred_batch.min() >= -1 and blurred_batch.max() <= 1
    assert np.array_equal(blurred_batch, sharp_batch)  # same crop and augmentation for both
    assert np.array_equal(pairs.batch(7)[0], blurred_batch) and not np.array_equal(pairs.batch(8)[0], blurred_batch)


def test_rgb_float_and_lazy_stacks() -> None:
    rgb = np.random.default_rng(1).random((2, 3, 24, 24, 3)).astype(np.float32) * 1000  # (T, Z, Y, X, C)
    pairs = ArrayPairs(da.from_array(rgb / 2), da.from_array(rgb), crop=16, rgb=True)
    assert len(pairs) == 6 and pairs.span == (0.0, pytest.approx(rgb.max()))
    blurred, sharp = pairs.pair(0)
    np.testing.assert_allclose(blurred * 2, sharp, atol=1e-6)
    assert [v[0].shape for v in pairs.validation_pairs(size=16)] == [(16, 16, 3)] * 4
    small = ArrayPairs(np.zeros((8, 8)), np.zeros((8, 8)), crop=16)  # smaller than the crop: padded
    assert small.batch(0)[0].shape == (1, 3, 16, 16)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(PairingError, match=r"\(2, 8, 8\) vs \(3, 8, 8\)"):
        ArrayPairs(np.zeros((2, 8, 8)), np.zeros((3, 8, 8)))
