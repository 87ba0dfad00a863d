"""The value-range API (what deblur's value_range means) and the dtype round trip."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deblurgan.gan.io.intensity import (
    extremes,
    intensity_range,
    reads_data,
    resolve_range,
    restore_dtype,
    to_unit,
    value_range_of,
)


def test_frame_by_frame_extremes_give_the_whole_stacks_range() -> None:
    """What the deblur widget's job does (scan frame by frame, with progress) gives what deblur would."""
    import dask.array as da

    stack = np.random.default_rng(0).integers(0, 4000, (3, 20, 24, 4), dtype=np.uint16)
    stack[..., 3] = 65535  # an opaque alpha, left out of "auto"
    floats = stack[..., 0].astype(np.float32) * 3 - 5
    for image, value_range, rgb in ((stack, "auto", True), (floats, None, False), (stack, None, True)):
        whole = value_range_of(image, value_range, rgb=rgb)
        assert value_range_of(da.from_array(image, chunks=1), value_range, rgb=rgb) == whole
        if not reads_data(value_range, image.dtype):
            assert resolve_range(value_range, image.dtype) == whole == (0.0, 65535.0)
            continue
        found = [extremes(frame, value_range, rgb=rgb) for frame in image]
        low, high = min(float(lo) for lo, _ in found), max(float(hi) for _, hi in found)
        assert resolve_range(value_range, image.dtype, (low, high)) == whole
    assert value_range_of(stack, "auto", rgb=True) == intensity_range(stack, rgb=True)
    with pytest.raises(ValueError, match="depends on the data"):
        resolve_range(None, np.float32)
    with pytest.raises(ValueError, match='"auto" or None'):
        value_range_of(stack, "full")
    with pytest.raises(ValueError, match="high > low"):
        value_range_of(stack, (5, 1))


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_big_endian_64_bit_planes_change_like_native_ones(dtype) -> None:
    plane = (np.arange(300, dtype=dtype).reshape(15, 20) * 1000 + 5).astype(dtype)
    lo, hi = value_range_of(plane)
    unit = to_unit(plane, lo, hi)
    changed = np.clip(unit + np.float32(0.01) * np.sin(np.arange(unit.size)).reshape(unit.shape), 0, 1)
    native = restore_dtype(changed.astype(np.float32), unit, plane, lo, hi)
    swapped = plane.astype(plane.dtype.newbyteorder(">"))
    big = restore_dtype(changed.astype(np.float32), unit, swapped, lo, hi)
    assert big.dtype == swapped.dtype and not np.array_equal(native, plane)
    np.testing.assert_array_equal(big, native)


def test_auto_range_of_a_large_constant_resolves_at_its_magnitude() -> None:
    for image in (np.full((4, 4), 1e17), np.full((4, 4), 10**17, np.int64)):
        low, high = value_range_of(image, "auto")
        assert low < 1e17 < high


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64])
def test_unchanged_planes_come_back_bit_for_bit(dtype) -> None:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else np.finfo(dtype)
    plane = np.linspace(max(float(info.min), -1e6), min(float(info.max), 1e6), 300).astype(dtype).reshape(15, 20)
    lo, hi = value_range_of(plane)
    unit = to_unit(plane, lo, hi)
    np.testing.assert_array_equal(restore_dtype(unit, unit, plane, lo, hi), plane)
