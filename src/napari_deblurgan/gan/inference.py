"""``deblur``: any array a napari user holds -> generator -> the same shape, dtype and value range.

array -> planes of (H, W, 3) float32 in [0, 1] -> symmetric border padding -> overlapping tiles
(batched) -> generator -> blended stitch -> crop -> PSF refinement (:mod:`.psf_refine`) -> back to
the input's dtype, range and axis order.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from .device import bf16_supported, is_out_of_memory, resolve_device
from .ensemble import ENSEMBLE_SIZES, check_ensemble, dihedral, undo_dihedral
from .lazy import deblur_dask, is_dask_array
from .networks import Generator, for_inference
from .psf_refine import refine as refine_with_psf
from .tiling import Tile, plan_tiles, tile_weights
from .weights import default_model_path, load_generator

ProgressCallback = Callable[[int, int], None]

_CACHE: dict[tuple[str, str], tuple[float, Generator]] = {}  # (file, device) -> (mtime, model)
_CACHE_LOCK = threading.Lock()


def load_model(path: str | Path | None = None, device: str | torch.device = "auto") -> Generator:
    """Load (and cache) a generator from a safetensors model file; ``None`` means the shipped default.

    The cache keeps one model per file and device: a file rewritten since (a training run exporting as
    it goes) is loaded again and replaces the old copy, so memory does not grow with each export.
    """
    dev = resolve_device(device)
    resolved = Path(path).expanduser().resolve() if path is not None else default_model_path()
    mtime = resolved.stat().st_mtime if resolved.is_file() else 0.0
    key = (str(resolved), str(dev))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None or cached[0] != mtime:
            _CACHE.pop(key, None)  # free the old weights before loading the new ones
            model = load_generator(resolved, dev)
            if dev.type == "cpu":
                model = model.to(memory_format=torch.channels_last)
            _CACHE[key] = (mtime, model)
        return _CACHE[key][1]


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
        )
    return Layout(None, False)


def _check_array(arr: np.ndarray) -> None:
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


def value_range_of(arr: np.ndarray, value_range: tuple[float, float] | None) -> tuple[float, float]:
    """The input range mapped to [0, 1]: 8/16-bit integers by their dtype range; floats and wider integers:
    [0, 1] if inside it, else min..max."""
    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(hi - lo)):
            raise ValueError(f"value_range must be two finite numbers (low, high), got {value_range}")
        if not hi > lo:
            raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
        return lo, hi
    if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2:
        info = np.iinfo(arr.dtype)
        return float(info.min), float(info.max)
    # floats, and 32/64-bit integers (float32 cannot resolve their dtype range): the data's own range
    return _float_range(float(arr.min()), float(arr.max()))


def intensity_range(
    image: Any, channel_axis: int | None = None, rgb: bool | None = None, margin: float = 0.1
) -> tuple[float, float]:
    """``value_range="auto"``: the image's min..max (RGBA alpha left out; numpy or dask), widened by
    ``margin`` of it on each side within an integer dtype's range, so deblurred highlights and shadows
    that overshoot the blurred ones are kept. A constant image maps to mid-grey."""
    extremes = intensity_extremes(image, channel_axis, rgb)
    if is_dask_array(image):
        import dask

        extremes = dask.compute(*extremes)
    low, high = (float(v) for v in extremes)
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
        return low - 0.5, low + 0.5
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
    """The value range of data with these extremes when it maps by its own range (see :func:`value_range_of`)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("The image contains NaN or infinite values; replace them first, e.g. da.nan_to_num(image)")
    return _float_range(low, high)


