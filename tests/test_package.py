"""Packaging facts: a light import and the public API."""

from __future__ import annotations

import subprocess
import sys


def test_import_loads_neither_torch_nor_qt() -> None:
    code = (
        "import sys, napari_deblurgan\n"
        "heavy = [m for m in ('torch', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_resolves_lazily() -> None:
    import napari_deblurgan

    assert callable(napari_deblurgan.deblur)
    assert callable(napari_deblurgan.load_model)
    assert {"deblur", "load_model"} <= set(dir(napari_deblurgan))
