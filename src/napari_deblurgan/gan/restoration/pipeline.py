"""The deblurring pipeline behind :func:`.inference.deblur`, its options already checked.

array -> planes of (H, W, 3) float32 in [0, 1] (:mod:`..io.layout`, :mod:`..io.intensity`) -> the tile runner
(:mod:`.plane_runner`) -> PSF refinement (:mod:`.psf_refine`) -> back to the input's dtype, range and axis
order. A dask array is deblurred lazily, block by block (:mod:`..io.lazy`), each block through
:func:`deblur_array`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.intensity import ValueRange, restore_dtype, to_unit, value_range_of
from ..io.layout import check_array, infer_layout
from ..io.lazy import deblur_dask
from ..model.device import resolve_device, unless_out_of_memory
from ..model.networks import Generator
from ..model.weights import load_model
from .options import default_batch_size, default_overlap
from .plane_runner import PlaneDeblurrer
from .psf_refine import refine as refine_with_psf
from .psf_refine import refine_frames

ProgressCallback = Callable[[int, int], None]


def deblur_array(
    image: Any,
    model: str | Path | Generator | None,
    *,
    channel_axis: int | None,
    rgb: bool | None,
    value_range: ValueRange,
    tile_size: int | None,
    tile_overlap: int | None,
    batch_size: int | None,
    device: str,
    half: bool,
    ensemble: int,
    refine: bool,
    strength: float,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """:func:`.inference.deblur` of an in-memory array, its options checked (:func:`.options.check_options`)."""
    arr = np.asarray(image)
    check_array(arr)
    layout = infer_layout(arr.shape, channel_axis, rgb)
    lo, hi = value_range_of(arr, value_range, channel_axis, rgb)
    net = network(model, device)
    dev = next(net.parameters()).device
    work = np.moveaxis(arr, layout.channel_axis, -1) if layout.channel_axis is not None else arr
    if layout.channel_axis is not None and not layout.colour:
        work = np.moveaxis(work, -1, 0)  # independent channels become leading "stack" axes
    plane_shape = work.shape[-3:] if layout.colour else work.shape[-2:]
    planes = work.reshape((-1, *plane_shape))
    batch = batch_size or default_batch_size(dev.type)
    runner = PlaneDeblurrer(net, dev, tile_size, tile_overlap, batch_size=batch, half=half, ensemble=ensemble)

    def tiles_per_plane() -> int:
        return len(runner.tiles_for(*plane_shape[:2]))

    # progress steps: each plane's tiles, and its PSF refinement as one more step
    done = plane_start = current = refined = 0
    total = len(planes) * (tiles_per_plane() + (1 if refine else 0))
    if runner.per_tile_statistics and tiles_per_plane() > 1:
        warnings.warn(
            "This model has instance normalisation, which normalises each tile by its own statistics, so tiles "
            "can differ at their seams; deblur whole frames if memory allows (tile_size=None, --tile-size 0, or "
            "tile size 0 in the widget), or use a model without normalisation layers (the 'fast' preset).",
            stacklevel=3,
        )

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    def started(k: int) -> None:  # plane k of the group goes through the network on its own
        nonlocal plane_start, current
        plane_start, current = done, i + k

    def retile() -> None:  # smaller tiles after an out-of-memory: the current plane starts over
        nonlocal done, total
        done = plane_start
        total = done + (len(planes) - current) * tiles_per_plane() + (len(planes) - refined if refine else 0)

    out = np.empty(planes.shape, dtype=arr.dtype)
    # frames that are one tile each (a stack of video frames) go through the network several at a time
    group = batch if tiles_per_plane() == 1 else 1
    for i in range(0, len(planes), group):
        units = [to_unit(plane, lo, hi) for plane in planes[i : i + group]]
        rgb_ins = [
            np.ascontiguousarray(u[..., :3] if layout.colour else np.repeat(u[..., None], 3, axis=2)) for u in units
        ]
        results = runner.frames(rgb_ins, tick, retile, started)
        if not layout.colour:  # the mean change of the three channels (exactly none where there is none)
            results = [unit + (result - rgb_in).mean(axis=2) for unit, rgb_in, result in zip(units, rgb_ins, results)]
            rgb_ins = units
        if refine:
            results = _refined(rgb_ins, results, dev)
            for _ in results:
                refined += 1
                tick()
        for j, (unit, rgb_in, result) in enumerate(zip(units, rgb_ins, results, strict=True)):
            plane = planes[i + j]
            if strength != 1:
                result = rgb_in + strength * (result - rgb_in)
            if layout.colour:
                out[i + j, ..., :3] = restore_dtype(result, unit[..., :3], plane[..., :3], lo, hi)
                if plane.shape[-1] == 4:
                    out[i + j, ..., 3] = plane[..., 3]
            else:
                out[i + j] = restore_dtype(result, unit, plane, lo, hi)
    out = out.reshape(work.shape)
    if layout.channel_axis is not None and not layout.colour:
        out = np.moveaxis(out, 0, -1)
    return np.moveaxis(out, -1, layout.channel_axis) if layout.channel_axis is not None else out


def network(model: str | Path | Generator | None, device: str) -> Generator:
    """The generator to run: the (cached) model of a file, or the one given, which must be on ``device``
    unless that is "auto"; a generator in training mode (dropout, batch statistics) runs as a copy in eval
    mode, so that the output is deterministic and the caller's module is left as it is."""
    if not isinstance(model, torch.nn.Module):
        return load_model(model, device)
    on = next(model.parameters()).device
    if str(device) != "auto":
        wanted = resolve_device(device)
        if wanted.type != on.type or wanted.index not in (None, on.index):
            move = f"model.to({str(wanted)!r})"
            raise ValueError(f"The model is on {on}, not {device}: move it there first ({move}), or pass device='auto'")
    return copy.deepcopy(model).eval() if model.training else model


