"""Device policy: ``auto`` = CUDA, then Apple MPS, then CPU; explicit choices are checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def available_devices() -> list[str]:
    """Devices usable on this machine, best first (``cpu`` always last)."""
    found = []
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None picks the best available device; an unavailable explicit device is an error."""
    if device is None or str(device) == "auto":
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {device!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"Device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"Device {device!r} was asked for but Apple MPS is not available here; use 'auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unsupported device {device!r}; use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast is fast and exact enough on ``device``: on CUDA, native bfloat16 (compute
    capability 8, Ampere, and later; torch also reports older GPUs, which emulate it slowly)."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


_TORCH_OOM: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t
)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError, or a RuntimeError saying so (MPS, older torch, the CPU allocator)."""
    if isinstance(exc, _TORCH_OOM):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def unless_out_of_memory(run: Callable[[], T], device: torch.device) -> T | None:
    """``run()``, or None if it ran out of memory: its tensors are then freed (with its traceback) and,
    on CUDA, the cached blocks released, so that the caller can retry in smaller pieces."""
    try:
        return run()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return None