def _float_range(lo: float, hi: float) -> tuple[float, float]:
    """[0, 1] for data inside it, else min..max. A constant image maps to mid-grey, in a range wide enough
    to resolve at its magnitude (1e38 +- 0.5 is 1e38)."""
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if not np.isfinite(hi - lo):
        raise ValueError(f"The image's values span {lo:g} to {hi:g}, more than float64 can take in; scale it first")
    if hi > lo:
        return lo, hi
    half = max(0.5, abs(lo) * 2.0**-20)
    if not np.isfinite(lo - half):  # at the end of float64's range: the range goes one way only
        return lo, lo + 2 * half
    if not np.isfinite(lo + half):
        return lo - 2 * half, lo
    return lo - half, lo + half


#: Rows converted at a time between the input dtype and float32 (float64 temporaries stay small).
_ROWS = 256


def _to_unit(plane: np.ndarray, lo: float, hi: float) -> NDArray[np.float32]:
    """``plane`` mapped from [lo, hi] to float32 [0, 1], computed in float64 (no overflow) row block by block."""
    unit = np.empty(plane.shape, dtype=np.float32)
    for r in range(0, plane.shape[0], _ROWS):
        unit[r : r + _ROWS] = (plane[r : r + _ROWS].astype(np.float64) - lo) / (hi - lo)
    return unit


def _restore_dtype(
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
    in uint64 on an order-preserving shift of the values (float64 cannot hold them all)."""
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
    return (moved ^ shift).view(base.dtype) if info.min else moved


def _precision_context(device: torch.device, half: bool) -> contextlib.AbstractContextManager[Any]:
    if not half:
        return contextlib.nullcontext()
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu" and bf16_supported(device):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if device.type == "mps":
        return torch.autocast("mps", dtype=torch.float16)
    return contextlib.nullcontext()


def _cudnn_autotune(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """On CUDA, let cuDNN time its algorithms once per tile shape (tiles repeat the same few shapes);
    the user's other cuDNN settings are kept and the global flag is restored afterwards."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(
        enabled=cudnn.enabled, benchmark=True, deterministic=cudnn.deterministic, allow_tf32=cudnn.allow_tf32
    )


