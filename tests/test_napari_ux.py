"""What a napari user sees (issue 28): folders of mixed sizes, the widget following the selected layer,
12-bit data, scrolling docks, the training preview, stacks, new runs after Stop, tooltips, menus, kept
results. Each test drives a real viewer (under Xvfb via pytest-xvfb)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
import tifffile

from _helpers import deblur_widget

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from magicgui.widgets import Container, Label, ProgressBar

from napari_deblurgan._widgets import train as train_module
from napari_deblurgan._widgets.deblur import DeblurWidget
from napari_deblurgan._widgets.train import TrainWidget

PLUGIN = "napari-deblurgan"
TIMEOUT = 60_000  # ms; the machine may be busy
README = Path(__file__).resolve().parents[1] / "README.md"


def _run(qtbot: Any, widget: DeblurWidget) -> None:
    widget._run.clicked.emit()
    qtbot.waitUntil(lambda: widget._run.enabled, timeout=TIMEOUT)


def _pair(root: Path, name: str, blurred: np.ndarray, sharp: np.ndarray) -> None:
    for sub, image in (("A", blurred), ("B", sharp)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(root / sub / name, image)


def test_a_folder_of_several_sizes_opens_consistently_and_every_frame_shows(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", warnings.append)
    root = tmp_path / "mine"
    for i in range(3):
        _pair(root, f"big{i}.tif", np.full((64, 64, 3), 10 * i, np.uint8), np.full((64, 64, 3), 200, np.uint8))
    _pair(root, "chelsea.tif", np.full((30, 45, 3), 99, np.uint8), np.full((30, 45, 3), 200, np.uint8))
    _pair(root, "odd.tif", np.zeros((30, 45, 3), np.uint8), np.zeros((31, 45, 3), np.uint8))  # no pair
    viewer = make_napari_viewer()
    widget = DeblurWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.open(root, plugin=PLUGIN)
    names = ["mine sharp 64x64", "mine blurred 64x64", "mine sharp 30x45", "mine blurred 30x45"]
    assert [layer.name for layer in viewer.layers] == names
    assert widget._image.value is viewer.layers["mine blurred 30x45"]  # the docked widget took the opened layer
    assert len(warnings) == 1 and "odd.tif" in warnings[0]
    small = viewer.layers["mine blurred 30x45"]
    assert small.metadata["files"] == [str(root / "A" / "chelsea.tif")]
    assert small.translate[1] >= 64  # below the 64x64 stacks, not hidden under them
    for frame in (0, 1, 2, 0):  # moving the slider reads frames of each stack; nothing raises
        viewer.dims.set_point(0, frame)
        qtbot.wait(10)
    np.testing.assert_array_equal(np.asarray(viewer.layers["mine blurred 64x64"].data[2]), 20)
    assert viewer.window._qt_viewer.layers.model().rowCount() == 4  # the Qt layer list shows them all


def test_the_deblur_widget_follows_the_opened_and_the_selected_layer(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    widget = deblur_widget(viewer, tiny_model_path)
    viewer.open_sample(PLUGIN, "coffee")  # sharp first, then the blurred photo on top, selected
    assert widget._image.value is viewer.layers["coffee blurred"]
    viewer.layers.selection.active = viewer.layers["coffee sharp"]
    assert widget._image.value is viewer.layers["coffee sharp"]
    viewer.layers.selection.active = viewer.layers["coffee blurred"]
    _run(qtbot, widget)
    assert viewer.layers.selection.active is viewer.layers["coffee blurred deblurred"]
    assert widget._image.value is viewer.layers["coffee blurred"]  # a result never becomes the input by itself


def test_12_bit_data_is_mapped_by_its_own_range_and_gets_sharper(make_napari_viewer, qtbot) -> None:
    from napari_deblurgan.gan.data.blur import blur_image, motion_kernels

    sharp = np.round(skimage.data.camera()[96:352, 128:384] / 255 * 4095).astype(np.uint16)
    kernel = motion_kernels(np.random.default_rng(7), 1, (15, 25))[0]
    blurred = np.round(blur_image(sharp / 4095, kernel) * 4095).astype(np.uint16)
    viewer = make_napari_viewer()
    widget = DeblurWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.add_image(np.full((8, 8), 60000, np.uint16), name="full 16-bit")
    assert widget._range.value == "16-bit range" and widget._hint.native.isHidden()
    viewer.add_image(blurred, name="scan")
    assert widget._range.value == "own min..max"
    assert not widget._hint.native.isHidden() and "12-bit" in widget._hint.value

    def psnr(image: np.ndarray) -> float:
        return float(10 * np.log10(4095**2 / np.mean((image.astype(float) - sharp) ** 2)))

    _run(qtbot, widget)  # the shipped model, every default
    gain = psnr(viewer.layers["scan deblurred"].data) - psnr(blurred)
    assert gain > 3, gain  # deblur(value_range="auto") gains +5.01 dB on this crop; over 0..65535, +1.05


def test_both_docks_scroll_on_a_1366x768_screen(make_napari_viewer, qtbot) -> None:
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1366, 700)
    docks = [viewer.window.add_plugin_dock_widget(PLUGIN, name)[1] for name in ("Deblur", "Train deblurring model")]
    qtbot.wait(100)
    assert window.height() <= 768  # the window did not grow off the screen
    for widget in docks:
        area = widget.root_native_widget
        assert isinstance(area, QScrollArea)
        button = widget._run if isinstance(widget, DeblurWidget) else widget._start
        area.ensureWidgetVisible(button.native)
        qtbot.wait(10)
        top_left = button.native.mapTo(area.viewport(), button.native.rect().topLeft())
        assert 0 <= top_left.y() <= area.viewport().height() - button.native.height()  # reachable
    assert docks[1].root_native_widget.verticalScrollBar().maximum() > 0  # the tall one does scroll
    for widget in docks:  # never clipped at the side: the scroll area is as wide as its controls
        assert widget.root_native_widget.viewport().width() >= widget.inner.minimumSizeHint().width()


def _layers_widget(viewer: Any, out: Path, steps: int) -> TrainWidget:
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._source.value = "open layers"
    widget._blurred.value, widget._sharp.value = viewer.layers["blurred"], viewer.layers["sharp"]
    widget._width.value, widget._blocks.value = 8, 1
    widget._steps.value, widget._batch.value, widget._crop.value = steps, 2, 32
    widget._content.value, widget._adv.value = "l1", 0.0
    widget._preview_every.value = 2
    widget._device.value = "cpu"
    widget._out.value = out
    return widget


def test_training_preview_stop_and_a_new_run_in_a_fresh_folder(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(train_module, "show_error", shown.append)
    viewer = make_napari_viewer()
    sharp = np.random.default_rng(5).integers(0, 255, (2, 48, 48, 3), dtype=np.uint8)
    viewer.add_image(sharp, name="sharp", rgb=True)
    viewer.add_image(sharp // 2, name="blurred", rgb=True)
    widget = _layers_widget(viewer, tmp_path / "mine", steps=500)
    assert widget.plot.axes[0].get_ylim() == (0, 1) and widget.plot.waiting.get_visible()  # sensible when empty
    assert widget.plot.axes[1].get_xlim() == (0, 2000)  # the default run's steps, before the fields changed

    activity: list[str] = []

    def stop_at_4(event: Any) -> None:
        from napari.utils import progress

        activity.extend(bar.desc for bar in progress._all_instances)
        if event.step == 4:
            widget._stop.clicked.emit()

    widget._start.clicked.emit()
    assert widget.plot.axes[0].get_xlim() == (0, 500)  # the run's steps from the start
    widget.worker.yielded.connect(stop_at_4)
    qtbot.waitUntil(lambda: widget._start.enabled, timeout=TIMEOUT)
    assert "tick 'resume'" in widget._status.value and not shown
    assert widget.plot.axes[0].get_ylim()[1] < 1  # fitted to the losses
    assert "training mine" in activity  # napari's activity dock showed the run
    (preview,) = [layer for layer in viewer.layers if "preview" in layer.name]
    # Stop reaches the worker some steps after step 4 was shown (signals queue while it trains on, more
    # under load): the preview shows a step from 4 up to the one the run stopped and saved at
    shown_step = re.fullmatch(r"preview step (\d+): blurred \| output \| sharp \[mine\]", preview.name)
    stopped = re.match(r"stopped at step (\d+):", widget._status.value)
    assert shown_step and stopped and 4 <= int(shown_step.group(1)) <= int(stopped.group(1)) < 500, preview.name
    height, width, _ = preview.data.shape
    panel = (width - 2 * 8) // 3  # three validation crops, side by side, 8 px apart
    assert panel == height and preview.data[:, :panel].max() <= 128 < preview.data[:, -panel:].max()  # sharp//2
    assert preview.translate[0] >= 48  # below the data, not over it at (0, 0)

    widget._steps.value = 4
    widget._start.clicked.emit()  # no resume, same folder: a fresh numbered folder, no error
    qtbot.waitUntil(lambda: widget._start.enabled, timeout=TIMEOUT)
    assert not shown and Path(widget._out.value) == tmp_path / "mine-2"
    assert widget._status.value == "saved mine-2/generator.safetensors"
    assert (tmp_path / "mine-2" / "generator.safetensors").is_file()
    previews = [layer for layer in viewer.layers if "preview" in layer.name]
    assert previews == [preview] and preview.name == "preview step 4: blurred | output | sharp [mine-2]"  # in place


def test_steps_per_second_counts_from_the_runs_first_step(make_napari_viewer, monkeypatch) -> None:
    widget = TrainWidget(make_napari_viewer())
    clock = iter([100.0, 101.0, 102.0, 104.0])
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: next(clock))
    assert [widget._rate(step) for step in (500, 501, 502, 504)] == [  # resumed at 500: earlier steps left out
        "measuring speed…",
        "measuring speed…",
        "1.00 steps/s",
        "1.00 steps/s",
    ]


def test_a_stack_is_deblurred_whole_by_default_and_results_can_be_kept(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    stack = np.random.default_rng(3).integers(0, 255, (3, 40, 48), dtype=np.uint8)
    viewer.add_image(stack, name="movie")
    widget = deblur_widget(viewer, tiny_model_path)
    _run(qtbot, widget)
    first = viewer.layers["movie deblurred"]
    assert first.data.shape == stack.shape  # shows at every frame
    widget._keep.value, widget._strength.value = True, 0.5
    viewer.layers.selection.active = viewer.layers["movie"]
    _run(qtbot, widget)
    second = viewer.layers["movie deblurred 2"]
    assert viewer.layers["movie deblurred"] is first  # kept, not replaced
    assert second.translate[-1] == 2 * 48 and first.translate[-1] == 48  # side by side, in order
    assert "strength 0.50" in second.metadata["napari_deblurgan"]["settings"]
    assert "strength 1.00" in first.metadata["napari_deblurgan"]["settings"]
    assert not np.array_equal(first.data, second.data)
    widget._beside.value = False  # over the input again: both on it, to toggle
    assert first.translate[-1] == second.translate[-1] == 0


def _controls(container: Container) -> list[Any]:
    out = []
    for widget in container:
        if isinstance(widget, Container):
            out += _controls(widget)
        elif not isinstance(widget, Label):
            out.append(widget)
    return out


def test_every_control_and_button_has_a_tooltip(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    for widget in (DeblurWidget(viewer), TrainWidget(viewer)):
        missing = [w.label or w.text for w in _controls(widget) if not w.tooltip]
        assert not missing, missing
        assert any(isinstance(w, ProgressBar) for w in _controls(widget))


def test_menu_entries_read_as_the_readme_says(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    menus = {a.text().replace("&", ""): a.menu() for a in viewer.window._qt_window.menuBar().actions()}
    plugins = {a.text(): a.menu() for a in menus["Plugins"].actions() if a.menu()}
    entries = [a.text() for a in plugins["DeblurGAN"].actions()]
    assert entries == ["Deblur (DeblurGAN)", "Train deblurring model (DeblurGAN)"]  # napari adds the plugin name
    filters = {a.text(): a.menu() for a in menus["Layers"].actions() if a.menu()}["Filter"]
    assert "Deblur (DeblurGAN)" in [a.text() for a in filters.actions()]
    samples = {a.text(): a.menu() for a in menus["File"].actions() if a.menu()}["Open Sample"]
    sample_menu = {a.text(): a.menu() for a in samples.actions() if a.menu()}["DeblurGAN"]
    readme = README.read_text()
    for entry in entries:
        assert f"*Plugins > DeblurGAN > {entry}*" in readme
    assert "*Layers > Filter > Deblur (DeblurGAN)*" in readme
    for action in sample_menu.actions():
        assert f"*File > Open Sample > DeblurGAN > {action.text()}*" in readme
