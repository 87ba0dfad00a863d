"""Helpers shared by test modules (pytest puts tests/ on sys.path): the smallest training recipe and a
deblur widget docked in a viewer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_RECIPE: dict[str, Any] = {
    "preset": "fast",
    "generator": {"ngf": 8, "n_blocks": 1},
    "content_loss": "l1",
    "adv_weight": 0,
    "crop": 32,
    "batch_size": 2,
    "checkpoint_every": 2,
    "validate_every": 1000,
}


def deblur_widget(viewer: Any, model: Path, beside: bool = True) -> Any:
    """A DeblurWidget docked in ``viewer`` that runs the model file ``model``."""
    from napari_deblurgan._widgets.deblur import DeblurWidget

    widget = DeblurWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._model.value = "file"
    widget._model_file.value = model
    widget._beside.value = beside
    return widget
