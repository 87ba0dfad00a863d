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


def test_cli_help_answers_without_torch() -> None:
    code = "import sys\nfrom napari_deblurgan.cli import build_parser\nbuild_parser()\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_deblur_widgets_module_loads_neither_torch_nor_the_trainer() -> None:
    """Opening the deblur dock imports what deblurring needs; torch comes with the first Deblur."""
    code = (
        "import sys\nimport napari_deblurgan._widgets.deblur\n"
        "print([m for m in ('torch', 'napari_deblurgan.gan.training.train') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_reader_opens_folders_without_torch(tmp_path) -> None:
    """npe2 offers every folder to the reader: turning one down, or reading A/B pairs, needs no torch."""
    for sub in ("A", "B"):
        (tmp_path / "ab" / sub).mkdir(parents=True)
    code = (
        "import sys, numpy as np, imageio.v3 as iio\n"
        "from napari_deblurgan._reader import get_reader\n"
        f"root = {str(tmp_path)!r}\n"
        "for sub in 'AB': iio.imwrite(f'{root}/ab/{sub}/x.png', np.zeros((8, 8), np.uint8))\n"
        "assert get_reader(root) is None\n"
        "layers = get_reader(root + '/ab')(root + '/ab')\n"
        "print(len(layers), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"]


def test_public_api_resolves_lazily() -> None:
    import napari_deblurgan

    assert callable(napari_deblurgan.deblur)
    assert callable(napari_deblurgan.load_model)
    assert {"deblur", "load_model"} <= set(dir(napari_deblurgan))
