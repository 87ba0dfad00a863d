"""The training widget: data from a folder or two open layers, live losses and preview, Start/Stop."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    RadioButtons,
    SpinBox,
)
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt

from ..gan.data.pairs import check_same_shape
from ..gan.model.generator import PRESETS, GeneratorConfig, preset
from ..gan.model.weights import default_model_path, model_config
from ..gan.training.losses import CONTENT_LOSSES
from ..gan.training.train import CHECKPOINT_NAME, MODEL_NAME, TrainConfig, Trainer, TrainEvent
from ._activity import ActivityProgress
from ._jobs import finish_aborted, run_job, train_job
from ._layers import image_choices, show_preview
from ._plot import LossPlot
from ._scroll import ScrollingContainer
from ._state import trained_models

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

FOLDER, LAYERS, SKIMAGE = "folder", "open layers", "scikit-image"
#: How a run trained on napari layers names its data in its recipe (the layers are not saved with it).
LAYERS_DATA = "napari layers"
FOLDER_KINDS = [("auto-detect", "auto"), ("pairs: A/B or GOPRO", "pairs"), ("sharp images (blur synthesised)", "sharp")]
SYNTHESES = [("one kernel per image", "kernel"), ("realistic: camera turns, moving objects, zoom", "realistic")]
RANDOM, SHIPPED, MODEL_FILE = "random", "shipped", "file"
STARTS = [("random weights", RANDOM), ("the shipped default model", SHIPPED), ("a model file", MODEL_FILE)]


def default_run_dir() -> Path:
    """A new folder for a run, named by the time: ~/napari-deblurgan/runs/run-YYYYmmdd-HHMMSS[-N]."""
    base = Path.home() / "napari-deblurgan" / "runs" / time.strftime("run-%Y%m%d-%H%M%S")
    candidates = [base] + [base.with_name(f"{base.name}-{n}") for n in range(2, 1000)]
    return next(p for p in candidates if not p.exists())


def next_free_dir(run_dir: Path) -> Path:
    """A new sibling of ``run_dir`` for another run: "mine" -> "mine-2", "mine-2" -> "mine-3" (a time stamp's
    digits are kept: "run-20261204-121400" -> "run-20261204-121400-2")."""
    match = re.fullmatch(r"(.+)-(\d{1,3})", run_dir.name)
    base, first = (match[1], int(match[2]) + 1) if match else (run_dir.name, 2)
    return next(p for n in range(first, first + 10_000) if not (p := run_dir.with_name(f"{base}-{n}")).exists())


def saved_metadata(run_dir: Path) -> dict[str, str]:
    """The metadata of a run's model file (its header, no weights loaded); {} where it has none (yet)."""
    from safetensors import SafetensorError

    from ..gan.model.weights import read_metadata

    try:
        return read_metadata(run_dir / MODEL_NAME)
    except (OSError, ValueError, SafetensorError):
        return {}


def saved_recipe(run_dir: Path) -> dict[str, Any]:
    """The recipe a run saved with its model; {} where the run has no model file (yet) or it holds none."""
    try:
        recipe = json.loads(saved_metadata(run_dir).get("recipe", "{}"))
    except ValueError:
        return {}
    return recipe if isinstance(recipe, dict) else {}


def _saved_step(run_dir: Path) -> int | None:
    """The step of a run's model (read from its header); None where it has none (yet)."""
    try:
        return int(saved_metadata(run_dir).get("step", ""))
    except ValueError:
        return None


