"""Intensities: which values map to black..white, and the round trip between an image's dtype and the
network's float32 [0, 1]. Numpy only.

The value-range API (what ``deblur``'s ``value_range`` means, for callers that scan the data themselves,
such as the deblur widget's job, which reads a stack frame by frame with progress):

- :func:`value_range_of`: the (low, high) that maps to [0, 1] for an image (numpy or dask) and a
  ``value_range`` of (low, high), "auto" or None;
- :func:`reads_data`: whether that needs the data's extremes; :func:`extremes`: those extremes (of an
  image or one frame of it); :func:`resolve_range`: the (low, high) from them.

The rules: (low, high) as given; None: 8/16-bit integers by their dtype's range, floats [0, 1] if inside
it, else (like 32/64-bit integers) their own min..max; "auto": the image's own min..max (RGBA alpha left
out) widened by 10 % each side within an integer dtype's range.

Training data has a rule of its own (:func:`dtype_range`, :func:`to_float01`): integers by their dtype's
range, floats by [0, 1] widened to their own min..max (a blurred/sharp pair's together).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .layout import infer_layout
from .lazy import is_dask_array

#: ``deblur``'s ``value_range``: (low, high), "auto" (the image's own range with a margin) or None (by dtype).
ValueRange = tuple[float, float] | Literal["auto"] | None


def value_range_of(
    image: Any, value_range: ValueRange = None, channel_axis: int | None = None, rgb: bool | None = None
) -> tuple[float, float]:
    """The (low, high) of ``image`` (numpy or dask; a dask array is scanned in one pass) that maps to
    [0, 1] for ``value_range`` (see the module's rules). Impossible ranges are a ValueError."""
    if isinstance(value_range, str):
        _check_auto(value_range)
    if not reads_data(value_range, image.dtype):
        return resolve_range(value_range, image.dtype)
    low, high = extremes(image, value_range, channel_axis, rgb)
    if is_dask_array(image):
        import dask

        low, high = dask.compute(low, high)
    return resolve_range(value_range, image.dtype, (float(low), float(high)))


def reads_data(value_range: ValueRange, dtype: np.dtype) -> bool:
    """Whether :func:`value_range_of` needs the data's extremes: for "auto", and for None on floats and
    32/64-bit integers."""
    return isinstance(value_range, str) or (value_range is None and scans_own_range(dtype))


def extremes(
    image: Any, value_range: ValueRange, channel_axis: int | None = None, rgb: bool | None = None
) -> tuple[Any, Any]:
    """Minimum and maximum of what :func:`value_range_of` reads for ``value_range``: for "auto" the
    intensities (RGBA alpha left out), for None every value. Numpy scalars, or lazy ones for dask."""
    if isinstance(value_range, str):
        return intensity_extremes(image, channel_axis, rgb)
    return image.min(), image.max()


def resolve_range(
    value_range: ValueRange, dtype: np.dtype, found: tuple[float, float] | None = None
) -> tuple[float, float]:
    """The (low, high) that maps to [0, 1] for ``value_range`` and ``dtype``, given the data's extremes
    ``found`` (:func:`extremes`, over the whole image) where :func:`reads_data` says they are needed."""
    if isinstance(value_range, str):
        _check_auto(value_range)
        return _checked(widened_range(*_needed(found), dtype))
    if value_range is not None:
        return _checked(value_range)
    dtype = np.dtype(dtype)
    if not scans_own_range(dtype):  # 8/16-bit integers: their dtype's range
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return data_range(*_needed(found))


def intensity_range(
    image: Any, channel_axis: int | None = None, rgb: bool | None = None, margin: float = 0.1
) -> tuple[float, float]:
    """``value_range="auto"``: the image's min..max (RGBA alpha left out; numpy or dask), widened by
    ``margin`` of it on each side within an integer dtype's range, so deblurred highlights and shadows
    that overshoot the blurred ones are kept. A constant image maps to mid-grey."""
    found = intensity_extremes(image, channel_axis, rgb)
    if is_dask_array(image):
        import dask

        found = dask.compute(*found)
    low, high = (float(v) for v in found)
    return widened_range(low, high, image.dtype, margin)


def intensity_extremes(image: Any, channel_axis: int | None = None, rgb: bool | None = None) -> tuple[Any, Any]:
    """Minimum and maximum of an image's intensities (RGBA alpha left out); numpy or lazy dask scalars."""
    layout = infer_layout(image.shape, channel_axis, rgb)
    if layout.colour and image.shape[layout.channel_axis] == 4:
        axes = tuple(a for a in range(image.ndim) if a != layout.channel_axis % image.ndim)
        return image.min(axis=axes)[:3].min(), image.max(axis=axes)[:3].max()
    return image.min(), image.max()


def widened_range(low: float, high: float, dtype: np.dtype, margin: float = 0.1) -> tuple[float, float]:
    """:func:`intensity_range` from known extremes: ``margin`` wider each side, within an integer dtype."""
    if not high > low:
        return _constant_range(low)
    low, high = low - margin * (high - low), high + margin * (high - low)
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        low, high = max(low, float(info.min)), min(high, float(info.max))
    return low, high


def scans_own_range(dtype: np.dtype) -> bool:
    """Whether ``value_range=None`` maps this dtype by the data's own range (floats, 32/64-bit integers)."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or (dtype.kind in "ui" and dtype.itemsize > 2)


def data_range(low: float, high: float) -> tuple[float, float]:
    """The value range of data with these extremes when it maps by its own range (``value_range=None``)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("The image contains NaN or infinite values; replace them first, e.g. da.nan_to_num(image)")
    return _float_range(low, high)


def _needed(found: tuple[float, float] | None) -> tuple[float, float]:
    if found is None:
        raise ValueError("This value range depends on the data: pass its extremes (see extremes())")
    return found


def _checked(value_range: Any) -> tuple[float, float]:
    """A (low, high) given as such: two finite numbers, high above low."""
    lo, hi = (float(v) for v in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(hi - lo)):
        raise ValueError(f"value_range must be two finite numbers (low, high), got {value_range}")
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return lo, hi


def _check_auto(value_range: str) -> None:
    if value_range != "auto":
        raise ValueError(f'value_range must be (low, high), "auto" or None, got {value_range!r}')


def _float_range(lo: float, hi: float) -> tuple[float, float]:
    """[0, 1] for data inside it, else min..max. A constant image maps to mid-grey, in a range wide enough
    to resolve at its magnitude (1e38 +- 0.5 is 1e38)."""
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if not np.isfinite(hi - lo):
        raise ValueError(f"The image's values span {lo:g} to {hi:g}, more than float64 can take in; scale it first")
    return (lo, hi) if hi > lo else _constant_range(lo)


def _constant_range(value: float) -> tuple[float, float]:
    """The range a constant image maps by: ``value`` at mid-grey, in a range wide enough to resolve at its
    magnitude (1e17 +- 0.5 is 1e17)."""
    half = max(0.5, abs(value) * 2.0**-20)
    if not np.isfinite(value - half):  # at the end of float64's range: the range goes one way only
        return value, value + 2 * half
    if not np.isfinite(value + half):
        return value - 2 * half, value
    return value - half, value + half


#: Rows converted at a time between the input dtype and float32 (float64 temporaries stay small).
_ROWS = 256


def to_unit(plane: np.ndarray, lo: float, hi: float) -> NDArray[np.float32]:
    """``plane`` mapped from [lo, hi] to float32 [0, 1], computed in float64 (no overflow) row block by block."""
    unit = np.empty(plane.shape, dtype=np.float32)
    for r in range(0, plane.shape[0], _ROWS):
        unit[r : r + _ROWS] = (plane[r : r + _ROWS].astype(np.float64) - lo) / (hi - lo)
    return unit


def restore_dtype(
    plane01: NDArray[np.float32], unit: NDArray[np.float32], original: np.ndarray, lo: float, hi: float
) -> np.ndarray:
    """[0, 1] back to the dtype of ``original`` (``unit`` is it mapped to [0, 1]), within [lo, hi] and
    the dtype's range, row block by block. 8/16-bit integers: rounded from [0, 1], which float32
    resolves. Floats and wider integers: the input plus the change the model made, so that where it
    changed nothing the input comes back bit for bit, at any magnitude."""
    dtype = original.dtype
    out = np.empty(original.shape, dtype=dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        low, high = max(lo, float(info.min)), min(hi, float(info.max))
    else:
        limit = float(np.finfo(dtype).max)
        low, high = max(lo, -limit), min(hi, limit)
    for r in range(0, original.shape[0], _ROWS):
        rows = slice(r, r + _ROWS)
        if dtype.kind in "ui" and dtype.itemsize <= 2:
            out[rows] = np.clip(np.rint(plane01[rows].astype(np.float64) * (hi - lo) + lo), low, high)
            continue
        change = (plane01[rows].astype(np.float64) - unit[rows]) * (hi - lo)
        if dtype.kind == "f":
            out[rows] = np.clip(original[rows] + change, low, high)
        elif dtype.itemsize <= 4:  # float64 holds every 32-bit integer exactly
            out[rows] = np.clip(original[rows] + np.rint(change), low, high)
        else:
            out[rows] = _saturating_add(original[rows], np.rint(change), low, high)
    return out


def _saturating_add(base: np.ndarray, step: NDArray[np.float64], lo: float, hi: float) -> np.ndarray:
    """``base`` (64-bit integers) plus whole-number ``step``s, saturating at [lo, hi], computed exactly
    in uint64 on an order-preserving shift of the values (float64 cannot hold them all); big-endian input
    (FITS) is worked on, and returned, in native byte order."""
    base = base.astype(base.dtype.newbyteorder("="), copy=False)
    info = np.iinfo(base.dtype)
    shift = np.uint64(-info.min)  # int64: add 2**63 (flip the sign bit); uint64: nothing
    wide = base.view(np.uint64) ^ shift if info.min else base.view(np.uint64)
    floor, ceiling = (np.uint64(v - info.min) for v in (max(math.ceil(lo), info.min), min(math.floor(hi), info.max)))
    room_up = np.where(ceiling > wide, ceiling - np.minimum(wide, ceiling), np.uint64(0))
    room_down = np.where(wide > floor, wide - np.minimum(wide, floor), np.uint64(0))
    cap = float(2**63)
    up = np.minimum(np.clip(step, 0, cap).astype(np.uint64), room_up)
    down = np.minimum(np.clip(-step, 0, cap).astype(np.uint64), room_down)
    moved = wide + up - down
    return (moved ^ shift).view(base.dtype) if info.min else moved.view(base.dtype)


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """Training data: the value range an integer dtype maps to [0, 1] by; floats are taken as [0, 1]."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def float_span(*images: NDArray) -> tuple[float, float]:
    """[0, 1] widened to the min..max of the float images among ``images`` (integers do not count)."""
    floats = [image for image in images if image.dtype.kind == "f" and image.size]
    return min([0.0, *(float(f.min()) for f in floats)]), max([1.0, *(float(f.max()) for f in floats)])


def to_float01(image: NDArray, span: tuple[float, float] | None = None) -> NDArray[np.float32]:
    """Training data as float32 in [0, 1]: integers scaled by their dtype's range, floats by ``span``
    (default :func:`float_span` of the image: floats in [0, 1] stay as they are, others are not clipped
    to white)."""
    if np.issubdtype(image.dtype, np.integer):
        lo, hi = dtype_range(image.dtype)
    else:
        lo, hi = span or float_span(image)
    return np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
