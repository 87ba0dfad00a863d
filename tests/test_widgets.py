"""The deblur and training widgets driven in a real napari viewer (under Xvfb via pytest-xvfb)."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data

from _helpers import deblur_widget

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_deblurgan._widgets import deblur as deblur_module
from napari_deblurgan._widgets import train as train_module
from napari_deblurgan._widgets._state import trained_models
from napari_deblurgan._widgets.deblur import DeblurWidget
from napari_deblurgan._widgets.train import TrainWidget

TIMEOUT = 60_000  # ms; the machine may be busy


@pytest.fixture
def errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Messages the widgets show with napari's show_error."""
    shown: list[str] = []
    monkeypatch.setattr(deblur_module, "show_error", shown.append)
    monkeypatch.setattr(train_module, "show_error", shown.append)
    return shown


def _run(qtbot: Any, widget: DeblurWidget) -> None:
    """Click Run and wait until the job is over (the button comes back; waiting for the worker's
    finished signal would miss it when a tiny job ends before the wait connects)."""
    widget._run.clicked.emit()
    qtbot.waitUntil(lambda: widget._run.enabled, timeout=TIMEOUT)


CASES = {
    "gray": (np.random.default_rng(0).random((48, 64)).astype(np.float32), {"colormap": "magma"}),
    "rgb": (np.random.default_rng(1).integers(0, 255, (40, 56, 3), dtype=np.uint8), {}),
    "uint16": (np.random.default_rng(2).integers(0, 4000, (40, 44), dtype=np.uint16), {"contrast_limits": (0, 4000)}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_deblur_adds_result_with_the_source_settings(make_napari_viewer, qtbot, identity_model_path, case) -> None:
    data, style = CASES[case]
    viewer = make_napari_viewer()
    source = viewer.add_image(data, name="img", scale=(2, 3), translate=(5, 7), **style)
    widget = deblur_widget(viewer, identity_model_path)
    widget._beside.value = False
    _run(qtbot, widget)
    result = viewer.layers["img deblurred"]
    assert result.data.dtype == data.dtype and result.rgb == source.rgb
    np.testing.assert_allclose(result.data, data, atol=1e-6 if data.dtype.kind == "f" else 1)  # identity model
    np.testing.assert_array_equal(result.scale, source.scale)
    np.testing.assert_array_equal(result.translate, source.translate)
    assert tuple(result.contrast_limits) == tuple(source.contrast_limits)
    if not source.rgb:
        assert result.colormap.name == source.colormap.name
    widget._beside.value = True  # side by side: shifted right by the source's width
    assert result.translate[-1] == source.translate[-1] + data.shape[1] * source.scale[-1]


def test_a_result_keeps_the_sources_geometry_and_never_takes_over_a_users_layer(
    make_napari_viewer, qtbot, identity_model_path
) -> None:
    viewer = make_napari_viewer()
    data = np.random.default_rng(3).random((40, 48)).astype(np.float32)
    geometry = {"rotate": 30, "shear": [0.2], "affine": np.diag([1.5, 0.5, 1.0])}
    if "units" in inspect.signature(viewer.add_image).parameters:  # napari 0.6 and later
        geometry.update(units=("um", "um"), axis_labels=("y", "x"))
    source = viewer.add_image(data, name="cells", **geometry)
    mine = viewer.add_image(np.zeros((3, 5, 5), np.float32), name="cells deblurred")  # the user's own, 3-D
    widget = deblur_widget(viewer, identity_model_path)
    widget._image.value = source
    widget._beside.value = False
    _run(qtbot, widget)
    assert viewer.layers["cells deblurred"] is mine and not mine.data.any() and mine.metadata == {}
    result = viewer.layers["cells deblurred 2"]
    np.testing.assert_allclose(result.data, data, atol=1e-6)
    np.testing.assert_allclose(result.rotate, source.rotate)
    np.testing.assert_allclose(result.shear, source.shear)
    np.testing.assert_allclose(result.affine.affine_matrix, source.affine.affine_matrix)
    for key in ("units", "axis_labels"):
        if key in geometry:
            assert tuple(getattr(result, key)) == tuple(getattr(source, key))
    _run(qtbot, widget)  # again: its own result is updated, the user's layer still untouched
    assert viewer.layers["cells deblurred 2"] is result and len(viewer.layers) == 3 and not mine.data.any()


def test_stack_current_frame_then_whole_stack_updates_in_place(make_napari_viewer, qtbot, tiny_model_path) -> None:
    viewer = make_napari_viewer()
    stack = np.random.default_rng(3).integers(0, 255, (4, 40, 48), dtype=np.uint8)
    viewer.add_image(stack, name="movie")
    viewer.dims.set_point(0, 2)
    widget = deblur_widget(viewer, tiny_model_path)
    widget._beside.value = False
    assert widget._frames.value == "whole stack"  # the default: every frame
    widget._frames.value = "current frame"
    _run(qtbot, widget)
    frame = viewer.layers["movie deblurred"]
    assert frame.data.shape == (1, 40, 48) and frame.translate[0] == 2
    first = frame.data[0].copy()
    assert not np.array_equal(first, stack[2])  # the random model really changed it
    widget._frames.value = "whole stack"
    _run(qtbot, widget)
    whole = viewer.layers["movie deblurred"]
    assert whole.data.shape == stack.shape and whole.translate[0] == 0
    np.testing.assert_array_equal(whole.data[2], first)
    assert whole is frame  # re-run updated the layer in place
    assert [layer.name for layer in viewer.layers].count("movie deblurred") == 1


def test_a_renamed_result_is_kept_and_beside_follows_the_sources_rotation(
    make_napari_viewer, qtbot, identity_model_path
) -> None:
    viewer = make_napari_viewer()
    data = np.random.default_rng(5).random((40, 48)).astype(np.float32)
    source = viewer.add_image(data, name="img", rotate=30, scale=(2, 2))
    widget = deblur_widget(viewer, identity_model_path)
    widget._beside.value = True
    _run(qtbot, widget)
    first = viewer.layers["img deblurred"]
    # beside: its top-left corner is the source's top-right corner, along the source's turned x axis
    np.testing.assert_allclose(first.data_to_world((0, 0)), source.data_to_world((0, data.shape[1])), atol=1e-6)
    first.name = "img v1"  # the user keeps it by renaming it: the next run makes a new result
    first.data = np.zeros_like(data)
    _run(qtbot, widget)
    assert not viewer.layers["img v1"].data.any() and viewer.layers["img deblurred"] is not first


def test_self_ensemble_and_strength_choices_reach_the_model(make_napari_viewer, qtbot, tiny_model_path) -> None:
    from napari_deblurgan import deblur

    viewer = make_napari_viewer()
    image = np.random.default_rng(6).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    viewer.add_image(image, name="img")
    widget = deblur_widget(viewer, tiny_model_path)
    widget._ensemble.value = 8
    widget._strength.value = 0.6
    _run(qtbot, widget)
    expected = deblur(image, tiny_model_path, tile_size=widget._tile.value, ensemble=8, strength=0.6)
    np.testing.assert_array_equal(viewer.layers["img deblurred"].data, expected)
    assert not np.array_equal(expected, deblur(image, tiny_model_path, tile_size=widget._tile.value, ensemble=8))


def test_controls_start_at_deblurs_defaults_and_tile_size_0_is_whole_frames(
    make_napari_viewer, qtbot, identity_model_path, monkeypatch
) -> None:
    """The controls are built from deblur's options table: its defaults; 0 tiles means whole frames (as
    --tile-size 0), and a size below the smallest tile becomes the smallest."""
    import inspect

    from napari_deblurgan import deblur
    from napari_deblurgan.gan.restoration.options import TILE_SIZE

    passed: list[dict[str, Any]] = []

    def job(data: Any, model: Any, cancel: Any, own_range_of: Any = None, **options: Any) -> Any:
        passed.append(options)
        return np.asarray(data)
        yield

    monkeypatch.setattr(deblur_module, "deblur_job", job)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 48), np.uint8), name="img")
    widget = deblur_widget(viewer, identity_model_path)
    defaults = {name: p.default for name, p in inspect.signature(deblur).parameters.items()}
    controls = {"device": widget._device, "tile_size": widget._tile, "ensemble": widget._ensemble}
    controls |= {"refine": widget._refine, "strength": widget._strength}
    assert {name: c.value for name, c in controls.items()} == {name: defaults[name] for name in controls}
    assert all(c.tooltip for c in controls.values())
    widget._tile.value = 0
    _run(qtbot, widget)
    assert passed[-1]["tile_size"] is None
    widget._tile.value = 10
    assert widget._tile.value == TILE_SIZE.minimum
    _run(qtbot, widget)
    assert passed[-1]["tile_size"] == TILE_SIZE.minimum


