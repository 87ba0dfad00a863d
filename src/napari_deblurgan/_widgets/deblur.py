"""The deblur widget: pick an image layer and a model, deblur in a thread with progress and Cancel."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    Label,
    ProgressBar,
    PushButton,
    RadioButtons,
    SpinBox,
)
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt

from ..gan.restoration.options import DEVICE, ENSEMBLE, REFINE, STRENGTH, TILE_SIZE
from ._activity import ActivityProgress
from ._jobs import deblur_job
from ._layers import current_frame, image_choices, is_ours, place_results, show_result, stack_ndim
from ._scroll import ScrollingContainer
from ._state import trained_models

if TYPE_CHECKING:
    import napari
    from napari.layers import Image
    from napari.utils.events import Event

DEFAULT, FILE = "default", "file"
CURRENT, WHOLE = "current frame", "whole stack"
DTYPE_RANGE, OWN_RANGE = "16-bit range", "own min..max"
ENSEMBLE_LABELS = {1: "off (fastest)", 4: "x4 (nearly x8's gain, 4x the time)", 8: "x8 (best, 8x the time)"}
ENSEMBLE_CHOICES = [(ENSEMBLE_LABELS.get(n, f"x{n}"), n) for n in ENSEMBLE.choices]
#: The tile size control's largest value and step (deblur itself takes any size from TILE_SIZE.minimum up).
TILE_MAX, TILE_STEP = 4096, 64
TWELVE_BIT_MAX = 4095  # 16-bit layers that never exceed this hold 12-bit (or fewer) bits of data


class DeblurWidget(ScrollingContainer):
    """Deblur an image layer into "<name> deblurred" (added, or updated in place on re-run)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from ..gan.model.device import available_devices

        self._viewer = viewer
        self._worker: GeneratorWorker | None = None
        self._cancel = threading.Event()
        self._progress: ActivityProgress | None = None
        self._image = ComboBox(
            label="image",
            choices=lambda _: image_choices(viewer),
            tooltip="the image layer to deblur; follows the layer you select in the layer list",
        )
        self._model = ComboBox(
            label="model",
            choices=self._model_choices,
            tooltip="the shipped model, a model trained in this session, or a .safetensors file",
        )
        self._model_file = FileEdit(
            label="model file",
            mode="r",
            filter="*.safetensors",
            visible=False,
            tooltip="a model file written by training or 'napari-deblurgan export'",
        )
        self._device = ComboBox(
            label="device",
            choices=[DEVICE.default, *available_devices()],
            value=DEVICE.default,
            tooltip=DEVICE.help,
        )
        self._tile = SpinBox(
            label="tile size",
            min=0,
            max=TILE_MAX,
            step=TILE_STEP,
            value=TILE_SIZE.default,
            tooltip=f"{TILE_SIZE.help}; 0 for {TILE_SIZE.none}",
        )
        self._tile.native.setKeyboardTracking(False)  # a typed size counts once complete (see _on_tile)
        self._ensemble = ComboBox(
            label="self-ensemble",
            choices=ENSEMBLE_CHOICES,
            value=ENSEMBLE.default,
            tooltip=ENSEMBLE.help,
        )
        self._refine = CheckBox(
            text="refine with the estimated blur (PSF)",
            value=REFINE.default,
            tooltip=REFINE.help,
        )
        self._strength = FloatSlider(
            label="strength",
            min=STRENGTH.minimum,
            max=STRENGTH.maximum,
            step=0.05,
            value=STRENGTH.default,
            tooltip=STRENGTH.help,
        )
        self._range = RadioButtons(
            label="intensities",
            choices=[DTYPE_RANGE, OWN_RANGE],
            value=DTYPE_RANGE,
            orientation="horizontal",
            visible=False,
            tooltip="what maps to black..white: 0..65535, or the layer's own min..max (12-bit data, dim images)",
        )
        self._hint = Label(label="", visible=False)
        self._hint.native.setWordWrap(True)
        self._frames = RadioButtons(
            label="frames",
            choices=[CURRENT, WHOLE],
            value=WHOLE,
            orientation="horizontal",
            visible=False,
            tooltip="deblur every frame of the stack, or only the frame the viewer shows (faster)",
        )
        self._beside = CheckBox(
            text="place the result beside the input",
            value=True,
            tooltip="show the result right of its input (compare side by side), or over it (toggle to compare)",
        )
        self._keep = CheckBox(
            text="keep previous results",
            value=False,
            tooltip="add each run as a new layer (numbered, its settings in the layer's metadata) instead of "
            "replacing the last result, so that settings can be compared",
        )
        self._run = PushButton(text="Deblur", tooltip="deblur the chosen image layer with these settings")
        self._stop = PushButton(text="Cancel", enabled=False, tooltip="stop deblurring at the next tile or frame")
        self._bar = ProgressBar(label="progress", min=0, max=1, value=0, tooltip="tiles or frames done")
        self._status = Label(label="")
        buttons = Container(widgets=[self._run, self._stop], layout="horizontal", labels=False)
        super().__init__(
            widgets=[
                self._image,
                self._model,
                self._model_file,
                self._device,
                self._tile,
                self._ensemble,
                self._refine,
                self._strength,
                self._range,
                self._hint,
                self._frames,
                self._beside,
                self._keep,
                buttons,
                self._bar,
                self._status,
            ],
        )
        self._image.changed.connect(self._on_image)
        self._tile.changed.connect(self._on_tile)
        self._model.changed.connect(lambda value: setattr(self._model_file, "visible", value == FILE))
        self._beside.changed.connect(lambda beside: place_results(viewer, beside))
        self._run.changed.connect(self.start)
        self._stop.changed.connect(self.cancel)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved):
            event.connect(self._image.reset_choices)
        viewer.layers.selection.events.active.connect(self._follow_active)
        refresh_models = self._model.reset_choices
        trained_models.changed.connect(refresh_models)
        self.native.destroyed.connect(lambda *_: trained_models.changed.disconnect(refresh_models))
        self._on_image(self._image.value)

    @property
    def worker(self) -> GeneratorWorker | None:
        """The running (or last) deblur job."""
        return self._worker

    @staticmethod
    def _model_choices(_: ComboBox) -> list[tuple[str, str]]:
        from ..gan.model.weights import default_model_path

        default = "shipped default" + ("" if default_model_path().is_file() else " (not installed)")
        trained = [(f"trained: {name}", str(path)) for name, path in trained_models.items()]
        return [(default, DEFAULT), *trained, ("model file…", FILE)]

    def _follow_active(self, event: Event) -> None:
        """Choose the layer the user selects (or just opened), unless it is one of this plugin's results."""
        from napari.layers import Image

        layer = event.value
        if isinstance(layer, Image) and not is_ours(layer):
            self._image.reset_choices()  # the layer may be inserted a moment ago
            if layer in self._image.choices:
                self._image.value = layer

    def _on_image(self, layer: Image | None) -> None:
        self._frames.visible = layer is not None and stack_ndim(layer) > 0
        sixteen_bit = layer is not None and _is_16_bit(layer) and not layer.multiscale
        self._range.visible = sixteen_bit
        self._range.value = DTYPE_RANGE  # chosen again for every layer
        self._hint.visible = False
        if not sixteen_bit:
            return
        if isinstance(layer.data, np.ndarray):
            self._on_peak(layer, first_frame_peak(layer))
        else:  # lazy (dask, zarr: read or computed on access): read in a thread, never on the GUI thread
            create_worker(first_frame_peak, layer, _connect={"returned": partial(self._on_peak, layer)})

    def _on_peak(self, layer: Image, peak: int) -> None:
        """Choose the layer's own range where its first frame stays within 12 bits (still that layer, and no
        job started meanwhile with the choice shown before)."""
        running = self._worker is not None and self._worker.is_running
        if self._image.value is layer and peak <= TWELVE_BIT_MAX and not running:
            self._range.value = OWN_RANGE
            self._hint.value = f"values reach only {peak} (12-bit?): own min..max chosen"
            self._hint.visible = True

    def _on_tile(self, size: int) -> None:
        """0 is whole frames; a size between 0 and the smallest tile becomes the smallest tile."""
        if 0 < size < TILE_SIZE.minimum:
            self._tile.value = TILE_SIZE.minimum

    def _model_path(self) -> Path | None:
        if self._model.value == DEFAULT:
            return None
        if self._model.value == FILE:
            path = Path(self._model_file.value)
            if not path.is_file():
                raise ValueError("Choose a model file (.safetensors) first")
            return path
        return Path(self._model.value)

    def start(self) -> None:
        """Deblur the chosen layer (or its current frame) in a thread worker."""
        layer: Image | None = self._image.value
        if layer is None:
            show_info("Open an image layer to deblur first")
            return
        if layer.multiscale:
            show_error(f"{layer.name} is multiscale (a pyramid); deblurring supports single-scale images only")
            return
        try:
            model = self._model_path()
        except ValueError as exc:
            show_error(str(exc))
            return
        frame = current_frame(self._viewer, layer) if stack_ndim(layer) and self._frames.value == CURRENT else None
        data = layer.data if frame is None else layer.data[frame]
        self._cancel = threading.Event()
        self._set_running(True, f"deblurring {layer.name}…")
        self._progress = ActivityProgress(total=0, desc=f"deblurring {layer.name}")
        settings = self._settings()
        self._worker = create_worker(
            deblur_job,
            data,
            model,
            self._cancel,
            device=self._device.value,
            rgb=layer.rgb,
            tile_size=self._tile.value or None,
            ensemble=self._ensemble.value,
            refine=self._refine.value,
            strength=self._strength.value,
            own_range_of=layer.data if _is_16_bit(layer) and self._range.value == OWN_RANGE else None,
            _connect={
                "yielded": self._on_progress,
                "returned": partial(self._on_result, layer, frame, settings),
                "errored": partial(self._on_error, layer.name),
                "aborted": self._on_cancelled,
                "finished": self._on_finished,
            },
        )
        # napari aborts the worker when its window closes: the helper thread that deblurs stops too
        self._worker.aborted.connect(self._cancel.set, Qt.ConnectionType.DirectConnection)

    def on_undocked(self) -> None:
        """Closing the panel cancels its job, whose result would land with no panel to say so."""
        self.cancel()

    def cancel(self) -> None:
        """Stop the running deblur at its next step (tile or PSF refinement)."""
        if self._worker is not None and self._worker.is_running:
            self._worker.quit()
            self._cancel.set()
            self._status.value = "cancelling…"

    def _settings(self) -> str:
        """The chosen settings in words, kept in each result's metadata."""
        model = self._model.current_choice if self._model.value != FILE else Path(self._model_file.value).name
        refine = "refined" if self._refine.value else "not refined"
        return f"{model}, strength {self._strength.value:.2f}, ensemble x{self._ensemble.value}, {refine}"

    def _on_finished(self) -> None:
        if self._cancel.is_set():  # cancelled as the job ended: its result is dropped, unannounced
            self._on_cancelled()
        self._set_running(False)
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def _set_running(self, running: bool, message: str | None = None) -> None:
        self._run.enabled, self._stop.enabled = not running, running
        if running:
            self._bar.value = 0
        if message is not None:
            self._status.value = message

    def _on_progress(self, progress: tuple[int, int, str]) -> None:
        done, total, unit = progress
        self._bar.max, self._bar.value = total, done
        self._status.value = f"{unit} {done} of {total}"
        if self._progress is not None:
            self._progress.update(done, total)

    def _on_cancelled(self) -> None:
        self._bar.value = 0
        self._status.value = "cancelled"

    def _on_result(self, source: Image, frame: tuple[int, ...] | None, settings: str, result: np.ndarray) -> None:
        layer = show_result(self._viewer, source, result, frame, self._beside.value, self._keep.value, settings)
        only = f" (frame {frame[0] if len(frame) == 1 else frame} only)" if frame else ""
        self._status.value = f"done: {layer.name}{only}"

    def _on_error(self, name: str, exc: Exception) -> None:
        self._status.value = "failed"
        show_error(f"Deblurring {name} failed: {exc}")


def first_frame_peak(layer: Image) -> int:
    """The highest value of a layer's first frame (a stack is judged by it: scanning it all could take long)."""
    data = np.asarray(layer.data[(0,) * stack_ndim(layer)])
    return int(data.max()) if data.size else 0


def _is_16_bit(layer: Image) -> bool:
    """16-bit integer data, where 12-bit values often fill only a sixteenth of the dtype's range."""
    dtype = np.dtype(layer.dtype)
    return dtype.kind in "ui" and dtype.itemsize == 2
