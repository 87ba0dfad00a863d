"""How an array a napari user holds maps to the planes the network sees: which axis holds channels, and
whether they are colour (processed together) or independent gray planes. Numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """How an input array maps to planes: the channel axis (moved last) and its meaning."""

    channel_axis: int | None  # axis of the input holding channels, None for grayscale planes
    colour: bool  # channels are RGB(A) (processed together); else each channel is its own gray plane


def infer_layout(shape: tuple[int, ...], channel_axis: int | None, rgb: bool | None) -> Layout:
    """Decide which axis holds channels. Without hints, a last axis of 3 or 4 on a >= 3D array is RGB(A)."""
    ndim = len(shape)
    if channel_axis is not None:
        if not -ndim <= channel_axis < ndim:
            raise ValueError(f"channel_axis={channel_axis} is out of range for an array with {ndim} dimensions")
        axis = channel_axis % ndim
        if ndim < 3:
            raise ValueError(f"channel_axis needs an array of at least 3 dimensions (channels, Y, X), got {shape}")
        colour = shape[axis] in (3, 4) if rgb is None else rgb
        if colour and shape[axis] not in (3, 4):
            raise ValueError(f"rgb=True needs 3 or 4 channels, got {shape[axis]} on axis {axis}")
        return Layout(axis, colour)
    if rgb:
        if ndim < 3 or shape[-1] not in (3, 4):
            raise ValueError(f"rgb=True needs a last axis of 3 (RGB) or 4 (RGBA), got shape {shape}")
        return Layout(ndim - 1, True)
    if rgb is None and ndim >= 3 and shape[-1] in (3, 4):
        return Layout(ndim - 1, True)
    if rgb is None and ndim >= 3 and shape[-1] == 1:  # (..., Y, X, 1): one gray channel
        return Layout(ndim - 1, False)
    if rgb is None and ndim >= 3 and 2 <= shape[-1] <= 8 and shape[-2] > shape[-1]:
        raise ValueError(
            f"Cannot tell whether the last axis of shape {shape} holds {shape[-1]} channels or is the image "
            "width: pass channel_axis=-1 to deblur each channel, or rgb=False if it is the width"
            + ("; for gray + alpha, deblur image[..., 0] and keep the alpha" if shape[-1] == 2 else "")
        )
    return Layout(None, False)


def check_array(arr: np.ndarray) -> None:
    """Refuse what ``deblur`` cannot take, in its words: no numeric dtype, fewer than 2 dimensions, no
    values, NaN or infinite values, floats beyond float64's range."""
    if arr.dtype == bool or arr.dtype.kind not in "uif":
        raise TypeError(
            f"deblur needs a numeric image (uint8, uint16, int, float), got dtype {arr.dtype}; "
            "convert it first, e.g. image.astype(np.float32)"
        )
    if arr.ndim < 2:
        raise ValueError(f"deblur needs at least a 2D (Y, X) image, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"deblur got an empty array of shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("The image contains NaN or infinite values; replace them first, e.g. np.nan_to_num(image)")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8 and np.abs(arr).max() > np.finfo(np.float64).max:
        raise ValueError(
            f"The {arr.dtype} image holds values beyond float64's range (1.8e308), which deblur computes in; "
            "scale it first"
        )
