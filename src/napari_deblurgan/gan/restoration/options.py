"""``deblur``'s options in one table: each one's default, limits and help text.

``deblur()``'s signature and checks, the command line's flags (``deblur``, ``evaluate``) and the deblur
widget's controls are all built from :data:`OPTIONS`, so a default or a limit is written once.
Torch-free at import (the command line and the widgets read it before torch loads).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ensemble import ENSEMBLE_SIZES


@dataclass(frozen=True)
class Option:
    """One option of ``deblur``: its default, what values it takes, and what it does in a line."""

    name: str
    default: Any
    help: str  # one line, for the command line's help and the widget's tooltip
    kind: type = int  # int, float, bool or str
    minimum: float | None = None  # the smallest value allowed (None: any)
    maximum: float | None = None
    none: str | None = None  # what None stands for, where None is allowed ("whole frames")
    choices: tuple[Any, ...] | None = None
    means: str = ""  # what the value is, for messages ("copies averaged")
    unit: str = ""  # the unit of the value ("pixels")

    @property
    def flag(self) -> str:
        """The command line's flag: ``--tile-size`` for ``tile_size``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """Refuse a value of the wrong type (TypeError) or out of range (ValueError), in the API's words;
        numpy integers and booleans count as such."""
        if value is None and self.none is not None:
            return
        if self.kind is bool:
            if not isinstance(value, bool | np.bool_):
                none = " or None" if self.none is not None else ""
                raise TypeError(f"{self.name} must be True or False{none}, got {value!r}")
        elif self.kind is int and self.choices is not None:
            if not _is_int(value):
                raise TypeError(f"{self.name} must be an int, one of {self.choices} ({self.means}), got {value!r}")
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {self.choices} ({self.means}), got {value!r}")
        elif self.kind is int:
            wanted = f"{self.name} must be an int" + (f" >= {self.minimum}" if self.minimum is not None else "")
            wanted += f" or None for {self.none}" if self.none else ""
            if not _is_int(value):
                raise TypeError(f"{wanted}, got {value!r}")
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{wanted}, got {value!r}")
        elif self.kind is float and (
            isinstance(value, bool) or not isinstance(value, numbers.Real) or not self._within(value)
        ):
            raise ValueError(f"{self.name} is {self.means}, a number {self._span(' to ')}; got {value!r}")

    def from_text(self, text: str) -> Any:
        """The value a command-line argument names, checked; 0 stands for None where None is allowed
        (``--tile-size 0``: whole frames). ValueError in the command line's words."""
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {'a whole number' if self.kind is int else 'a number'}") from None
        if self.kind is int and value == 0 and self.none is not None:
            return None
        if self.kind is int and self.minimum is not None and value < self.minimum:
            zero = f"0 ({self.none}) or " if self.none is not None else ""
            raise ValueError(f"{value} is too small: use {zero}at least {self.minimum:g} {self.unit}".rstrip())
        if self.kind is float and not self._within(value):
            raise ValueError(f"{value:g} is outside {self._span('..')}: {self.name} is {self.means}")
        return value

    def _within(self, value: float) -> bool:
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        return bool(low <= value <= high)

    def _span(self, between: str) -> str:
        return f"{self.minimum:g}{between}{self.maximum:g}"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


#: Tiles of at most this many pixels per side by default: a 1 MP photo in one piece, bounded memory beyond.
TILE_SIZE = Option(
    "tile_size",
    1024,
    "larger images are deblurred in overlapping tiles of at most this many pixels per side (bounds memory)",
    minimum=32,
    none="whole frames",
    unit="pixels",
)
TILE_OVERLAP = Option(
    "tile_overlap",
    None,
    "overlap of neighbouring tiles, blended so that no seam shows (default: 128 px, at most a quarter of the tile)",
    minimum=0,
    none="the default",
    unit="pixels",
)
BATCH_SIZE = Option(
    "batch_size",
    None,
    "tiles (or frames of a stack) per pass through the network (default: 1 on the CPU, 4 on GPUs)",
    minimum=1,
    none="the default",
)
CHANNEL_AXIS = Option(
    "channel_axis",
    None,
    "the axis holding channels, for channel-first data",
    none="grayscale or colour on the last axis",
)
RGB = Option("rgb", None, "read a last axis of 3 or 4 as colour (True) or not (False)", kind=bool, none="a guess")
HALF = Option(
    "half", False, "half precision (fp16 on GPUs, bf16 on capable CPUs): faster, slightly less exact", kind=bool
)
ENSEMBLE = Option(
    "ensemble",
    1,
    "average the model over this many flipped/transposed copies: cleaner results, 2-8x the time (4: most of 8's gain)",
    choices=ENSEMBLE_SIZES,
    means="copies averaged",
)
REFINE = Option(
    "refine",
    True,
    "deconvolve with a blur kernel (PSF) estimated from the model's output: much sharper on camera shake, and "
    "images with no blur found keep their input; turn it off where halos appear (blur that differs across the "
    "image, e.g. moving objects)",
    kind=bool,
)
STRENGTH = Option(
    "strength",
    1.0,
    "share of the model's correction applied; lower it where results look over-sharpened",
    kind=float,
    minimum=0.0,
    maximum=1.0,
    means="the share of the model's correction applied",
)
DEVICE = Option(
    "device",
    "auto",
    "where the model runs: auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps",
    kind=str,
)
VALUE_RANGE = Option(
    "value_range",
    None,
    "intensities mapped to black..white: the dtype's range (8/16-bit integers; floats [0, 1] if inside it, else "
    "their min..max), the image's own min..max with a 10 % margin (auto: e.g. 12-bit data stored as 16-bit), "
    "or (low, high)",
    kind=str,
    none="the dtype's range",
)

#: Every option of ``deblur`` by name (checked by :func:`check_options`; ``device`` and ``value_range`` are
#: checked where they are used: :func:`..model.device.resolve_device`, :func:`..io.intensity.value_range_of`).
OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        DEVICE,
        CHANNEL_AXIS,
        RGB,
        VALUE_RANGE,
        TILE_SIZE,
        TILE_OVERLAP,
        BATCH_SIZE,
        HALF,
        ENSEMBLE,
        REFINE,
        STRENGTH,
    )
}

#: The options :func:`check_options` checks, in the order it checks them.
_CHECKED = (TILE_SIZE, TILE_OVERLAP, BATCH_SIZE, CHANNEL_AXIS, ENSEMBLE, RGB, HALF, REFINE)


def check_options(**values: Any) -> None:
    """``deblur``'s options of a wrong type or out of their range, refused in its words before any work
    (TypeError for the type, ValueError for the value); ``strength`` is checked on its own
    (:meth:`Option.check`)."""
    for option in _CHECKED:
        if option.name in values:
            option.check(values[option.name])


def default_overlap(tile_size: int | None) -> int:
    """``tile_overlap=None``: 128 px, at most a quarter of the tile. The shipped network's deepest blocks see
    past it, so smaller tiles cost accuracy: against the whole frame (astronaut resized, default pipeline),
    1024 px tiles on 320 x 1200 px differ by at most 3 grey levels; 512 px tiles on 1024^2 px by at most 12
    (0.049 % of values by more than 3; with 96 px of overlap 37 and 0.117 %), in the same number of tiles."""
    return 128 if tile_size is None else min(128, tile_size // 4)


def default_batch_size(device_type: str) -> int:
    """``batch_size=None``: 1 on the CPU (measured fastest there), 4 on GPUs."""
    return 1 if device_type == "cpu" else 4
