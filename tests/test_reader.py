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
    assert len(reads) == 2  # the first frame of each stack, for shape and dtype
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


def test_a_frame_of_another_size_is_named_when_read(tmp_path: Path) -> None:
    _write(tmp_path / "p" / "A", ["a.tif"], np.zeros((4, 4), np.uint8))
    _write(tmp_path / "p" / "A", ["b.tif"], np.zeros((5, 5), np.uint8))
    _write(tmp_path / "p" / "B", ["a.tif", "b.tif"], np.zeros((4, 4), np.uint8))
    blurred = _read(tmp_path / "p")["p blurred"][0]
    with pytest.raises(ValueError, match="b.tif"):
        np.asarray(blurred)


def test_a_frame_of_another_bit_depth_is_named_not_wrapped_around(tmp_path: Path) -> None:
    _write(tmp_path / "p" / "A", ["a.tif"], np.full((4, 4), 200, np.uint8))
    _write(tmp_path / "p" / "A", ["b.tif"], np.full((4, 4), 60000, np.uint16))
    _write(tmp_path / "p" / "B", ["a.tif", "b.tif"], np.zeros((4, 4), np.uint8))
    blurred = _read(tmp_path / "p")["p blurred"][0]
    with pytest.raises(ValueError, match=r"b.tif is uint16, but the first frame of its stack is uint8"):
        np.asarray(blurred)
