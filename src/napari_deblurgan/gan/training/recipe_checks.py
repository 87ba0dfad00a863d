"""Checks of every training option's type and range, so that a bad recipe fails on load naming the
option, not later inside the training loop (a division by zero, a torch error, a run that trains nothing)."""

from __future__ import annotations

import math
from typing import Any

from .losses import CONTENT_LOSSES

#: option: allowed strings
CHOICES: dict[str, tuple[str, ...]] = {
    "data_mode": ("auto", "pairs", "aligned", "sharp"),
    "gopro_blur": ("blur", "blur_gamma"),
    "content_loss": CONTENT_LOSSES,
    "schedule": ("linear", "cosine"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "synthesis": ("kernel", "realistic"),
}

#: option: (lowest, highest) for whole numbers
INTEGERS: dict[str, tuple[int, int]] = {
    "adv_start": (0, 10**9),
    "critic_steps": (1, 100),
    "warmup": (0, 10**9),
    "steps": (1, 10**9),
    "batch_size": (1, 4096),
    "crop": (16, 8192),
    "seed": (0, 2**63 - 1),
    "blur_ramp": (0, 10**9),
    "checkpoint_every": (1, 10**9),
    "validate_every": (1, 10**9),
    "log_every": (1, 10**9),
}

#: option: (lowest, highest, whether the lowest itself is allowed) for finite numbers
NUMBERS: dict[str, tuple[float, float, bool]] = {
    "content_weight": (0.0, 1e6, True),
    "adv_weight": (0.0, 1e6, True),
    "gp_weight": (0.0, 1e6, True),
    "lr": (0.0, 10.0, True),
    "critic_lr": (0.0, 10.0, True),
    "weight_decay": (0.0, 10.0, True),
    "decay_start": (0.0, 1.0, True),
    "grad_clip": (0.0, 1e6, True),
    "ema": (0.0, 0.999999, True),
    "blur_start": (0.0, 200.0, True),
    "blur_end": (0.0, 200.0, True),
    "max_noise": (0.0, 1.0, True),
    "scale_min": (0.0, 1.0, False),
    "dead_leaves": (0.0, 1.0, True),
    "min_detail": (0.0, 1.0, True),
    "soft_regions": (0.0, 1.0, True),
    "defocus": (0.0, 1.0, True),
    "contrast_min": (0.0, 1.0, False),
    "small_blur": (0.0, 1.0, True),
}

FLAGS = ("channels_last",)  # true or false
OBJECTS = ("generator", "critic", "realistic")  # options that hold an object of further options
PATHS = ("init", "vgg_weights")  # a file name, or null


def check_options(options: dict[str, Any]) -> None:
    """Raise ValueError naming the first option whose type or value is out of bounds."""
    for name, choices in CHOICES.items():
        if options[name] not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}; got {options[name]!r}")
    for name, (low, high) in INTEGERS.items():
        value = options[name]
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{name} must be a whole number from {low} to {high}; got {value!r}")
    for name, (low, high, low_allowed) in NUMBERS.items():
        value = options[name]
        ok = type(value) in (int, float) and math.isfinite(value) and (low <= value if low_allowed else low < value)
        if not ok or value > high:
            bound = f"from {low:g}" if low_allowed else f"above {low:g}"
            raise ValueError(f"{name} must be a number {bound} to {high:g}; got {value!r}")
    if options["synthesis"] == "kernel" and options["defocus"] + options["small_blur"] > 0.9:
        name, other = ("small_blur", "defocus") if options["small_blur"] > 0 else ("defocus", "small_blur")
        raise ValueError(
            f"{name} must be at most {0.9 - options[other]:g} with {other} {options[other]:g}: they are fractions "
            f"of the blur kernels, 0.9 at most together; got {options[name]!r}"
        )
    for name in FLAGS:
        if type(options[name]) is not bool:
            raise ValueError(f"{name} must be true or false; got {options[name]!r}")
    for name in OBJECTS:
        if not isinstance(options[name], dict):
            raise ValueError(f"{name} must be an object of options; got {options[name]!r}")
    for name in PATHS:
        if options[name] is not None and (not isinstance(options[name], str) or not options[name]):
            raise ValueError(f"{name} must be a file name or null; got {options[name]!r}")
    if not isinstance(options["data"], str) or not options["data"]:
        raise ValueError(f"data must be 'skimage' or a folder name; got {options['data']!r}")
    betas = options["betas"]
    if (
        not isinstance(betas, (list, tuple))
        or len(betas) != 2
        or not all(type(b) in (int, float) and 0 <= b < 1 for b in betas)
    ):
        raise ValueError(f"betas must be two numbers from 0 to below 1 (Adam's decay rates); got {betas!r}")
