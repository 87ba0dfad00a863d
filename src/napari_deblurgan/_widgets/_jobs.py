"""Generator jobs that napari thread workers run (no Qt here): each yields progress and returns a result.

Never touch layers here; the widgets update the viewer from the workers' signals on the main thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..gan.train import MODEL_NAME, Trainer, TrainEvent

R = TypeVar("R")
Y = TypeVar("Y")
Progress = tuple[int, int]


class JobError(Exception):
    """A job's failure, with a message for the user.

    (Thread workers treat a ``RuntimeError`` from the job as a deleted worker and drop it, so every error
    is re-raised as this type.)
    """


class Cancelled(Exception):
    """Raised inside a running callback-style function to end it early."""


def user_errors(job: Generator[Y, None, R]) -> Generator[Y, None, R]:
    """Pass ``job`` through, turning any exception it raises into a :class:`JobError`."""
    try:
        return (yield from job)
    except Exception as exc:
        raise JobError(str(exc) or exc.__class__.__name__) from exc


def with_progress(
    func: Callable[[Callable[[int, int], None]], R], cancel: threading.Event
) -> Generator[Progress, None, R]:
    """Run ``func(progress)`` in a helper thread and yield every ``(done, total)`` it reports.

    Returns what ``func`` returns. Once ``cancel`` is set, the next progress report raises
    :class:`Cancelled` inside ``func``, so it stops within one tile.
    """
    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

    def progress(done: int, total: int) -> None:
        events.put(("progress", (done, total)))
        if cancel.is_set():
            raise Cancelled

    def target() -> None:
        try:
            events.put(("result", func(progress)))
        except BaseException as exc:
            events.put(("error", exc))

    threading.Thread(target=target, name="napari-deblurgan-deblur", daemon=True).start()
    while True:
        kind, value = events.get()
        if kind == "progress":
            yield value
        elif kind == "error":
            raise value
        else:
            return value


def deblur_job(
    data: Any, model: Path | None, cancel: threading.Event, own_range_of: Any = None, **options: Any
) -> Generator[Progress, None, np.ndarray]:
    """Deblur ``data`` (numpy or dask), yielding ``(tiles done, total)``; ``options`` go to ``deblur``.

    ``own_range_of``: map intensities by this array's own range (``intensity_range``: the whole layer,
    so a single frame gets the same mapping as the whole stack), computed here, off the GUI thread.

    A dask stack (a lazy layer, e.g. from our reader) is deblurred lazily and computed frame by frame, so
    only one input frame is in memory at a time; progress then counts frames.
    """
    from ..gan.inference import deblur, intensity_range
    from ..gan.lazy import is_dask_array

    if own_range_of is not None:
        options["value_range"] = intensity_range(own_range_of, rgb=options.get("rgb"))

    stack_axes = data.ndim - (3 if options.get("rgb") else 2)
    if is_dask_array(data) and stack_axes > 0:
        return (yield from user_errors(_frame_by_frame(deblur(data, model, **options), stack_axes)))
    return (
        yield from user_errors(with_progress(lambda p: deblur(np.asarray(data), model, progress=p, **options), cancel))
    )


def _frame_by_frame(lazy: Any, stack_axes: int) -> Generator[Progress, None, np.ndarray]:
    out = np.empty(lazy.shape, dtype=lazy.dtype)
    frames = list(np.ndindex(lazy.shape[:stack_axes]))
    for done, index in enumerate(frames, 1):
        out[index] = np.asarray(lazy[index])
        yield done, len(frames)
    return out


def train_job(make_trainer: Callable[[], Trainer], stop: threading.Event) -> Generator[TrainEvent, None, Path | None]:
    """Build a trainer (slow: data, networks) and train, yielding every step's event; returns the model file.

    Setting ``stop`` ends training after the current step with a checkpoint.
    """

    def steps() -> Generator[TrainEvent, None, Path | None]:
        trainer = make_trainer()
        if stop.is_set():
            trainer.request_stop()
        for event in trainer.steps():
            yield event
            if stop.is_set():
                trainer.request_stop()
        model = trainer.run_dir / MODEL_NAME
        return model if model.is_file() else None

    return (yield from user_errors(steps()))