def test_refine_checkbox_reaches_deblur(make_napari_viewer, qtbot, identity_model_path, ungated_refinement) -> None:
    from scipy import ndimage

    camera = skimage.data.camera()[60:316, 100:356].astype(np.float32)  # 160 px failed the PSF cross-check
    shaken = ndimage.uniform_filter1d(camera, 9, axis=1).round().astype(np.uint8)  # a 9 px blur
    viewer = make_napari_viewer()
    viewer.add_image(shaken, name="img")
    widget = deblur_widget(viewer, identity_model_path)
    assert widget._refine.value  # on by default, as in deblur()
    _run(qtbot, widget)
    assert np.abs(viewer.layers["img deblurred"].data.astype(int) - shaken).mean() > 1  # deconvolved
    widget._refine.value = False
    _run(qtbot, widget)
    np.testing.assert_array_equal(viewer.layers["img deblurred"].data, shaken)  # the identity model alone


def test_12_bit_data_can_use_its_own_range(make_napari_viewer, qtbot, tiny_model_path) -> None:
    from napari_deblurgan import deblur

    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(4).integers(0, 255, (40, 48), dtype=np.uint8), name="8bit")
    widget = deblur_widget(viewer, tiny_model_path)
    assert widget._range.native.isHidden()  # 8-bit: nothing to choose
    twelve_bit = np.random.default_rng(5).integers(100, 4000, (2, 40, 48), dtype=np.uint16)
    twelve_bit[1] //= 2  # a dimmer second frame: its own range differs from the stack's
    viewer.add_image(twelve_bit, name="scan")
    viewer.dims.set_point(0, 1)
    widget._image.value = viewer.layers["scan"]
    assert not widget._range.native.isHidden()
    assert widget._range.value == "own min..max"  # chosen by itself: the values stay within 12 bits
    widget._frames.value = "current frame"
    _run(qtbot, widget)  # the current frame, mapped by the whole stack's range like the whole stack would be
    result = viewer.layers["scan deblurred"].data[0]
    whole_stack = deblur(twelve_bit, tiny_model_path, tile_size=widget._tile.value, value_range="auto")
    np.testing.assert_array_equal(result, whole_stack[1])
    assert not np.array_equal(result, deblur(twelve_bit[1], tiny_model_path, tile_size=widget._tile.value))
    full = np.random.default_rng(6).integers(0, 65535, (40, 48), dtype=np.uint16)
    viewer.add_image(full, name="full 16-bit")
    widget._image.value = viewer.layers["full 16-bit"]  # the next layer gets its own choice, not the last one's
    assert widget._range.value == "16-bit range" and widget._hint.native.isHidden()
    import threading

    import dask
    import dask.array as da

    reads: list[bool] = []  # whether each read of the lazy frame was on the GUI thread
    frame = dask.delayed(lambda: reads.append(threading.current_thread() is threading.main_thread()) or twelve_bit[0])
    viewer.add_image(da.from_delayed(frame(), twelve_bit.shape[1:], np.uint16), name="lazy scan")
    widget._image.value = viewer.layers["lazy scan"]  # lazy: its range is guessed from a read in a thread
    qtbot.waitUntil(lambda: widget._range.value == "own min..max", timeout=TIMEOUT)
    assert "12-bit?" in widget._hint.value and False in reads  # read off the GUI thread


