"""Blurred/sharp file pairs: A/B folders, GOPRO_Large scenes and aligned A|B images, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_deblurgan.gan.data.pairs import PairingError, find_pairs, load_pair, pair_ab_folder, split_aligned
from napari_deblurgan.gan.io.images import write_image


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image)


def test_ab_pairs_match_by_name_and_sort(tmp_path: Path) -> None:
    for name in ("b.png", "a.png", "c.png"):
        _write(tmp_path / "A" / name, np.zeros((8, 8), np.uint8))
        _write(tmp_path / "B" / name, np.zeros((8, 8), np.uint8))
    pairs = pair_ab_folder(tmp_path)
    assert [a.name for a, _ in pairs] == ["a.png", "b.png", "c.png"]
    assert all(a.name == b.name for a, b in pairs)


def test_unpaired_files_are_listed_by_name(tmp_path: Path) -> None:
    _write(tmp_path / "A" / "x.png", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "A" / "only_blurred.png", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "B" / "x.png", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "B" / "only_sharp.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(PairingError, match=r"only in A: only_blurred.png; only in B: only_sharp.png"):
        pair_ab_folder(tmp_path)


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    _write(tmp_path / "A" / "x.png", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "B" / "x.png", np.zeros((8, 9), np.uint8))
    ((a, b),) = pair_ab_folder(tmp_path)
    with pytest.raises(PairingError, match="Size mismatch.*A/x.png.*B/x.png"):
        load_pair(a, b)


def test_gopro_layout_and_not_a_dataset(tmp_path: Path) -> None:
    for scene in ("GOPR0001_11_00", "GOPR0002_11_01"):
        for sub in ("blur", "blur_gamma", "sharp"):
            _write(tmp_path / "train" / scene / sub / "000001.png", np.zeros((8, 8, 3), np.uint8))
    pairs = find_pairs(tmp_path)
    assert len(pairs) == 2 and all(a.parent.name == "blur" and b.parent.name == "sharp" for a, b in pairs)
    assert all(a.parent.name == "blur_gamma" for a, _ in find_pairs(tmp_path / "train", "blur_gamma"))
    with pytest.raises(PairingError, match="no GOPRO scene"):
        find_pairs(tmp_path / "train" / "GOPR0001_11_00" / "sharp")


def test_aligned_ab_split() -> None:
    a, b = split_aligned(np.arange(2 * 6).reshape(2, 6))
    assert a.shape == b.shape == (2, 3) and a[0, 0] == 0 and b[0, 0] == 3
    with pytest.raises(ValueError, match="even width"):
        split_aligned(np.zeros((2, 5)))


def test_aligned_ab_images_load_as_pairs(tmp_path: Path) -> None:
    from napari_deblurgan.gan.data.pairs import aligned_pairs

    blurred, sharp = np.full((6, 5, 3), 10, np.uint8), np.full((6, 5, 3), 200, np.uint8)
    _write(tmp_path / "0001.png", np.concatenate([blurred, sharp], axis=1))
    ((a, b),) = aligned_pairs(tmp_path)
    x, y = load_pair(a, b)
    assert x.shape == y.shape == (6, 5, 3)
    assert np.allclose(x, 10 / 255) and np.allclose(y, 200 / 255)


def test_float_pairs_beyond_0_1_map_together_and_float_photos_load(tmp_path: Path) -> None:
    import tifffile

    from napari_deblurgan.gan.data.photo_pairs import load_photos

    sharp = np.linspace(0, 4000, 8 * 8, dtype=np.float32).reshape(8, 8)
    blurred = (sharp * 0.5 + 1000).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", blurred)
    tifffile.imwrite(tmp_path / "b.tif", sharp)
    x, y = load_pair(tmp_path / "a.tif", tmp_path / "b.tif")  # used to be all white (clipped to 1)
    np.testing.assert_allclose(y[..., 0], sharp / 4000, atol=1e-6)
    np.testing.assert_allclose(x[..., 0], blurred / 4000, atol=1e-6)  # the pair's one mapping
    (photos := tmp_path / "photos").mkdir()
    tifffile.imwrite(photos / "p.tif", np.stack([sharp] * 3, -1))  # used to raise "Invalid integer data type"
    (photo,) = load_photos(photos)
    assert photo.dtype == np.uint8 and photo.min() == 0 and photo.max() == 255


def test_validation_pairs_are_held_out_of_training() -> None:
    from napari_deblurgan.gan.data.pairs import split_holdout

    # an A/B folder of 3 videos' frames: one run from the middle, so only its two ends touch training
    pairs = [(Path(f"A/scene{s}_{i:03d}.png"), Path(f"B/scene{s}_{i:03d}.png")) for s in range(3) for i in range(30)]
    train, val = split_holdout(pairs)
    assert len(val) == 4 and not set(train) & set(val) and len(train) + len(val) == 90
    held = [pairs.index(p) for p in val]
    assert held == list(range(held[0], held[0] + 4))
    assert split_holdout(pairs[:1]) == (pairs[:1], pairs[:1])
    assert len(split_holdout(pairs[:3])[1]) == 1
    # GOPRO scenes (25 folders of 4 frames): whole scenes held out
    gopro = [(Path(f"s{s:02d}/blur/{i}.png"), Path(f"s{s:02d}/sharp/{i}.png")) for s in range(25) for i in range(4)]
    train, val = split_holdout(gopro)
    assert {b.parent for b, _ in val} == {Path("s10/blur")} and len(train) == 96
    # the same scenes flattened into one A/B folder by organize-gopro (SCENE_FRAME names): whole scenes still
    flat = [
        (Path(f"A/GOPR{s:04d}_00_{i:06d}.png"), Path(f"B/GOPR{s:04d}_00_{i:06d}.png")) for s, i in np.ndindex(25, 4)
    ]
    train, val = split_holdout(flat)
    assert {b.name[:11] for b, _ in val} == {"GOPR0010_00"} and len(train) == 96
    # names whose last part is no frame number are one folder's frames: one run, not every 20th frame
    named = [(Path(f"A/{i:06d}_blur.png"), Path(f"B/{i:06d}_blur.png")) for i in range(100)]
    held = [named.index(p) for p in split_holdout(named)[1]]
    assert held == list(range(held[0], held[0] + 5))
