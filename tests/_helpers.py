"""Helpers shared by test modules (pytest puts tests/ on sys.path): the smallest training recipe, a deblur
widget docked in a viewer, a pickle payload that must never run and a training step made to fail."""

from __future__ import annotations

import hashlib
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


class PicklePayload:
    """Unpickling it touches the file ``PicklePayload.marker``: that file must never appear."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(PicklePayload.marker),))


def fail_train_step_at(monkeypatch: Any, call: int, error: BaseException) -> list[int]:
    """Make the ``call``-th Trainer.train_step (1-based) raise ``error``; returns the list of calls made."""
    from napari_deblurgan.gan.training.train import Trainer

    calls: list[int] = []
    real = Trainer.train_step

    def step(self: Trainer) -> dict[str, float]:
        calls.append(self.step)
        if len(calls) == call:
            raise error
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", step)
    return calls


def deblur_widget(viewer: Any, model: Path, beside: bool = True) -> Any:
    """A DeblurWidget docked in ``viewer`` that runs the model file ``model``."""
    from napari_deblurgan._widgets.deblur import DeblurWidget

    widget = DeblurWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._model.value = "file"
    widget._model_file.value = model
    widget._beside.value = beside
    return widget


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes: a file no command may change keeps it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