def test_a_lazy_dask_stack_is_deblurred_frame_by_frame(make_napari_viewer, qtbot, tiny_model_path) -> None:
    import dask.array as da

    from napari_deblurgan import deblur

    stack = np.random.default_rng(4).integers(0, 255, (3, 2, 40, 48, 3), dtype=np.uint8)
    viewer = make_napari_viewer()
    viewer.add_image(da.from_array(stack, chunks=(1, 1, 40, 48, 3)), name="lazy", rgb=True)
    widget = deblur_widget(viewer, tiny_model_path)
    widget._frames.value = "whole stack"
    steps: list[tuple[int, int, str]] = []
    widget._run.clicked.emit()
    widget.worker.yielded.connect(steps.append)
    qtbot.waitUntil(lambda: widget._run.enabled, timeout=TIMEOUT)
    assert steps[-1][2] == "frame 6/6: step" and steps[-1][0] == steps[-1][1]  # the 3 x 2 frames' steps
    result = viewer.layers["lazy deblurred"].data
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, deblur(stack, tiny_model_path, tile_size=widget._tile.value))


def test_large_frames_of_a_lazy_stack_are_refined_as_in_memory(
    make_napari_viewer, qtbot, identity_model_path, ungated_refinement
) -> None:
    """Frames over 3 tiles a side: deblurring a dask stack lazily splits them into blocks and keeps the
    generator's output; the widget deblurs each frame in memory, refined as any frame is."""
    import dask.array as da
    from scipy import ndimage

    from napari_deblurgan import deblur

    sharp = skimage.data.camera()[:200, :200].astype(np.float32)
    stack = np.stack([ndimage.uniform_filter1d(sharp, 9, axis=1)] * 2).round().astype(np.uint8)  # 9 px shake
    viewer = make_napari_viewer()
    viewer.add_image(da.from_array(stack, chunks=(1, 200, 200)), name="lazy")
    widget = deblur_widget(viewer, identity_model_path)
    widget._tile.value = 64
    widget._frames.value = "whole stack"
    _run(qtbot, widget)
    result = viewer.layers["lazy deblurred"].data
    np.testing.assert_array_equal(result, deblur(stack, identity_model_path, tile_size=64))
    assert np.abs(result.astype(int) - stack).mean() > 1  # refined: the identity model alone changes nothing


