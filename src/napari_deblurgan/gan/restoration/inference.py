"""The public API: ``deblur`` (any array a napari user holds -> the same shape, dtype and value range,
deblurred) and ``load_model``.

The work is done elsewhere: options and their defaults (:mod:`.options`), the numpy and dask pipelines
(:mod:`.pipeline`), which use the layout rules (:mod:`..io.layout`), value ranges and dtype round trips
(:mod:`..io.intensity`), the tile runner (:mod:`.plane_runner`), PSF refinement (:mod:`.psf_refine`) and dask
blocks (:mod:`..io.lazy`); models are loaded and cached by :func:`..model.weights.load_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..io.intensity import ValueRange
from ..io.lazy import is_dask_array
from ..model.networks import Generator
from ..model.weights import load_model
from .options import (
    BATCH_SIZE,
    CHANNEL_AXIS,
    DEVICE,
    ENSEMBLE,
    HALF,
    REFINE,
    RGB,
    STRENGTH,
    TILE_OVERLAP,
    TILE_SIZE,
    VALUE_RANGE,
    check_options,
)
from .pipeline import ProgressCallback, deblur_array, deblur_lazy

__all__ = ["deblur", "load_model"]


def deblur(
    image: ArrayLike,
    model: str | Path | Generator | None = None,
    *,
    device: str = DEVICE.default,
    channel_axis: int | None = CHANNEL_AXIS.default,
    rgb: bool | None = RGB.default,
    value_range: ValueRange = VALUE_RANGE.default,
    tile_size: int | None = TILE_SIZE.default,
    tile_overlap: int | None = TILE_OVERLAP.default,
    batch_size: int | None = BATCH_SIZE.default,
    half: bool = HALF.default,
    ensemble: int = ENSEMBLE.default,
    refine: bool = REFINE.default,
    strength: float = STRENGTH.default,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Deblur an image or a stack of images; returns a new array of the input's shape and dtype.

    Args:
        image: (Y, X) grayscale, (Y, X, 3|4) RGB(A) or stacks with leading axes (T, Z, ...). RGBA alpha
            passes through untouched. Values map as ``value_range`` says; the output keeps them where the
            model changes nothing.
        model: a safetensors model file, a loaded generator, or None for the shipped default model.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
        channel_axis: the axis holding channels, for channel-first data; 3 or 4 channels are RGB(A),
            other counts are deblurred channel by channel.
        rgb: force (True) or forbid (False) reading a last axis of 3/4 as colour; None guesses.
        value_range: (low, high) of the values that map to black..white. None: 8/16-bit integers by
            their dtype's range; floats [0, 1] if inside it, else (like 32/64-bit integers) their
            min..max. "auto": the image's own min..max with a 10 % margin (:func:`..io.intensity.intensity_range`),
            e.g. for 12-bit data stored as 16-bit (:mod:`..io.intensity`).
        tile_size: images larger than this (pixels per side) are processed in overlapping tiles of at
            most this size, bounding memory; smaller ones whole, with their 16 px border. None for whole
            frames.
        tile_overlap: overlap of neighbouring tiles, blended so no seam shows; None: 128 px, at most a
            quarter of the tile.
        batch_size: tiles per forward pass; None: 1 on the CPU (measured fastest there), 4 on GPUs.
        half: float16 on CUDA/MPS, bfloat16 on CPUs that support it (faster, slightly less exact).
        ensemble: self-ensemble: average the model's outputs on 1, 2, 4 or 8 flipped/transposed copies
            of each tile (4, with the shipped model and the default pipeline: realistic validation +1.83 ->
            +1.96 dB, worst frame -4.57 -> -2.99, test +1.79 -> +1.87; 4x the network's time).
        refine: estimate the blur's PSF with the help of the generator's output and deconvolve the
            input with it, regularised towards that output; an image with no blur found keeps the input
            (:mod:`.psf_refine`; 1-2 s/MP more).
            One PSF per plane: for uniform camera shake (dask frames more than 3 x ``tile_size`` a side,
            deblurred in blocks, keep the generator's output: blocks refined apart would not join). False gives the
            generator's output alone.
        strength: how much of the model's correction to apply, 0 to 1: ``input + strength * (output -
            input)``; below 1 for a gentler result where the model over-sharpens (slight blur, fur, skin).
        progress: called as ``progress(done, total)`` after every tile and each plane's PSF refinement
            (not for dask input).

    A dask array gives a lazy dask array, computed block by block (see :mod:`..io.lazy`); pass a model
    file path rather than a loaded model when computing on a distributed cluster. Masked arrays are
    refused (a blur spreads masked pixels into unmasked ones): fill them first.
    """
    check_options(
        channel_axis=channel_axis,
        rgb=rgb,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        batch_size=batch_size,
        half=half,
        ensemble=ensemble,
        refine=refine,
    )
    if isinstance(image, np.ma.MaskedArray):
        raise TypeError(
            "deblur got a masked array: its mask would be ignored and its hidden values would set the range. "
            "Pass image.filled(value) to choose what the masked pixels hold, then re-apply the mask to the result."
        )
    STRENGTH.check(strength)
    options: dict[str, Any] = {
        "channel_axis": channel_axis,
        "rgb": rgb,
        "value_range": value_range,
        "tile_size": tile_size,
        "tile_overlap": tile_overlap,
        "batch_size": batch_size,
        "device": device,
        "half": half,
        "ensemble": ensemble,
        "refine": refine,
        "strength": strength,
    }
    if is_dask_array(image):
        return deblur_lazy(image, model, **options)
    return deblur_array(image, model, progress=progress, **options)
