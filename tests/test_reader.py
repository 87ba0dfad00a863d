"""The folder reader: A/B and GOPRO layouts open as lazy stacks; anything else is declined quietly."""

from __future__ import annotations

import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_deblurgan import _reader
from napari_deblurgan._reader import get_reader


def _write(folder: Path, names: list[str], image: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        tifffile.imwrite(folder / name, image + i % 100)


def _read(path: Path) -> dict[str, tuple[object, dict]]:
    reader = get_reader(str(path))
    assert reader is not None
    return {meta["name"]: (data, meta) for data, meta, kind in reader(str(path)) if kind == "image"}


def test_ab_folder_opens_as_two_lazy_stacks_keeping_dtype(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    _write(root / "A", ["a.tif", "b.tif", "c.tif"], np.full((20, 24), 1000, np.uint16))
    _write(root / "B", ["a.tif", "b.tif", "c.tif"], np.full((20, 24), 2000, np.uint16))
    layers = _read(root)
    assert set(layers) == {"pairs blurred", "pairs sharp"}
    blurred, meta = layers["pairs blurred"]
    assert isinstance(blurred, da.Array) and blurred.shape == (3, 20, 24) and blurred.dtype == np.uint16
    assert meta["rgb"] is False
    np.testing.assert_array_equal(np.asarray(blurred[:, 0, 0]), [1000, 1001, 1002])
    np.testing.assert_array_equal(np.asarray(layers["pairs sharp"][0][2]), np.full((20, 24), 2002, np.uint16))


@pytest.mark.parametrize("level", ["scene", "split", "root"])
def test_gopro_layouts_open_rgb_stacks(tmp_path: Path, level: str) -> None:
    root = tmp_path / "GOPRO_Large"
    scene = root / "test" / "GOPR0001_00_00"
    rgb = np.zeros((16, 18, 3), np.uint8)
    for sub in ("blur", "blur_gamma", "sharp"):
        _write(scene / sub, ["000001.tif", "000002.tif"], rgb)
    path = {"scene": scene, "split": root / "test", "root": root}[level]
    layers = _read(path)
    data, meta = layers[f"{path.name} blurred"]
    assert data.shape == (2, 16, 18, 3) and data.dtype == np.uint8 and meta["rgb"] is True


def test_large_folder_opens_without_reading_every_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"{i:04d}.tif" for i in range(300)]
    _write(tmp_path / "big" / "A", names, np.zeros((8, 8), np.uint8))
    _write(tmp_path / "big" / "B", names, np.zeros((8, 8), np.uint8))
    reads: list[Path] = []
    original = _reader.read_image
    monkeypatch.setattr(_reader, "read_image", lambda p: reads.append(p) or original(p))
    start = time.perf_counter()
    layers = _read(tmp_path / "big")
    assert time.perf_counter() - start < 5
    assert reads == []  # shapes and dtypes come from the files' headers
    assert layers["big blurred"][0].shape == (300, 8, 8)


def test_other_folders_and_files_are_declined(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    tifffile.imwrite(tmp_path / "photos" / "x.tif", np.zeros((4, 4), np.uint8))
    assert get_reader(str(tmp_path / "photos")) is None
    assert get_reader(str(tmp_path / "photos" / "x.tif")) is None
    assert get_reader(str(tmp_path / "missing")) is None
    assert get_reader([str(tmp_path)]) is None


def test_mismatched_pairs_are_reported_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "pairs"
    _write(root / "A", ["a.tif", "only_blurred.tif"], np.zeros((4, 4), np.uint8))
    _write(root / "B", ["a.tif", "only_sharp.tif"], np.zeros((4, 4), np.uint8))
    warnings: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", warnings.append)
    assert get_reader(str(root)) is None
    assert len(warnings) == 1 and "only_blurred.tif" in warnings[0] and "only_sharp.tif" in warnings[0]


def test_frames_of_several_sizes_open_as_one_consistent_pair_of_stacks_per_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "p" / "A", ["a.tif", "c.tif"], np.zeros((4, 4), np.uint8))
    _write(tmp_path / "p" / "A", ["b.tif"], np.full((5, 6), 9, np.uint8))
    _write(tmp_path / "p" / "B", ["a.tif", "c.tif"], np.zeros((4, 4), np.uint8))
    _write(tmp_path / "p" / "B", ["b.tif"], np.zeros((5, 6), np.uint8))
    warnings: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", warnings.append)
    layers = _read(tmp_path / "p")
    assert list(layers) == ["p sharp 4x4", "p blurred 4x4", "p sharp 5x6", "p blurred 5x6"] and not warnings
    assert layers["p blurred 4x4"][0].shape == (2, 4, 4) and layers["p blurred 5x6"][0].shape == (1, 5, 6)
    np.testing.assert_array_equal(np.asarray(layers["p blurred 5x6"][0]), np.full((1, 5, 6), 9))
    assert layers["p blurred 4x4"][1]["metadata"]["files"] == [
        str(tmp_path / "p" / "A" / n) for n in ("a.tif", "c.tif")
    ]
    assert layers["p blurred 5x6"][1]["translate"][1] > 4  # below the 4x4 stacks, not over them


def test_a_pair_that_differs_in_size_is_left_out_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "p" / "A", ["a.tif", "b.tif"], np.zeros((4, 4), np.uint8))
    _write(tmp_path / "p" / "B", ["a.tif"], np.zeros((4, 4), np.uint8))
    _write(tmp_path / "p" / "B", ["b.tif"], np.zeros((6, 4), np.uint8))
    warnings: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", warnings.append)
    layers = _read(tmp_path / "p")
    assert layers["p blurred"][0].shape == (1, 4, 4) and layers["p sharp"][1]["metadata"]["files"][0].endswith("a.tif")
    assert len(warnings) == 1 and "Size mismatch" in warnings[0] and "b.tif" in warnings[0]