def test_cancel_stops_at_the_next_tile_and_ui_stays_responsive(make_napari_viewer, qtbot, tiny_model_path) -> None:
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(4).random((12, 512, 512)).astype(np.float32), name="big")
    widget = deblur_widget(viewer, tiny_model_path)
    widget._tile.value = 64
    widget._frames.value = "whole stack"
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    progress: list[tuple[int, int]] = []
    widget._run.clicked.emit()
    assert not widget._run.enabled and widget._stop.enabled
    widget.worker.yielded.connect(progress.append)
    qtbot.waitUntil(lambda: len(progress) >= 3, timeout=TIMEOUT)
    from napari.utils import progress as napari_progress

    (activity,) = [p for p in napari_progress._all_instances if p.desc == "deblurring big"]  # activity dock
    qtbot.waitUntil(lambda: activity.n >= 3, timeout=TIMEOUT)  # shown a few times a second
    assert activity.total == progress[-1][1]
    start = time.perf_counter()
    qtbot.wait(300)  # the deblur keeps running in its thread meanwhile
    assert len([t for t in ticks if t >= start]) >= 10  # the event loop kept ticking (~30 expected)
    with qtbot.waitSignal(widget.worker.aborted, timeout=TIMEOUT):
        widget._stop.clicked.emit()
    timer.stop()
    qtbot.waitUntil(lambda: widget._run.enabled, timeout=TIMEOUT)
    total = progress[-1][1]
    assert progress[-1][0] < total
    assert "big deblurred" not in viewer.layers
    assert widget._status.value == "cancelled" and widget._bar.value == 0  # the bar does not stay part-full
    assert not [p for p in napari_progress._all_instances if p.desc == "deblurring big"]  # closed


def _deblurring_a_long_stack(viewer: Any, qtbot: Any, model: Path) -> tuple[Any, DeblurWidget]:
    """A deblur of 40 frames of 512^2 in tiles of 64 (minutes), started and three steps in."""
    viewer.add_image(np.random.default_rng(4).random((40, 512, 512)).astype(np.float32), name="big")
    widget = deblur_widget(viewer, model)
    widget._tile.value = 64
    widget._frames.value = "whole stack"
    progress: list[tuple[int, int]] = []
    widget._run.clicked.emit()
    widget.worker.yielded.connect(progress.append)
    qtbot.waitUntil(lambda: len(progress) >= 3, timeout=TIMEOUT)
    return viewer, widget


def test_napari_aborting_a_deblur_stops_its_helper_thread(make_napari_viewer, qtbot, tiny_model_path) -> None:
    """napari aborts every worker when its window closes (``worker.quit``, not our Cancel button): the
    thread that deblurs must stop too, not run the whole stack on."""
    import threading

    viewer, widget = _deblurring_a_long_stack(make_napari_viewer(), qtbot, tiny_model_path)

    def helpers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "napari-deblurgan-deblur"]

    assert helpers()
    widget.worker.quit()
    qtbot.waitUntil(lambda: not helpers(), timeout=15_000)  # the stack takes minutes
    assert "big deblurred" not in viewer.layers


def test_closing_the_deblur_panel_cancels_its_job(make_napari_viewer, qtbot, tiny_model_path) -> None:
    viewer, widget = _deblurring_a_long_stack(make_napari_viewer(), qtbot, tiny_model_path)
    viewer.window.remove_dock_widget(widget.native)  # the panel's close button
    qtbot.waitUntil(lambda: not widget.worker.is_running, timeout=15_000)  # the stack takes minutes
    assert widget._cancel.is_set() and "big deblurred" not in viewer.layers