def default_overlap(tile_size: int | None) -> int:
    """96 px (tiles then match the whole frame within 2 grey levels), at most a quarter of the tile."""
    return 96 if tile_size is None else min(96, tile_size // 4)


class PlaneDeblurrer:
    """Runs a generator over (H, W, 3) float planes in [0, 1] with padding, tiling and batching."""

    def __init__(
        self,
        model: Generator,
        device: torch.device,
        tile_size: int | None = 1024,
        tile_overlap: int | None = None,
        border: int = 16,
        batch_size: int = 2,
        half: bool = False,
        ensemble: int = 1,
    ) -> None:
        # tile_size, ensemble and the other options' types are checked by deblur (_check_options)
        tile_overlap = default_overlap(tile_size) if tile_overlap is None else tile_overlap
        if tile_size is not None and not 0 <= tile_overlap < tile_size // 2:
            raise ValueError(
                f"tile_overlap must be at least 0 and less than half the tile size ({tile_size}), got {tile_overlap}"
            )
        self.per_tile_statistics = model.config.norm == "instance"
        self.model = for_inference(model)
        self.multiple = model.multiple
        if device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.device, self.half, self.ensemble = device, half, ensemble
        self.tile_size = tile_size
        self.tile_overlap, self.border, self.batch_size = tile_overlap, border, max(1, batch_size)

    def padding(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Symmetric padding of a plane: ``border`` on each side, plus up to 3 px at the bottom/right so
        that every tile starts on the network's stride-4 grid (else tiles would not match the frame)."""
        m, b = self.multiple, self.border
        return (b, b + (-(height + 2 * b)) % m), (b, b + (-(width + 2 * b)) % m)

    def tiles_for(self, height: int, width: int) -> list[Tile]:
        (top, bottom), (left, right) = self.padding(height, width)
        h, w = height + top + bottom, width + left + right
        if self.tile_size is None or max(height, width) <= self.tile_size:  # the border does not count
            return [Tile(0, 0, h, w)]
        return plan_tiles(h, w, self.tile_size - self.tile_size % self.multiple, self.tile_overlap, self.multiple)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The tiles ``batch`` (N, H, W, 3) in [0, 1] plus half the change the network makes in [-1, 1]
        (not ``(y + 1) / 2``, which rounds: where the network changes nothing, the input comes back
        bit for bit)."""
        x = torch.from_numpy(batch)
        if self.device.type == "cuda":  # page-locked: the copy to the GPU runs without a staging copy
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2) * 2 - 1
        with torch.inference_mode(), _precision_context(self.device, self.half), _cudnn_autotune(self.device):
            y = sum(undo_dihedral(self._forward(dihedral(x, k)), k).float() - x for k in range(self.ensemble))
        return (batch + y.permute(0, 2, 3, 1).cpu().numpy() / (2 * self.ensemble)).clip(0, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    #: Out of memory, tiles are halved down to this size before giving up.
    min_tile = 64

    def __call__(
        self,
        plane: NDArray[np.float32],
        on_tile: Callable[[], None] | None = None,
        on_retile: Callable[[], None] | None = None,
    ) -> NDArray[np.float32]:
        """Deblur one plane. Out of memory, retry it with tiles half the size (with a warning, and
        ``on_retile()`` so that progress can restart the plane), down to :attr:`min_tile`."""
        while True:
            try:
                return self._plane(plane, on_tile)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                h, w = plane.shape[:2]
                current = max(max(t.h, t.w) for t in self.tiles_for(h, w))
                smaller = max(self.min_tile, current // 2 - (current // 2) % self.multiple)
                if smaller >= current or max(h, w) <= smaller:  # no smaller tiles: the same frame again
                    raise MemoryError(
                        f"Out of memory on {self.device} even with tiles of {current} px; "
                        "use device='cpu' or close other programs using the memory"
                    ) from exc
                warnings.warn(
                    f"Out of memory on {self.device} with tiles of {current} px; retrying with {smaller} px tiles",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.tile_size, self.tile_overlap = smaller, min(self.tile_overlap, smaller // 4)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if on_retile:
                    on_retile()

    def frames(
        self,
        planes: list[NDArray[np.float32]],
        on_tile: Callable[[], None] | None = None,
        on_retile: Callable[[], None] | None = None,
    ) -> list[NDArray[np.float32]]:
        """Deblur planes of one shape, each a single tile (frames of a stack), in one forward pass; out of
        memory, one at a time (:meth:`__call__`)."""
        if len(planes) > 1:
            h, w = planes[0].shape[:2]
            pad_y, pad_x = self.padding(h, w)
            try:
                padded = np.stack([np.pad(p, (pad_y, pad_x, (0, 0)), mode="symmetric") for p in planes])
                out = self._run(padded)[:, pad_y[0] : pad_y[0] + h, pad_x[0] : pad_x[0] + w]
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            else:
                for _ in planes:
                    if on_tile:
                        on_tile()
                return list(out)
        return [self(plane, on_tile, on_retile) for plane in planes]

    def _plane(self, plane: NDArray[np.float32], on_tile: Callable[[], None] | None) -> NDArray[np.float32]:
        h, w = plane.shape[:2]
        pad_y, pad_x = self.padding(h, w)
        padded = np.pad(plane, (pad_y, pad_x, (0, 0)), mode="symmetric")
        top, left = pad_y[0], pad_x[0]
        tiles = self.tiles_for(h, w)
        if len(tiles) == 1:
            out = self._run(padded[None])[0]
            if on_tile:
                on_tile()
            return out[top : top + h, left : left + w]
        ph, pw = padded.shape[:2]
        acc = np.zeros((ph, pw, 3), dtype=np.float32)
        weight = np.zeros((ph, pw, 1), dtype=np.float32)
        for group in _chunks(tiles, self.batch_size):
            batch = np.stack([padded[t.y : t.y + t.h, t.x : t.x + t.w] for t in group])
            for t, out in zip(group, self._run(batch)):
                wt = tile_weights(t, tiles, ph, pw)[:, :, None]
                acc[t.y : t.y + t.h, t.x : t.x + t.w] += out * wt
                weight[t.y : t.y + t.h, t.x : t.x + t.w] += wt
                if on_tile:
                    on_tile()
        del padded, batch  # large planes: free them before the division, and divide in place
        np.divide(acc, weight, out=acc)
        return acc[top : top + h, left : left + w]


def _deblur_lazy(
    image: Any,
    model: str | Path | Generator | None,
    channel_axis: int | None,
    rgb: bool | None,
    value_range: tuple[float, float] | Literal["auto"] | None,
    **options: Any,
) -> Any:
    """The dask path of :func:`deblur`: same layout and value-range rules, lazy result; blocks of twice
    the tile size overlap by the tile overlap."""
    import dask
    import dask.array as da

    if image.dtype == bool or image.dtype.kind not in "uif":
        _check_array(np.empty((1, 1), dtype=image.dtype))
    if image.ndim < 2 or 0 in image.shape:
        _check_array(np.empty(image.shape, dtype=image.dtype))
    layout = infer_layout(image.shape, channel_axis, rgb)
    if isinstance(value_range, str):
        _check_auto(value_range)
        value_range = intensity_range(image, channel_axis, rgb)
    if value_range is None and scans_own_range(image.dtype):  # the whole array's range: one pass
        value_range = data_range(*(float(v) for v in dask.compute(image.min(), image.max())))
    lo, hi = value_range_of(np.empty((1, 1), dtype=image.dtype), value_range)
    tile = options["tile_size"]
    overlap = default_overlap(tile) if options["tile_overlap"] is None else options["tile_overlap"]
    net = model if isinstance(model, torch.nn.Module) else load_model(model, options["device"])
    m = net.multiple
    frames = options["batch_size"] or (1 if next(net.parameters()).device.type == "cpu" else 4)
    options = {
        **options,
        "block_size": 2 * tile if tile else 4096,
        "context": -(-overlap // m) * m,
        "multiple": m,
        "frames_per_block": frames,
    }
    if layout.channel_axis is None:
        return deblur_dask(image, model, False, (lo, hi), **options)
    if layout.colour:
        moved = da.moveaxis(image, layout.channel_axis, -1)
        return da.moveaxis(deblur_dask(moved, model, True, (lo, hi), **options), -1, layout.channel_axis)
    moved = da.moveaxis(image, layout.channel_axis, 0)
    return da.moveaxis(deblur_dask(moved, model, False, (lo, hi), **options), 0, layout.channel_axis)


def _check_auto(value_range: str) -> None:
    if value_range != "auto":
        raise ValueError(f'value_range must be (low, high), "auto" or None, got {value_range!r}')


def _chunks(items: list[Tile], size: int) -> Iterator[list[Tile]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _check_options(
    channel_axis: Any,
    rgb: Any,
    tile_size: Any,
    tile_overlap: Any,
    batch_size: Any,
    half: Any,
    ensemble: Any,
    refine: Any,
) -> None:
    """:func:`deblur`'s options of a wrong type or below their range, refused in its words before any work
    (TypeError for the type, ValueError for the value); numpy integers and booleans count as such."""
    _check_int("tile_size", tile_size, 32, "None for whole frames")
    _check_int("tile_overlap", tile_overlap, 0, "None for the default")
    _check_int("batch_size", batch_size, 1, "None for the default")
    _check_int("channel_axis", channel_axis, None, "None for grayscale or colour on the last axis")
    if not _is_int(ensemble):
        raise TypeError(f"ensemble must be an int, one of {ENSEMBLE_SIZES} (copies averaged), got {ensemble!r}")
    check_ensemble(ensemble)
    for name, value, none in (("rgb", rgb, True), ("half", half, False), ("refine", refine, False)):
        if not (isinstance(value, bool | np.bool_) or (none and value is None)):
            raise TypeError(f"{name} must be True or False{' or None' if none else ''}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _check_int(name: str, value: Any, low: int | None, none: str) -> None:
    """``value`` is None or an int of at least ``low`` (any int for None)."""
    if value is None:
        return
    wanted = f"{name} must be an int" + (f" >= {low}" if low is not None else "") + f" or {none}"
    if not _is_int(value):
        raise TypeError(f"{wanted}, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{wanted}, got {value!r}")


def deblur(
    image: ArrayLike,
    model: str | Path | Generator | None = None,
    *,
    device: str = "auto",
    channel_axis: int | None = None,
    rgb: bool | None = None,
    value_range: tuple[float, float] | Literal["auto"] | None = None,
    tile_size: int | None = 1024,
    tile_overlap: int | None = None,
    batch_size: int | None = None,
    half: bool = False,
    ensemble: int = 1,
    refine: bool = True,
    strength: float = 1.0,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Deblur an image or a stack of images; returns a new array of the input's shape and dtype.

    Args:
        image: (Y, X) grayscale, (Y, X, 3|4) RGB(A) or stacks with leading axes (T, Z, ...). RGBA alpha
            passes through untouched. Integers map by their dtype range; floats keep their value range.
        model: a safetensors model file, a loaded generator, or None for the shipped default model.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
        channel_axis: the axis holding channels, for channel-first data; 3 or 4 channels are RGB(A),
            other counts are deblurred channel by channel.
        rgb: force (True) or forbid (False) reading a last axis of 3/4 as colour; None guesses.
        value_range: (low, high) of the values that map to black..white. None: 8/16-bit integers by
            their dtype's range; floats [0, 1] if inside it, else (like 32/64-bit integers) their
            min..max. "auto": the image's own min..max with a 10 % margin (:func:`intensity_range`),
            e.g. for 12-bit data stored as 16-bit.
        tile_size: images larger than this (pixels per side) are processed in overlapping tiles of at
            most this size, bounding memory; smaller ones whole, with their 16 px border. None for whole
            frames.
        tile_overlap: overlap of neighbouring tiles, blended so no seam shows; None: 96 px, at most a
            quarter of the tile.
        batch_size: tiles per forward pass; None: 1 on the CPU (measured fastest there), 4 on GPUs.
        half: float16 on CUDA/MPS, bfloat16 on CPUs that support it (faster, slightly less exact).
        ensemble: self-ensemble: average the model's outputs on 1, 2, 4 or 8 flipped/transposed copies
            of each tile (8: +0.5 dB for the generator alone, +0.04 with refinement, on
            ``benchmarks/quality.py``; 8x the network's time).
        refine: estimate the blur's PSF with the help of the generator's output and deconvolve the
            input with it, regularised towards that output (:mod:`.psf_refine`; 1-2 s/MP more).
            One PSF per plane (per block for dask input): for uniform camera shake. False gives the
            generator's output alone.
        strength: how much of the model's correction to apply, 0 to 1: ``input + strength * (output -
            input)``; below 1 for a gentler result where the model over-sharpens (slight blur, fur, skin).
        progress: called as ``progress(done, total)`` after every tile and each plane's PSF refinement
            (not for dask input).

    A dask array gives a lazy dask array, computed block by block (see :mod:`.lazy`); pass a model
    file path rather than a loaded model when computing on a distributed cluster. Masked arrays are
    refused (a blur spreads masked pixels into unmasked ones): fill them first.
    """
    _check_options(channel_axis, rgb, tile_size, tile_overlap, batch_size, half, ensemble, refine)
    if isinstance(image, np.ma.MaskedArray):
        raise TypeError(
            "deblur got a masked array: its mask would be ignored and its hidden values would set the range. "
            "Pass image.filled(value) to choose what the masked pixels hold, then re-apply the mask to the result."
        )
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 <= strength <= 1:
        raise ValueError(f"strength is the share of the model's correction applied, a number 0 to 1; got {strength!r}")
    if is_dask_array(image):
        return _deblur_lazy(
            image,
            model,
            channel_axis,
            rgb,
            value_range,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            batch_size=batch_size,
            device=device,
            half=half,
            ensemble=ensemble,
            refine=refine,
            strength=strength,
        )
    arr = np.asarray(image)
    _check_array(arr)
    layout = infer_layout(arr.shape, channel_axis, rgb)
    if isinstance(value_range, str):
        _check_auto(value_range)
        value_range = intensity_range(arr, channel_axis, rgb)
    net = model if isinstance(model, Generator) else load_model(model, device)
    dev = next(net.parameters()).device
    lo, hi = value_range_of(arr, value_range)
    work = np.moveaxis(arr, layout.channel_axis, -1) if layout.channel_axis is not None else arr
    if layout.channel_axis is not None and not layout.colour:
        work = np.moveaxis(work, -1, 0)  # independent channels become leading "stack" axes
    plane_shape = work.shape[-3:] if layout.colour else work.shape[-2:]
    planes = work.reshape((-1, *plane_shape))
    batch = batch_size or (1 if dev.type == "cpu" else 4)
    runner = PlaneDeblurrer(net, dev, tile_size, tile_overlap, batch_size=batch, half=half, ensemble=ensemble)

    def steps_per_plane() -> int:  # its tiles, and its PSF refinement as one more step
        return len(runner.tiles_for(*plane_shape[:2])) + (1 if refine else 0)

    done = plane_start = 0
    total = len(planes) * steps_per_plane()
    if runner.per_tile_statistics and len(runner.tiles_for(*plane_shape[:2])) > 1:
        warnings.warn(
            "This model has instance normalisation, which normalises each tile by its own statistics, so tiles "
            "can differ at their seams; deblur whole frames if memory allows (tile_size=None, --tile-size 0, or "
            "a tile size above the image size in the widget), or use a model without normalisation layers "
            "(the 'fast' preset).",
            stacklevel=2,
        )

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    def retile() -> None:  # smaller tiles after an out-of-memory: this plane starts over
        nonlocal done, total
        done = plane_start
        total = plane_start + (len(planes) - i) * steps_per_plane()

    out = np.empty(planes.shape, dtype=arr.dtype)
    # frames that are one tile each (a stack of video frames) go through the network several at a time
    group = batch if len(runner.tiles_for(*plane_shape[:2])) == 1 else 1
    for i in range(0, len(planes), group):
        plane_start = done
        units = [_to_unit(plane, lo, hi) for plane in planes[i : i + group]]
        rgb_ins = [
            np.ascontiguousarray(u[..., :3] if layout.colour else np.repeat(u[..., None], 3, axis=2)) for u in units
        ]
        results = runner.frames(rgb_ins, tick, retile)
        for j, (unit, rgb_in, result) in enumerate(zip(units, rgb_ins, results, strict=True)):
            plane = planes[i + j]
            if not layout.colour:  # the mean change of the three channels (exactly none where there is none)
                rgb_in, result = unit, unit + (result - rgb_in).mean(axis=2)
            if refine:
                result = refine_with_psf(rgb_in, result, device=dev)[0]
                tick()
            if strength != 1:
                result = rgb_in + strength * (result - rgb_in)
            if layout.colour:
                out[i + j, ..., :3] = _restore_dtype(result, unit[..., :3], plane[..., :3], lo, hi)
                if plane.shape[-1] == 4:
                    out[i + j, ..., 3] = plane[..., 3]
            else:
                out[i + j] = _restore_dtype(result, unit, plane, lo, hi)
    out = out.reshape(work.shape)
    if layout.channel_axis is not None and not layout.colour:
        out = np.moveaxis(out, 0, -1)
    return np.moveaxis(out, -1, layout.channel_axis) if layout.channel_axis is not None else out