def refines_together(device: torch.device) -> bool:
    """Whether a group of frames is refined in one batch on ``device``: on accelerators, where the
    refinement is bound by kernel launches; not on the CPU, where one 720p frame at a time took 1.1-1.5 s
    a frame against 1.8 s in a batch of 4 (2 cores)."""
    return device.type != "cpu"


def _refined(inputs: list[np.ndarray], outputs: list[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """PSF refinement of frames of one shape, together where :func:`refines_together` (out of memory, one
    at a time), else one at a time. On Apple's MPS it runs on the CPU: its kernel estimates and checks
    sum in float64, which MPS lacks."""
    device = torch.device("cpu") if device.type == "mps" else device
    if len(inputs) > 1 and refines_together(device):
        together = unless_out_of_memory(lambda: refine_frames(inputs, outputs, device=device), device)
        if together is not None:
            return [refined for refined, _ in together]
    return [refine_with_psf(x, y, device=device)[0] for x, y in zip(inputs, outputs)]


def deblur_lazy(
    image: Any,
    model: str | Path | Generator | None,
    *,
    channel_axis: int | None,
    rgb: bool | None,
    value_range: ValueRange,
    tile_size: int | None,
    tile_overlap: int | None,
    batch_size: int | None,
    device: str,
    **options: Any,
) -> Any:
    """:func:`.inference.deblur` of a dask array: the same layout and value-range rules, a lazy result whose
    blocks (twice the tile size, overlapping by the tile overlap) go through :func:`deblur_array` with the
    whole array's value range. ``options``: ``half``, ``ensemble``, ``refine``, ``strength``."""
    import dask.array as da

    if image.dtype == bool or image.dtype.kind not in "uif":
        check_array(np.empty((1, 1), dtype=image.dtype))
    if image.ndim < 2 or 0 in image.shape:
        check_array(np.empty(image.shape, dtype=image.dtype))
    layout = infer_layout(image.shape, channel_axis, rgb)
    lo, hi = value_range_of(image, value_range, channel_axis, rgb)  # the whole array's range: one pass
    overlap = default_overlap(tile_size) if tile_overlap is None else tile_overlap
    net = network(model, device)
    m = net.multiple
    blocks = {
        "block_size": 2 * tile_size if tile_size else 4096,
        "context": -(-overlap // m) * m,
        "multiple": m,
        "frames_per_block": batch_size or default_batch_size(next(net.parameters()).device.type),
    }

    def per_block(colour: bool, split: bool = False) -> Callable[[np.ndarray], np.ndarray]:
        """A block's deblurring; the blocks of frames split into several keep the generator's output
        (refined apart, with a PSF and gate each, they would not join at the block borders)."""
        return partial(
            deblur_array,
            model=net,
            channel_axis=None,
            rgb=colour,
            value_range=(lo, hi),
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            batch_size=batch_size,
            device=device,
            **{**options, "refine": options["refine"] and not split},
        )

    # colour channels go last; other channels first, as independent planes
    axis, colour = (-1, True) if layout.colour else (0, False)
    moved = image if layout.channel_axis is None else da.moveaxis(image, layout.channel_axis, axis)
    lazy = deblur_dask(moved, per_block(colour), colour, run_split=per_block(colour, split=True), **blocks)
    return lazy if layout.channel_axis is None else da.moveaxis(lazy, axis, layout.channel_axis)
