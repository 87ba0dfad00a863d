"""The widgets under bad input and failing workers: a notification naming the problem, a widget that stays
usable (the next run works), and layer data that is never modified.

Complements test_widgets.py (a corrupt and a missing model file, an unpaired training folder, Cancel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _helpers import deblur_widget

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import torch

from napari_deblurgan._widgets import deblur as deblur_module
from napari_deblurgan._widgets import train as train_module
from napari_deblurgan._widgets.train import TrainWidget
from napari_deblurgan.gan.training.train import Trainer

TIMEOUT = 60_000


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Messages the widgets show with napari's show_error / show_info."""
    messages: dict[str, list[str]] = {"error": [], "info": []}
    for module in (deblur_module, train_module):
        monkeypatch.setattr(module, "show_error", messages["error"].append)
        monkeypatch.setattr(module, "show_info", messages["info"].append)
    return messages


def _run(qtbot: Any, widget: Any, button: str = "_run") -> None:
    """Click ``button`` and wait until the job has finished and the button is enabled again.

    (Waiting for ``worker.finished`` after the click could miss it: a tiny job can finish before the
    wait connects to the signal. The widget's own handlers are connected before the worker starts.)
    """
    clicked = getattr(widget, button)
    clicked.clicked.emit()
    assert not clicked.enabled
    qtbot.waitUntil(lambda: clicked.enabled, timeout=TIMEOUT)


def test_a_failing_deblur_notifies_and_the_next_run_works(make_napari_viewer, qtbot, tiny_model_path, shown) -> None:
    viewer = make_napari_viewer()
    data = np.random.default_rng(0).random((24, 32)).astype(np.float32)
    data[3, 4] = np.nan
    layer = viewer.add_image(data, name="img")
    widget = deblur_widget(viewer, tiny_model_path, beside=False)
    _run(qtbot, widget)
    assert len(shown["error"]) == 1 and "img" in shown["error"][0] and "NaN" in shown["error"][0]
    assert "nan_to_num" in shown["error"][0]
    assert widget._run.enabled and not widget._stop.enabled and widget._status.value == "failed"
    assert "img deblurred" not in viewer.layers
    layer.data = np.nan_to_num(data)
    _run(qtbot, widget)
    assert len(shown["error"]) == 1 and viewer.layers["img deblurred"].data.shape == (24, 32)


def test_no_image_layer_and_multiscale_layers_are_explained(make_napari_viewer, tiny_model_path, shown) -> None:
    viewer = make_napari_viewer()
    widget = deblur_widget(viewer, tiny_model_path, beside=False)
    widget._run.clicked.emit()
    assert shown["info"] == ["Open an image layer to deblur first"] and widget.worker is None
    pyramid = [np.zeros((64, 64), np.uint8), np.zeros((32, 32), np.uint8)]
    viewer.add_image(pyramid, name="pyr", multiscale=True)
    widget._image.value = viewer.layers["pyr"]
    widget._run.clicked.emit()
    assert len(shown["error"]) == 1 and "multiscale" in shown["error"][0] and widget._run.enabled


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (1, 2000), (2000, 1)])
def test_tiny_and_extreme_layers_and_read_only_data(make_napari_viewer, qtbot, identity_model_path, shown, shape):
    viewer = make_napari_viewer()
    data = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    data.flags.writeable = False
    before = data.copy()
    viewer.add_image(data, name="img")
    _run(qtbot, deblur_widget(viewer, identity_model_path, beside=False))
    assert not shown["error"]
    np.testing.assert_array_equal(viewer.layers["img deblurred"].data, before)  # identity model
    np.testing.assert_array_equal(data, before)


# -- training ------------------------------------------------------------------------------------------------


def _train_widget(viewer: Any, out: Path) -> TrainWidget:
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._source.value = "open layers"
    widget._blurred.value = viewer.layers["blurred"]
    widget._sharp.value = viewer.layers["sharp"]
    widget._preset.value = "fast"
    widget._width.value, widget._blocks.value = 8, 1
    widget._steps.value, widget._batch.value, widget._crop.value = 4, 2, 32
    widget._content.value, widget._adv.value = "l1", 0.0
    widget._preview_every.value = 1000
    widget._device.value = "cpu"
    widget._out.value = out
    return widget


def _layers(viewer: Any, blurred_shape: tuple[int, ...] = (2, 40, 40, 3), rgb: bool = True) -> None:
    rng = np.random.default_rng(2)
    viewer.add_image(rng.integers(0, 255, (2, 40, 40, 3), dtype=np.uint8), name="sharp", rgb=True)
    viewer.add_image(rng.integers(0, 255, blurred_shape, dtype=np.uint8), name="blurred", rgb=rgb)


def test_training_oom_notifies_keeps_the_checkpoint_and_the_widget_usable(
    make_napari_viewer, qtbot, tmp_path, shown, monkeypatch
) -> None:
    from napari_deblurgan.gan.io.checkpoint import load_checkpoint

    calls: list[int] = []
    real = Trainer.train_step

    def step(self: Trainer) -> dict[str, float]:
        calls.append(self.step)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", step)
    viewer = make_napari_viewer()
    _layers(viewer)
    widget = _train_widget(viewer, tmp_path / "run")
    _run(qtbot, widget, "_start")
    assert len(shown["error"]) == 1
    message = shown["error"][0]
    assert message.startswith("Training failed:") and "out of memory at step 3" in message
    assert "smaller batch size or crop" in message and "batch size 1" in message
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2
    assert widget._start.enabled and not widget._stop.enabled and widget._status.value == "failed"
    widget._resume.value = True  # usable: resume the saved run to its end
    _run(qtbot, widget, "_start")
    assert len(shown["error"]) == 1 and load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 4


@pytest.mark.parametrize(
    ("blurred_shape", "rgb", "same", "message"),
    [
        ((2, 40, 40, 3), True, True, "Choose two different image layers"),
        ((2, 40, 48, 3), True, False, r"differ in shape: \(2, 40, 48, 3\) vs \(2, 40, 40, 3\)"),
        ((2, 40, 40), False, False, "must both be RGB or both grayscale"),
    ],
    ids=["same-layer", "different-sizes", "rgb-and-gray"],
)
def test_bad_layer_pairs_are_refused_before_training(
    make_napari_viewer, tmp_path, shown, blurred_shape, rgb, same, message
) -> None:
    import re

    viewer = make_napari_viewer()
    _layers(viewer, blurred_shape, rgb)
    widget = _train_widget(viewer, tmp_path / "run")
    if same:
        widget._blurred.value = viewer.layers["sharp"]
    widget._start.clicked.emit()
    assert len(shown["error"]) == 1 and re.search(message, shown["error"][0]), shown["error"]
    assert widget.worker is None and widget._start.enabled and not (tmp_path / "run").exists()


def test_multiscale_layers_are_refused_before_training(make_napari_viewer, tmp_path, shown) -> None:
    viewer = make_napari_viewer()
    pyramid = [np.zeros((2, 64, 64), np.uint8), np.zeros((2, 32, 32), np.uint8)]
    viewer.add_image(pyramid, name="sharp", multiscale=True)
    viewer.add_image(pyramid, name="blurred", multiscale=True)
    widget = _train_widget(viewer, tmp_path / "run")
    widget._start.clicked.emit()
    assert len(shown["error"]) == 1 and "multiscale" in shown["error"][0], shown["error"]
    assert widget.worker is None and widget._start.enabled
