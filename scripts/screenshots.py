"""Screenshots of both widgets at work, taken from the real napari GUI (run under Xvfb on a server).

    xvfb-run -a python scripts/screenshots.py [--model MODEL.safetensors] [--out docs/images]

Opens the blurred-coffee sample, deblurs it with the deblur widget, trains a few steps from the two
sample layers with the training widget, and saves ``deblur_widget.png`` and ``train_widget.png``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("NAPARI_APPLICATION_GUI_NOTIFICATION_LEVEL", "error")  # no toasts over the canvas

import napari
from qtpy.QtCore import QEventLoop
from qtpy.QtWidgets import QApplication

PLUGIN = "napari-deblurgan"


def wait(worker: Any) -> None:
    """Run the Qt event loop until ``worker`` finishes (its signals queue until the loop runs)."""
    loop = QEventLoop()
    worker.finished.connect(loop.quit)
    loop.exec_()


def screenshot(viewer: napari.Viewer, path: Path) -> None:
    """Let pending layout and paint events run, then save the whole window."""
    for _ in range(10):
        QApplication.processEvents()
    viewer.screenshot(path, canvas_only=False)
    print(f"saved {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file for the deblur shot (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    parser.add_argument("--steps", type=int, default=60, help="training steps for the training shot")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer()
    viewer.window.resize(1600, 1000)
    viewer.open_sample(PLUGIN, "coffee")
    deblur_dock, deblur = viewer.window.add_plugin_dock_widget(PLUGIN, "Deblur")
    if args.model is not None:
        deblur._model.value = "file"
        deblur._model_file.value = args.model.resolve()
    deblur._image.value = viewer.layers["coffee blurred"]
    deblur.start()
    wait(deblur.worker)
    if "coffee blurred deblurred" not in viewer.layers:
        raise SystemExit(f"Deblurring failed ({deblur._status.value}); pass a model file with --model")
    viewer.layers["coffee sharp"].visible = False
    viewer.reset_view()
    screenshot(viewer, args.out / "deblur_widget.png")

    deblur_dock.setVisible(False)
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train deblurring model")
    train._source.value = "open layers"
    train._blurred.value = viewer.layers["coffee blurred"]
    train._sharp.value = viewer.layers["coffee sharp"]
    train._width.value, train._blocks.value = 16, 2
    train._steps.value, train._batch.value, train._crop.value = args.steps, 4, 64
    train._lr.value, train._preview_every.value = 1e-3, 10
    train._out.value = Path(tempfile.mkdtemp(prefix="napari-deblurgan-shot-")) / "coffee-run"
    train.start()
    wait(train.worker)
    viewer.layers["coffee sharp"].visible = False  # the preview (blurred | output | sharp) sits below the photos
    viewer.layers.selection.active = viewer.layers[-1]
    viewer.reset_view()
    screenshot(viewer, args.out / "train_widget.png")
    viewer.close()


if __name__ == "__main__":
    main()
