"""Generator jobs that napari thread workers run (no Qt here): each yields progress and returns a result.

Never touch layers here; the widgets update the viewer from the workers' signals on the main thread.
"""

from __future__ import annotations

import inspect
import queue
import threading
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:  # the trainer (torch, blur synthesis, metrics) loads with the first training run only
    from ..gan.training.train import Trainer, TrainEvent

R = TypeVar("R")
Y = TypeVar("Y")
Progress = tuple[int, int, str]  # (done, total, what is counted: "step", "frame" or "frame scanned")


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
    func: Callable[[Callable[[int, int], None]], R], cancel: threading.Event, unit: str = "step"
) -> Generator[Progress, None, R]:
    """Run ``func(progress)`` in a helper thread and yield every ``(done, total)`` it reports, as ``unit``
    (``deblur``'s steps: each tile, and each plane's PSF refinement).

    Returns what ``func`` returns. Once ``cancel`` is set, the next progress report raises
    :class:`Cancelled` inside ``func``, so it stops within one step.
    """
    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

    def progress(done: int, total: int) -> None:
        events.put(("progress", (done, total, unit)))
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
    """Deblur ``data`` (numpy or dask), yielding progress; ``options`` go to ``deblur``.

    ``own_range_of``: map intensities by this array's own range (``value_range="auto"``: the whole layer,
    so a single frame gets the same mapping as the whole stack), scanned here frame by frame, off the GUI
    thread, with progress (a worker can be cancelled at each yield).

    A dask stack (a lazy layer, e.g. from our reader) is deblurred frame by frame, by the whole stack's value
    range, so that only one input frame is in memory at a time; progress counts each frame's steps.
    """
    return (yield from user_errors(_deblur_steps(data, model, cancel, own_range_of, options)))


def _deblur_steps(
    data: Any, model: Path | None, cancel: threading.Event, own_range_of: Any, options: dict[str, Any]
) -> Generator[Progress, None, np.ndarray]:
    from ..gan.io.intensity import reads_data, resolve_range
    from ..gan.io.lazy import is_dask_array

    rgb = options.get("rgb")
    if own_range_of is not None:
        found = yield from _extremes_by_frame(own_range_of, "auto", rgb)
        options["value_range"] = resolve_range("auto", own_range_of.dtype, found)
    stack_axes = data.ndim - (3 if rgb else 2)
    if is_dask_array(data) and stack_axes > 0:
        value_range = options.get("value_range")
        if reads_data(value_range, data.dtype):  # the whole stack's range, for every frame
            found = yield from _extremes_by_frame(data, value_range, rgb)
            options["value_range"] = resolve_range(value_range, data.dtype, found)
        return (yield from _frame_by_frame(data, model, cancel, options, stack_axes))
    return (yield from _deblurred(np.asarray(data), model, cancel, options))


def _deblurred(
    image: np.ndarray, model: Path | None, cancel: threading.Event, options: dict[str, Any], unit: str = "step"
) -> Generator[Progress, None, np.ndarray]:
    from ..gan.restoration.inference import deblur

    return (yield from with_progress(lambda p: deblur(image, model, progress=p, **options), cancel, unit))


def _extremes_by_frame(data: Any, value_range: Any, rgb: bool | None) -> Generator[Progress, None, tuple[float, float]]:
    """Minimum and maximum of what ``value_range`` reads (:func:`..gan.io.intensity.extremes`: "auto" leaves
    RGBA alpha out) of a (maybe lazy) stack, one frame at a time."""
    from ..gan.io.intensity import extremes

    frame_ndim = 3 if rgb else 2
    frames = list(np.ndindex(data.shape[: data.ndim - frame_ndim]))
    low, high = np.inf, -np.inf
    for done, index in enumerate(frames, 1):
        lo, hi = extremes(np.asarray(data[index]), value_range, rgb=rgb)
        low, high = float(np.minimum(low, lo)), float(np.maximum(high, hi))  # NaN propagates
        yield done, len(frames), "frame scanned"
    return low, high


def _frame_by_frame(
    data: Any, model: Path | None, cancel: threading.Event, options: dict[str, Any], stack_axes: int
) -> Generator[Progress, None, np.ndarray]:
    """A lazy stack read and deblurred one frame at a time, each as an array in memory: refined however large
    (lazy deblurring keeps the generator's output in frames split into blocks) and cancelled within a frame."""
    out = np.empty(data.shape, dtype=data.dtype)
    frames = list(np.ndindex(data.shape[:stack_axes]))
    for done, index in enumerate(frames, 1):
        unit = f"frame {done}/{len(frames)}: step"
        out[index] = yield from _deblurred(np.asarray(data[index]), model, cancel, options, unit)
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
            yield _with_inputs(event, trainer)
            if stop.is_set():
                trainer.request_stop()
        from ..gan.training.train import MODEL_NAME

        model = trainer.run_dir / MODEL_NAME
        return model if model.is_file() else None

    return (yield from user_errors(steps()))


def run_job(job: Generator[Y, None, R]) -> Generator[Y, None, R]:
    """A job built beforehand, for a thread worker (whose function must be a generator function)."""
    return (yield from job)


def finish_aborted(job: Generator[Any, None, Any], stop: threading.Event) -> None:
    """End a :func:`train_job` that napari aborted (its window closing) the way Stop ends it: with ``stop``
    set, resuming the job once more saves a checkpoint and the model. Connect it to the worker's
    ``aborted`` signal directly: it then runs in the worker's thread, where the job lies suspended."""
    stop.set()
    if inspect.getgeneratorstate(job) != inspect.GEN_SUSPENDED:
        return
    try:
        for _ in job:
            pass
    except JobError as exc:
        warnings.warn(f"The training run could not be saved as napari closed: {exc}", stacklevel=1)


def _with_inputs(event: TrainEvent, trainer: Trainer) -> TrainEvent:
    """``event`` with its preview (the output on the first validation pair) between that pair's blurred
    input and sharp target, so the preview shows what the output should become."""
    from dataclasses import replace

    from ._layers import side_by_side

    pairs = getattr(trainer, "_val", None)  # filled by Trainer.validate, which made the preview
    if event.preview is None or not pairs:
        return event
    blurred, sharp = (
        np.repeat(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), 3 // image.shape[-1], axis=-1)
        for image in pairs[0]
    )
    return replace(event, preview=side_by_side(blurred, event.preview, sharp))