def test_the_activity_dock_bar_is_shown_a_few_times_a_second(make_napari_viewer, qtbot, monkeypatch) -> None:
    """napari's bar processes pending Qt events when set: set at every step it re-entered the step handler
    (RecursionError with fast steps). 1,000 steps at once show once, and closing shows the last count."""
    from napari.utils import progress as napari_progress

    from napari_deblurgan._widgets._activity import ActivityProgress

    make_napari_viewer()
    shown: list[int] = []
    update = napari_progress.update
    monkeypatch.setattr(napari_progress, "update", lambda self, n=1: shown.append(n) or update(self, n))
    activity = ActivityProgress(total=10, desc="steps")
    for step in range(1, 1001):
        activity.update(step, 1000)
    qtbot.waitUntil(lambda: bool(shown), timeout=TIMEOUT)
    (bar,) = [p for p in napari_progress._all_instances if p.desc == "steps"]
    assert shown == [1000] and bar.total == 1000
    activity.update(1000, 1200)
    activity.close()
    assert bar.total == 1200 and not [p for p in napari_progress._all_instances if p.desc == "steps"]


def test_cancel_as_the_job_ends_says_cancelled(make_napari_viewer, qtbot, tiny_model_path, monkeypatch) -> None:
    import threading

    from napari_deblurgan._widgets import deblur as deblur_module

    clicked = threading.Event()

    def job_that_ends_after_its_last_step(data, model, cancel, **options):
        yield (1, 1, "tile")
        clicked.wait(10)
        return data  # no yield after the click: the worker drops the result and reports no abort

    monkeypatch.setattr(deblur_module, "deblur_job", job_that_ends_after_its_last_step)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((16, 16), np.float32), name="img")
    widget = deblur_widget(viewer, tiny_model_path)
    widget._run.clicked.emit()
    qtbot.waitUntil(lambda: widget._bar.value == 1, timeout=TIMEOUT)
    widget._stop.clicked.emit()
    clicked.set()
    qtbot.waitUntil(lambda: widget._run.enabled, timeout=TIMEOUT)
    assert widget._status.value == "cancelled" and widget._bar.value == 0 and "img deblurred" not in viewer.layers


def test_errors_become_notifications(make_napari_viewer, qtbot, tmp_path, errors) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    widget = deblur_widget(viewer, bad)
    _run(qtbot, widget)
    assert len(errors) == 1 and "bad.safetensors" in errors[0] and "img" in errors[0]
    assert widget._run.enabled and "img deblurred" not in viewer.layers
    widget._model_file.value = tmp_path / "missing.safetensors"
    widget._run.clicked.emit()
    assert "model file" in errors[-1]


def _train_widget(viewer: Any, out: Path, steps: int) -> TrainWidget:
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._source.value = "open layers"
    widget._blurred.value = viewer.layers["blurred"]
    widget._sharp.value = viewer.layers["sharp"]
    widget._preset.value = "fast"
    widget._width.value, widget._blocks.value = 8, 1
    widget._steps.value, widget._batch.value, widget._crop.value = steps, 2, 32
    widget._content.value, widget._adv.value = "l1", 0.0  # a critic step takes seconds on a busy CPU
    widget._preview_every.value = 2
    widget._device.value = "cpu"
    widget._out.value = out
    return widget