class TrainWidget(ScrollingContainer):
    """Train (or fine-tune by resuming) a generator; the result becomes a model of the deblur widget."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from napari.utils.theme import get_theme

        from ..gan.model.device import available_devices

        self._viewer = viewer
        self._worker: GeneratorWorker | None = None
        self._stop_requested = threading.Event()
        self._run_dir = self._proposed_dir = default_run_dir()
        self._failed = False
        self._preview: Image | None = None
        self._progress: ActivityProgress | None = None
        self._first_step: tuple[float, int] | None = None  # (time, step) of the run's first step, for steps/s

        def layers(_: ComboBox) -> list[tuple[str, Image]]:
            return image_choices(viewer)

        self._source = RadioButtons(
            label="data",
            choices=[FOLDER, LAYERS, SKIMAGE],
            value=FOLDER,
            orientation="horizontal",
            tooltip="train on a folder, on two open layers (blurred and sharp), or on scikit-image's photos",
        )
        self._folder = FileEdit(
            label="data folder", mode="d", nullable=True, tooltip="an A/B folder, GOPRO_Large, or sharp images"
        )
        self._folder_kind = ComboBox(
            label="folder holds",
            choices=FOLDER_KINDS,
            tooltip="pairs of blurred and sharp images, or sharp images only (blur is then synthesised)",
        )
        self._synthesis = ComboBox(
            label="blur synthesis",
            choices=SYNTHESES,
            tooltip="how sharp images are blurred: one motion kernel for the whole image, or GOPRO-like blur "
            "that varies across the frame (camera rotation, moving objects, zoom) with highlights, noise and JPEG",
        )
        self._blurred = ComboBox(
            label="blurred layer", choices=layers, visible=False, tooltip="the blurred input of each pair"
        )
        self._sharp = ComboBox(
            label="sharp layer", choices=layers, visible=False, tooltip="the sharp ground truth, same shape"
        )
        self._start_from = ComboBox(
            label="start from", choices=STARTS, tooltip="fine-tune a trained model on your data, or train from scratch"
        )
        self._init_file = FileEdit(
            label="model file",
            mode="r",
            filter="*.safetensors",
            nullable=True,
            visible=False,
            tooltip="the model to fine-tune; its architecture is used",
        )
        self._preset = ComboBox(
            label="preset",
            choices=list(PRESETS),
            value="fast",
            tooltip="'fast': no normalisation, tiles seamlessly; 'paper': DeblurGAN's instance-norm generator",
        )
        self._width = SpinBox(label="width (ngf)", min=4, max=256, tooltip="generator channels; smaller trains faster")
        self._blocks = SpinBox(label="res blocks", min=0, max=32, tooltip="generator depth; fewer trains faster")
        self._steps = SpinBox(
            label="steps", min=1, max=10_000_000, value=2000, tooltip="training steps in all (raise it to extend a run)"
        )
        self._batch = SpinBox(label="batch size", min=1, max=256, value=4, tooltip="image crops per step")
        self._crop = SpinBox(
            label="crop size", min=32, max=2048, step=32, value=128, tooltip="side of each training crop, in pixels"
        )
        self._lr = FloatSpinBox(
            label="learning rate", min=1e-5, max=1e-1, step=1e-5, value=1e-4, tooltip="Adam's step size"
        )
        self._content = ComboBox(
            label="content loss",
            choices=list(CONTENT_LOSSES),
            value="charbonnier",
            tooltip="pixel loss of the output against the sharp image; 'perceptual' (the paper's) needs VGG19 "
            "ImageNet weights (fetched once when online)",
        )
        self._adv = FloatSpinBox(
            label="adversarial weight",
            min=0.0,
            max=100.0,
            step=0.01,
            value=0.0,
            tooltip="0 = content loss only (fastest); DeblurGAN uses a WGAN-GP critic",
        )
        self._preview_every = SpinBox(
            label="preview every",
            min=1,
            max=100_000,
            value=50,
            tooltip="steps between validations, which update the preview layer (blurred | output | sharp)",
        )
        self._out = FileEdit(
            label="output folder",
            mode="d",
            value=self._run_dir,
            nullable=True,
            tooltip="where the run's checkpoint and model go; a folder holding a run gets a new numbered sibling "
            "unless 'resume' is ticked",
        )
        self._resume = CheckBox(
            text="resume from the checkpoint in the output folder",
            tooltip="continues the saved run with its own recipe and data; only 'steps' (to extend it) and 'preview "
            "every' apply, and a run trained on layers needs its two layers chosen again",
        )
        self._device = ComboBox(
            label="device",
            choices=["auto", *available_devices()],
            tooltip="where training runs: auto picks CUDA, then Apple MPS, then the CPU",
        )
        self._start = PushButton(text="Start", tooltip="train in the background; the GUI stays usable")
        self._stop = PushButton(
            text="Stop", enabled=False, tooltip="stop after this step, saving a checkpoint that 'resume' continues"
        )
        self._bar = ProgressBar(label="progress", min=0, max=1, value=0, tooltip="steps done of 'steps'")
        self._status = Label(label="")
        buttons = Container(widgets=[self._start, self._stop], layout="horizontal", labels=False)
        super().__init__(
            widgets=[
                self._source,
                self._folder,
                self._folder_kind,
                self._synthesis,
                self._blurred,
                self._sharp,
                self._start_from,
                self._init_file,
                self._preset,
                self._width,
                self._blocks,
                self._steps,
                self._batch,
                self._crop,
                self._lr,
                self._content,
                self._adv,
                self._preview_every,
                self._out,
                self._resume,
                self._device,
                buttons,
                self._bar,
                self._status,
            ],
        )
        theme = get_theme(viewer.theme)
        self.plot = LossPlot(theme.background.as_hex(), theme.text.as_hex())
        self.add_native(self.plot)
        self.plot.reset(self._steps.value, adversarial=self._adv.value > 0)  # axes for the run the fields describe
        self._source.changed.connect(self._on_source)
        self._preset.changed.connect(self._on_preset)
        self._start_from.changed.connect(self._on_start_from)
        self._init_file.changed.connect(self._on_start_from)
        self._resume.changed.connect(self._on_resume)
        self._resume.changed.connect(self._show_saved_steps)
        self._out.changed.connect(self._show_saved_steps)
        self._start.changed.connect(self.start)
        self._stop.changed.connect(self.stop)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._blurred.reset_choices)
            event.connect(self._sharp.reset_choices)
        self._on_preset(self._preset.value)

    @property
    def worker(self) -> GeneratorWorker | None:
        """The running (or last) training job."""
        return self._worker

    def _on_source(self, source: str) -> None:
        self._folder.visible = self._folder_kind.visible = source == FOLDER
        self._blurred.visible = self._sharp.visible = source == LAYERS
        self._synthesis.visible = source != LAYERS

    def _on_preset(self, name: str) -> None:
        cfg = preset(name)
        self._width.value, self._blocks.value = cfg.ngf, cfg.n_blocks

    def _init_path(self) -> Path | None:
        """The model file training starts from; None for random weights (or no file chosen yet)."""
        if self._start_from.value == SHIPPED:
            return default_model_path()
        if self._start_from.value == MODEL_FILE and self._init_file.value is not None:
            return Path(self._init_file.value)
        return None

    def _init_config(self) -> GeneratorConfig | None:
        path = self._init_path()
        return None if path is None or not path.is_file() else model_config(path)  # its header: no weights read

    def _on_start_from(self, *_: object) -> None:
        """A model to start from fixes the architecture: show it, and lock the architecture fields."""
        self._init_file.visible = self._start_from.value == MODEL_FILE
        try:
            cfg = self._init_config()
        except ValueError as exc:
            show_error(str(exc))
            self._init_file.value, cfg = None, None
        if cfg is not None:
            self._preset.value = "paper" if cfg.norm != "none" else "fast"
            self._width.value, self._blocks.value = cfg.ngf, cfg.n_blocks
        self._on_resume(self._resume.value)

    def _on_resume(self, resume: bool) -> None:
        """Resuming continues the saved recipe: only the steps, preview, device and folder apply, and the
        layers of a run trained on layers (they are not saved with it: :meth:`_resumed_on_layers`)."""
        recipe = [self._folder, self._folder_kind, self._synthesis, self._start_from]
        recipe += [self._init_file, self._batch, self._crop, self._lr, self._content, self._adv]
        for widget in recipe:
            widget.enabled = not resume
        for widget in (self._preset, self._width, self._blocks):
            widget.enabled = not resume and self._init_path() is None

    def _show_saved_steps(self, *_: object) -> None:
        """With *resume* ticked, the steps the run to resume was set to train (not this widget's default)."""
        if self._resume.value and self._out.value is not None:
            steps = saved_recipe(Path(self._out.value)).get("steps")
            if isinstance(steps, int) and steps > 0:
                self._steps.value = steps

    def config(self) -> TrainConfig:
        """The training options the widget shows."""
        base = preset(self._preset.value)
        overrides = {"ngf": self._width.value, "n_blocks": self._blocks.value}
        init, init_cfg = self._init_path(), self._init_config()
        if init_cfg is not None:  # the model's own architecture, whatever preset it came from
            overrides = init_cfg.to_dict()
        data, mode = "skimage", "auto"
        if self._source.value == FOLDER:
            data, mode = str(self._folder.value), self._folder_kind.value
        return TrainConfig(
            data=data,
            data_mode=mode,
            synthesis=self._synthesis.value,
            preset=self._preset.value,
            generator={k: v for k, v in overrides.items() if getattr(base, k) != v},
            init=None if init is None else str(init),
            content_loss=self._content.value,
            adv_weight=self._adv.value,
            lr=self._lr.value,
            steps=self._steps.value,
            batch_size=self._batch.value,
            crop=self._crop.value,
            validate_every=self._preview_every.value,
            log_every=self._preview_every.value,
        )

    def _trainer_factory(self, cfg: TrainConfig, run_dir: Path) -> Callable[[], Trainer]:
        make = self._make_trainer(cfg, run_dir)
        if not self._resume.value:
            return make

        def resume() -> Trainer:
            from ..gan.io.checkpoint import remove_stale_temp_files

            for name in (CHECKPOINT_NAME, MODEL_NAME):  # temp files of a run killed while saving
                remove_stale_temp_files(run_dir / name)
            return make()

        return resume

    def _make_trainer(self, cfg: TrainConfig, run_dir: Path) -> Callable[[], Trainer]:
        device, resume = self._device.value, self._resume.value
        make = partial(Trainer, resume_overrides=("steps", "validate_every", "log_every"))
        if not (self._resumed_on_layers(run_dir) if resume else self._source.value == LAYERS):
            # no data workers: forking napari's process (Qt, its threads) from a thread worker risks deadlocks
            return partial(make, cfg, run_dir, device, resume, data_workers=0)
        blurred, sharp = self._blurred.value, self._sharp.value
        if blurred is None or sharp is None or blurred is sharp:
            raise ValueError("Choose two different image layers: the blurred one and its sharp ground truth")
        if blurred.rgb != sharp.rgb:
            raise ValueError(f"{blurred.name} and {sharp.name} must both be RGB or both grayscale")
        check_same_shape(blurred.data.shape, sharp.data.shape)
        for layer in (blurred, sharp):
            if layer.multiscale:
                raise ValueError(f"{layer.name} is a multiscale (pyramid) layer; train on a single-scale image")
        from dataclasses import replace

        cfg = replace(cfg, data=f"{LAYERS_DATA} {blurred.name!r} (blurred) and {sharp.name!r} (sharp)")
        blurred_data, sharp_data, rgb = blurred.data, sharp.data, blurred.rgb

        def make_on_layers() -> Trainer:  # runs in the worker: ArrayPairs reads whole (maybe lazy) stacks
            from ..gan.data.array_pairs import ArrayPairs

            pairs = ArrayPairs(blurred_data, sharp_data, cfg.crop, cfg.batch_size, cfg.seed, rgb)
            return make(cfg, run_dir, device, resume, source=pairs, val_pairs=pairs.validation_pairs())

        return make_on_layers

    def _resumed_on_layers(self, run_dir: Path) -> bool:
        """Whether the run to resume trained on napari layers, which must then be chosen again (ValueError
        if the source says otherwise); a run on a folder or scikit-image's images brings its own data."""
        if not saved_recipe(run_dir).get("data", "").startswith(LAYERS_DATA):
            return False
        if self._source.value != LAYERS:
            raise ValueError(
                f"The run in {run_dir} trained on napari layers: choose 'open layers' as the data and its blurred "
                "and sharp layers again, then Start"
            )
        return True

    def start(self) -> None:
        """Start training in a thread worker."""
        if self._out.value is None:  # None while empty (not ".", the working directory)
            show_error("Choose an output folder for the run first")
            return
        run_dir = Path(self._out.value)
        folder, resume = self._folder.value, self._resume.value  # a resumed run brings its own data and weights
        if not resume and self._source.value == FOLDER and (folder is None or not Path(folder).is_dir()):
            show_error("Choose the training data folder first")
            return
        if not resume and self._start_from.value == MODEL_FILE and self._init_file.value is None:
            show_error("Choose the model file to start from (a .safetensors file), or start from random weights")
            return
        if resume and not (run_dir / CHECKPOINT_NAME).is_file():
            show_error(f"{run_dir} holds no checkpoint to resume: choose the run's folder, or untick 'resume'")
            return
        done = _saved_step(run_dir) if resume else None
        if done is not None and self._steps.value <= done:
            show_error(f"{run_dir.name} is at step {done} already: set steps above {done} to train it further")
            return
        if not resume and (run_dir / CHECKPOINT_NAME).is_file():
            taken, run_dir = run_dir, next_free_dir(run_dir)
            self._out.value = run_dir
            show_info(f"{taken} holds a run: this one goes to {run_dir} (to continue that one, tick 'resume')")
        try:
            make_trainer = self._trainer_factory(self.config(), run_dir)
        except ValueError as exc:
            show_error(str(exc))
            return
        self._stop_requested = threading.Event()
        self._run_dir, self._failed = run_dir, False
        adversarial = float(saved_recipe(run_dir).get("adv_weight", 0)) if resume else self._adv.value
        self.plot.reset(self._steps.value, adversarial=adversarial > 0)
        self._start.enabled, self._stop.enabled = False, True
        self._bar.value, self._status.value = 0, "preparing data and networks…"
        self._first_step = None
        self._progress = ActivityProgress(total=self._steps.value, desc=f"training {run_dir.name}")
        job = train_job(make_trainer, self._stop_requested)
        self._worker = create_worker(
            run_job,
            job,
            _connect={
                "yielded": self._on_step,
                "returned": self._on_done,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        # napari aborts its workers when its window closes: the run then saves, as after Stop
        abort = partial(finish_aborted, job, self._stop_requested)
        self._worker.aborted.connect(abort, Qt.ConnectionType.DirectConnection)

    def on_undocked(self) -> None:
        """Closing the panel stops its run, saved (else it would train on with no way to stop it)."""
        if self._worker is not None and self._worker.is_running:
            self.stop()
            show_info(f"The training panel was closed: {self._run_dir.name} stops after this step, saved")

    def stop(self) -> None:
        """End training after the current step, saving a checkpoint and the model."""
        self._stop_requested.set()
        self._stop.enabled = False
        self._status.value = "stopping after this step…"

    def _on_step(self, event: TrainEvent) -> None:
        self._bar.max, self._bar.value = event.total_steps, event.step
        if event.losses:
            self.plot.add(event.step, event.losses)
            losses = ", ".join(f"{k} {v:.4g}" for k, v in event.losses.items())
            self._status.value = f"step {event.step}/{event.total_steps}: {losses} ({self._rate(event.step)})"
        if event.preview is not None:
            self._preview = show_preview(self._viewer, self._preview, event.preview, self._run_dir.name, event.step)
        if event.checkpoint is not None:
            trained_models.add(self._run_dir.name, self._run_dir / MODEL_NAME)
        if self._progress is not None:
            self._progress.update(event.step, event.total_steps)

    def _rate(self, step: int) -> str:
        """Steps per second since this run's first step in this session (a resumed run's earlier steps, and
        the first step's warm-up, do not count)."""
        now = time.perf_counter()
        if self._first_step is None:
            self._first_step = (now, step)
        start, first = self._first_step
        if step - first < 2:
            return "measuring speed…"
        return f"{(step - first) / (now - start):.2f} steps/s"

    def _on_done(self, model: Path | None) -> None:
        if model is None:
            self._status.value = "stopped before the first step: nothing saved"
            return
        trained_models.add(self._run_dir.name, model)
        self._status.value = f"saved {model.parent.name}/{model.name}"
        self._status.tooltip = str(model)
        show_info(f"Model saved to {model}; choose 'trained: {self._run_dir.name}' in the deblur widget")

    def _on_error(self, exc: Exception) -> None:
        self._status.value = "failed"
        self._failed = True
        show_error(f"Training failed: {exc}")

    def _on_finished(self) -> None:
        self._start.enabled, self._stop.enabled = True, False
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        finished = not (self._stop_requested.is_set() or self._failed)  # a stopped or failed run stays, to resume
        if not finished and self._status.value.startswith("saved"):
            self._status.value = f"stopped at step {self._bar.value}: tick 'resume' and Start to continue it"
        if finished and self._out.value is not None and Path(self._out.value) == self._proposed_dir:
            self._proposed_dir = default_run_dir()  # the next Start makes a new run, not a clash with this one
            self._out.value = self._proposed_dir
