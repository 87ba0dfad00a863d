"""The npe2 manifest: valid, importable, and contributing what the plugin menu shows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

npe2 = pytest.importorskip("npe2")


def _npe2() -> list[str]:
    exe = shutil.which("npe2", path=str(Path(sys.executable).parent)) or shutil.which("npe2")
    return [exe] if exe else [sys.executable, "-m", "npe2"]


def test_manifest_validates_with_imports() -> None:
    out = subprocess.run([*_npe2(), "validate", "napari-deblurgan", "--imports"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_contributions() -> None:
    manifest = npe2.PluginManifest.from_distribution("napari-deblurgan")
    contrib = manifest.contributions
    assert all(cmd.id.startswith("napari-deblurgan.") for cmd in contrib.commands)
    assert [r.accepts_directories for r in contrib.readers] == [True]
    assert {w.display_name for w in contrib.widgets} == {"Deblur", "Train deblurring model"}
    assert {s.key for s in contrib.sample_data} == {"coffee", "clock"}
    assert [item.command for item in contrib.menus["napari/layers/filter"]] == ["napari-deblurgan.deblur_widget"]


def test_sample_data_is_a_blurred_image_with_its_ground_truth() -> None:
    from napari_deblurgan._sample_data import blurred_clock, blurred_coffee

    layers = {meta["name"]: data for data, meta, kind in blurred_coffee()}
    sharp, blurred = layers["coffee sharp"], layers["coffee blurred"]
    assert sharp.shape == blurred.shape == (400, 600, 3) and blurred.dtype == np.uint8

    def detail(image: np.ndarray) -> float:
        return float(np.abs(np.diff(image.astype(float), axis=1)).mean())

    assert detail(blurred) < 0.7 * detail(sharp)
    ((clock, _, kind),) = blurred_clock()
    assert clock.ndim == 2 and kind == "image"