def test_training_from_layers_stop_resume_and_use_in_deblur(make_napari_viewer, qtbot, tmp_path, errors) -> None:
    from napari_deblurgan.gan.model.weights import read_metadata

    viewer = make_napari_viewer()
    rng = np.random.default_rng(5)
    sharp = rng.integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    viewer.add_image(sharp, name="sharp", rgb=True)
    viewer.add_image((sharp // 2).astype(np.uint8), name="blurred", rgb=True)
    out = tmp_path / "run"
    widget = _train_widget(viewer, out, steps=500)
    steps: list[int] = []

    def on_step(event: Any) -> None:
        steps.append(event.step)
        if event.step == 3:
            widget._stop.clicked.emit()

    widget._start.clicked.emit()
    assert not widget._start.enabled and widget._stop.enabled
    widget.worker.yielded.connect(on_step)
    qtbot.waitUntil(lambda: widget._start.enabled, timeout=TIMEOUT)  # the widget saw the worker finish
    assert not errors
    assert widget._start.enabled and max(steps) < 500
    model = out / "generator.safetensors"
    assert (out / "checkpoint.pt").is_file() and model.is_file()
    stopped_at = int(read_metadata(model)["step"])
    assert stopped_at == max(steps) >= 3
    (preview,) = [layer for layer in viewer.layers if layer.name.endswith("blurred | output | sharp [run]")]
    assert preview.data.dtype == np.uint8 and preview.data.shape[1] > 3 * preview.data.shape[0]  # 3 panels
    assert len(widget.plot.curves["content"].get_xdata()) == len(steps) - 1  # the stop event has no losses
    widget.plot.add(99, {"content": 0.1, "adversarial": -1.0, "critic": 2.0, "gp": 0.5})
    assert widget.plot.curves["critic"].get_ydata()[-1] == 2.0
    assert ("run", model) in trained_models.items()

    widget._resume.value = True
    widget._steps.value = stopped_at + 2
    widget._source.value = "scikit-image"  # the run's layers are not saved with it: they must be chosen
    widget._start.clicked.emit()
    assert "trained on napari layers: choose 'open layers'" in errors.pop() and widget._start.enabled
    widget._source.value = "open layers"
    widget._preview_every.value = 1  # applies to the resumed run
    widget._start.clicked.emit()
    qtbot.waitUntil(lambda: widget._start.enabled, timeout=TIMEOUT)  # the widget saw the worker finish
    assert not errors
    assert int(read_metadata(model)["step"]) == stopped_at + 2
    assert json.loads(read_metadata(model)["recipe"])["validate_every"] == 1

    deblur_widget = DeblurWidget(viewer)
    viewer.window.add_dock_widget(deblur_widget)
    deblur_widget._model.value = str(model)  # offered as "trained: run"
    deblur_widget._image.value = viewer.layers["blurred"]
    deblur_widget._frames.value = "current frame"
    _run(qtbot, deblur_widget)
    assert viewer.layers["blurred deblurred"].data.shape == (1, 48, 48, 3)


def _interrupted_at_step_3(
    viewer: Any, qtbot: Any, out: Path, steps: int, interrupt: Any
) -> tuple[Any, TrainWidget, list[int]]:
    """Train on two layers of ``viewer`` into ``out``, call ``interrupt(widget)`` at step 3 and wait until the
    widget has seen its worker finish; the steps it saw."""
    sharp = np.random.default_rng(5).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    viewer.add_image(sharp, name="sharp", rgb=True)
    viewer.add_image((sharp // 2).astype(np.uint8), name="blurred", rgb=True)
    widget = _train_widget(viewer, out, steps=steps)
    seen: list[int] = []

    def on_step(event: Any) -> None:
        seen.append(event.step)
        if event.step == 3:
            interrupt(widget)

    widget._start.clicked.emit()
    widget.worker.yielded.connect(on_step)
    qtbot.waitUntil(lambda: widget._start.enabled, timeout=TIMEOUT)
    return viewer, widget, seen


def test_closing_napari_mid_training_saves_the_run(make_napari_viewer, qtbot, tmp_path, errors) -> None:
    """napari aborts its workers as its window closes: the run is saved as after Stop, not lost back to its
    last checkpoint (every 500 steps: all of a short run)."""
    from napari_deblurgan.gan.model.weights import read_metadata

    out = tmp_path / "run"
    _interrupted_at_step_3(make_napari_viewer(), qtbot, out, 500, lambda w: w.worker.quit())
    assert not errors and (out / "checkpoint.pt").is_file()  # quit(): what napari's window does on close
    assert 3 <= int(read_metadata(out / "generator.safetensors")["step"]) < 500


def test_closing_the_training_panel_stops_its_run_saved_and_resume_shows_its_steps(
    make_napari_viewer, qtbot, tmp_path, errors
) -> None:
    """A closed panel outlives its dock unseen: its run must not train on with no Stop button. Resuming then
    shows the run's own target steps, and a target it has reached already is refused, not a silent no-op."""
    viewer, out = make_napari_viewer(), tmp_path / "run"
    close_panel = lambda w: viewer.window.remove_dock_widget(w.native)  # noqa: E731  (its close button)
    viewer, _, steps = _interrupted_at_step_3(viewer, qtbot, out, 300, close_panel)
    assert not errors and (out / "checkpoint.pt").is_file() and max(steps) < 300
    reopened = _train_widget(viewer, out, steps=2000)
    reopened._resume.value = True
    assert reopened._steps.value == 300  # the run's target, not the widget's default
    reopened._steps.value = 3
    reopened._start.clicked.emit()
    assert f"at step {max(steps)} already" in errors.pop() and reopened.worker is None


def test_training_from_a_folder_checks_its_inputs(make_napari_viewer, qtbot, tmp_path, errors) -> None:
    import tifffile

    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._start.clicked.emit()  # the field is still empty: never the working directory
    widget._folder.value = tmp_path / "nothing-here"
    widget._start.clicked.emit()
    assert errors == ["Choose the training data folder first"] * 2 and widget.worker is None
    for sub in ("A", "B"):
        (tmp_path / "ab" / sub).mkdir(parents=True)
        tifffile.imwrite(tmp_path / "ab" / sub / "x.tif", np.zeros((40, 40, 3), np.uint8))
    tifffile.imwrite(tmp_path / "ab" / "A" / "y.tif", np.zeros((40, 40, 3), np.uint8))
    widget._folder.value = tmp_path / "ab"
    widget._out.value = None  # cleared: never the working directory
    widget._start.clicked.emit()
    assert errors[-1] == "Choose an output folder for the run first" and widget.worker is None
    widget._out.value = tmp_path / "out"
    widget._start.clicked.emit()
    qtbot.waitUntil(lambda: widget._start.enabled, timeout=TIMEOUT)  # the widget saw the worker finish
    assert "y.tif" in errors[-1] and widget._start.enabled


def test_training_on_sharp_photos_with_realistic_blur(make_napari_viewer, qtbot, tmp_path, errors) -> None:
    from PIL import Image
    from safetensors import safe_open

    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"{i}.png")
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._source.value = "open layers"  # pairs from layers need no synthesis: the choice hides
    assert widget._synthesis.native.isHidden()
    widget._source.value = "folder"
    assert not widget._synthesis.native.isHidden()
    widget._folder.value, widget._folder_kind.value = tmp_path / "photos", "sharp"
    widget._synthesis.value = "realistic"
    widget._width.value, widget._blocks.value, widget._crop.value, widget._batch.value = 8, 1, 32, 2
    widget._steps.value, widget._out.value = 2, tmp_path / "run"
    assert widget.config().synthesis == "realistic"
    widget._start.clicked.emit()
    qtbot.waitUntil(lambda: widget._start.enabled, timeout=TIMEOUT)
    assert not errors
    with safe_open(str(tmp_path / "run" / "generator.safetensors"), "pt") as fh:  # the run's own recipe
        recipe = json.loads(fh.metadata()["recipe"])
    assert recipe["synthesis"] == "realistic" and recipe["data"] == str(tmp_path / "photos")


def test_training_can_start_from_the_shipped_model_and_resume_locks_the_recipe(
    make_napari_viewer, tmp_path, errors, monkeypatch
) -> None:
    from napari_deblurgan.gan.model import weights
    from napari_deblurgan.gan.model.weights import default_model_path, load_generator

    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._preset.value = "paper"
    reads: list[str] = []
    load_file = weights.load_file
    monkeypatch.setattr(weights, "load_file", lambda path: reads.append(path) or load_file(path))
    widget._start_from.value = "shipped"  # fine-tune the default model: its architecture, locked
    assert not reads  # read from the file's header: no weights loaded on the GUI thread
    shipped = load_generator(default_model_path()).config
    assert (widget._width.value, widget._blocks.value) == (shipped.ngf, shipped.n_blocks)
    assert not widget._width.enabled and not widget._preset.enabled
    cfg = widget.config()
    assert cfg.init == str(default_model_path()) and cfg.generator_config() == shipped
    widget._start_from.value = "file"  # no file chosen yet
    assert not widget._init_file.native.isHidden() and widget._width.enabled
    widget._source.value = "scikit-image"
    widget._start.clicked.emit()
    widget._start_from.value = "random"
    assert widget.config().init is None

    widget._resume.value = True  # the saved recipe applies: its fields are locked, steps can grow
    assert not widget._lr.enabled and not widget._folder.enabled and widget._steps.enabled
    widget._resume.value = False
    assert widget._lr.enabled and widget._width.enabled
    assert errors[0].startswith("Choose the model file to start from")
    widget._source.value, widget._folder.value, widget._resume.value = "folder", None, True
    widget._out.value = tmp_path / "empty"
    widget._start.clicked.emit()  # the data folder is the saved run's: not asked for, but a checkpoint is
    assert "holds no checkpoint to resume" in errors[1] and widget.worker is None


def test_a_finished_run_in_the_proposed_folder_proposes_a_new_one(make_napari_viewer, monkeypatch, tmp_path, errors):
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    widget = TrainWidget(make_napari_viewer())
    first = Path(widget._out.value)
    first.mkdir(parents=True)  # the run wrote there
    widget._on_finished()
    assert Path(widget._out.value) != first and not Path(widget._out.value).exists()
    widget._out.value = tmp_path / "mine"  # a folder the user chose stays chosen
    widget._on_finished()
    assert Path(widget._out.value) == tmp_path / "mine"
    widget._out.value = proposed = widget._proposed_dir
    widget._stop_requested.set()  # a stopped run stays proposed, to be resumed
    widget._on_finished()
    assert Path(widget._out.value) == proposed
    widget._stop_requested.clear()
    widget._on_error(RuntimeError("out of memory"))  # so does a failed one: its checkpoints resume it
    widget._on_finished()
    assert Path(widget._out.value) == proposed


def _drain(job: Any) -> tuple[list[Any], Any]:
    events = []
    while True:
        try:
            events.append(next(job))
        except StopIteration as stop:
            return events, stop.value


def test_own_range_and_float_ranges_are_scanned_frame_by_frame_with_progress(tiny_model_path) -> None:
    import threading

    import dask.array as da

    from napari_deblurgan import deblur
    from napari_deblurgan._widgets._jobs import JobError, deblur_job
    from napari_deblurgan.gan.io.intensity import intensity_range

    twelve_bit = np.random.default_rng(6).integers(100, 4000, (4, 32, 40), dtype=np.uint16)
    lazy = da.from_array(twelve_bit, chunks=(1, 32, 40))
    job = deblur_job(lazy, tiny_model_path, threading.Event(), own_range_of=lazy, rgb=False, device="cpu")
    events, result = _drain(job)  # a worker can be cancelled at every one of these yields
    assert events[:4] == [(i, 4, "frame scanned") for i in range(1, 5)]
    assert [e for e in events[4:] if e[0] == e[1]] == [(2, 2, f"frame {i}/4: step") for i in range(1, 5)]
    expected = deblur(twelve_bit, tiny_model_path, value_range=intensity_range(twelve_bit))
    np.testing.assert_array_equal(result, expected)  # the same mapping as scanning the whole stack at once

    floats = da.from_array(np.random.default_rng(7).random((3, 32, 40)).astype(np.float32) * 5, chunks=(1, 32, 40))
    events, result = _drain(deblur_job(floats, tiny_model_path, threading.Event(), rgb=False, device="cpu"))
    assert [e[2] for e in events[:3]] == ["frame scanned"] * 3 and events[-1][2] == "frame 3/3: step"
    np.testing.assert_allclose(result, deblur(floats.compute(), tiny_model_path), atol=1e-5)
    broken = da.from_array(np.full((2, 32, 40), np.nan, np.float32), chunks=(1, 32, 40))
    with pytest.raises(JobError, match="NaN"):
        _drain(deblur_job(broken, tiny_model_path, threading.Event(), rgb=False, device="cpu"))


def test_training_in_napari_makes_batches_in_its_own_process(make_napari_viewer, tmp_path) -> None:
    from napari_deblurgan.gan.training.train import TrainConfig

    widget = TrainWidget(make_napari_viewer())
    for source in (train_module.FOLDER, train_module.SKIMAGE):
        widget._source.value = source
        make = widget._make_trainer(TrainConfig(), tmp_path / "run")
        assert make.keywords["data_workers"] == 0  # no fork of napari's process, even on a GPU


def test_the_loss_plot_of_a_long_run_keeps_a_bounded_number_of_evenly_spaced_points(qtbot) -> None:
    from napari_deblurgan._widgets._plot import MAX_POINTS, LossPlot

    plot = LossPlot()
    plot.reset(100_000)
    for step in range(1, 20_001):
        plot.add(step, {"content": 1 / step, "critic": 0.5})
    xs = np.asarray(plot.curves["content"].get_xdata())
    assert MAX_POINTS // 2 <= len(xs) <= MAX_POINTS and xs[-1] > 19_980
    assert len(set(np.diff(xs))) == 1  # evenly spaced
    assert len(plot.curves["critic"].get_xdata()) == len(xs) and not len(plot.curves["adversarial"].get_xdata())
    plot.reset(10)  # a new run starts with every step again
    plot.add(1, {"content": 0.3})
    assert list(plot.curves["content"].get_xdata()) == [1]
