"""napari-deblurgan: DeblurGAN motion deblurring for napari, Python scripts and the command line.

``import napari_deblurgan`` stays light (no torch, no Qt); the public functions load them on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["deblur", "default_model_path", "load_model"]

_LAZY = {
    "deblur": "napari_deblurgan.gan.restoration.inference",
    "load_model": "napari_deblurgan.gan.restoration.inference",
    "default_model_path": "napari_deblurgan.gan.model.weights",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_deblurgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