def test_frames_of_another_bit_depth_get_their_own_stack_not_wrapped_around(tmp_path: Path) -> None:
    _write(tmp_path / "p" / "A", ["a.tif"], np.full((4, 4), 200, np.uint8))
    _write(tmp_path / "p" / "A", ["b.tif"], np.full((4, 4), 60000, np.uint16))
    _write(tmp_path / "p" / "B", ["a.tif", "b.tif"], np.zeros((4, 4), np.uint8))
    layers = _read(tmp_path / "p")
    assert {name: data.dtype for name, (data, _) in layers.items() if "blurred" in name} == {
        "p blurred 4x4 uint8": np.uint8,
        "p blurred 4x4 uint16": np.uint16,
    }
    assert np.asarray(layers["p blurred 4x4 uint16"][0]).max() == 60000


def test_a_frame_changed_after_opening_shows_black_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "p" / "A", ["a.tif", "b.tif"], np.full((4, 4), 5, np.uint8))
    _write(tmp_path / "p" / "B", ["a.tif", "b.tif"], np.zeros((4, 4), np.uint8))
    blurred = _read(tmp_path / "p")["p blurred"][0]
    tifffile.imwrite(tmp_path / "p" / "A" / "b.tif", np.zeros((7, 7), np.uint8))
    warnings: list[str] = []
    monkeypatch.setattr(_reader, "_warn", warnings.append)
    np.testing.assert_array_equal(np.asarray(blurred[1]), np.zeros((4, 4)))
    assert len(warnings) == 1 and "b.tif" in warnings[0] and "(7, 7)" in warnings[0]
    np.testing.assert_array_equal(np.asarray(blurred[0]), np.full((4, 4), 5))


def test_a_folder_over_the_scan_limit_is_sized_by_its_first_pair_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "p" / "A", ["a.tif", "c.tif"], np.full((4, 4), 5, np.uint8))
    _write(tmp_path / "p" / "B", ["a.tif", "c.tif"], np.zeros((4, 4), np.uint8))
    _write(tmp_path / "p" / "A", ["b.tif"], np.full((5, 5), 5, np.uint8))
    _write(tmp_path / "p" / "B", ["b.tif"], np.zeros((5, 5), np.uint8))
    monkeypatch.setattr(_reader, "SCAN_LIMIT", 2)
    probed: list[Path] = []
    from napari_deblurgan.gan.io import images

    original = images.probe
    for module in (images, _reader):  # every header read, whichever helper reads it
        monkeypatch.setattr(module, "probe", lambda p, *a, **kw: probed.append(p) or original(p, *a, **kw))
    warnings: list[str] = []
    monkeypatch.setattr(_reader, "_warn", warnings.append)
    blurred = _read(tmp_path / "p")["p blurred"][0]
    assert blurred.shape == (3, 4, 4) and len(probed) == 2  # the first pair's headers only, once each
    np.testing.assert_array_equal(np.asarray(blurred[1]), np.zeros((4, 4)))  # b.tif, 5x5: black, not an error
    assert len(warnings) == 1 and "b.tif" in warnings[0] and "(5, 5)" in warnings[0] and "one image size" in warnings[0]
    np.testing.assert_array_equal(np.asarray(blurred[2]), np.full((4, 4), 6))  # c.tif (_write adds its index)


def test_gray_alpha_shows_its_gray_plane_and_other_channels_move_under_a_slider(tmp_path: Path) -> None:
    from PIL import Image

    gray_alpha = np.stack([np.arange(20 * 24, dtype=np.uint8).reshape(20, 24), np.full((20, 24), 255, np.uint8)], -1)
    for sub in ("A", "B"):
        (tmp_path / "la" / sub).mkdir(parents=True)
        Image.fromarray(gray_alpha, "LA").save(tmp_path / "la" / sub / "a.png")
    data, meta = _read(tmp_path / "la")["la blurred"]
    assert data.shape == (1, 20, 24) and meta["rgb"] is False and len(meta["translate"]) == 3
    np.testing.assert_array_equal(np.asarray(data[0]), gray_alpha[..., 0])
    channels = np.arange(20 * 24 * 2, dtype=np.uint16).reshape(20, 24, 2)
    for sub in ("A", "B"):
        (tmp_path / "two" / sub).mkdir(parents=True)
        tifffile.imwrite(tmp_path / "two" / sub / "a.tif", channels, photometric="minisblack", planarconfig="contig")
    data, meta = _read(tmp_path / "two")["two blurred"]
    assert data.shape == (1, 2, 20, 24) and meta["rgb"] is False and len(meta["translate"]) == 4
    np.testing.assert_array_equal(np.asarray(data[0]), np.moveaxis(channels, -1, 0))
