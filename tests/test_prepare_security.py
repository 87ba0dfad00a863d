"""Dataset preparation (synthesize, organize-gopro): paths taken from data folders never lead a write outside
the chosen output folder, and no write goes through a link to the file it points at. (The same for deblur's
outputs: test_cli.py; pickle refusal: test_weights.py, test_weights_bad_input.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _helpers import sha256_of
from napari_deblurgan.cli import main
from napari_deblurgan.gan.data.prepare import _safe_child, organize_gopro, synthesize_pairs
from napari_deblurgan.gan.io.images import read_image, write_image


@pytest.fixture
def sharp(tmp_path: Path) -> Path:
    folder = tmp_path / "sharp"
    folder.mkdir()
    for name in ("a.png", "a..png", "x...png", " spaced .png", "ünï.png", "-rf.png", "..png"):
        write_image(folder / name, np.random.default_rng(len(name)).integers(0, 255, (40, 40), dtype=np.uint8))
    return folder


def _gopro(root: Path) -> Path:
    for sub in ("blur", "sharp"):
        (root / "train" / "GOPR0001" / sub).mkdir(parents=True)
        write_image(root / "train" / "GOPR0001" / sub / "000001.png", np.zeros((8, 8, 3), np.uint8))
    return root


def _inside(root: Path) -> None:
    """Every entry under ``root`` (resolved, links included) stays inside it."""
    for path in root.rglob("*"):
        if not path.is_symlink():
            assert path.resolve().is_relative_to(root.resolve()), path


@pytest.mark.parametrize("name", ["..", ".", "", "../x.png", "a/../../x.png", "/etc/x.png", "sub/x.png", "x\0.png"])
def test_names_that_are_not_one_plain_component_are_refused(tmp_path, name) -> None:
    with pytest.raises(ValueError, match="not a plain file name"):
        _safe_child(tmp_path / "A", name)


def test_odd_but_plain_names_stay_inside(tmp_path, sharp) -> None:
    out = tmp_path / "pairs"
    assert synthesize_pairs(sharp, out) == 6  # "..png" is a hidden file: never an input
    assert sorted(p.name for p in (out / "A").iterdir()) == sorted(p.name for p in sharp.iterdir() if p.name != "..png")
    _inside(out)


@pytest.mark.parametrize("where", ["A", "B"])
@pytest.mark.parametrize("dangling", [False, True])
def test_synthesize_never_writes_through_a_planted_link(tmp_path, sharp, victim, where, dangling) -> None:
    out = tmp_path / "pairs"
    (out / where).mkdir(parents=True)
    target = victim.parent / "new.png" if dangling else victim
    (out / where / "a.png").symlink_to(target)
    before = sha256_of(victim)
    with pytest.raises(FileExistsError, match="symbolic link"):
        synthesize_pairs(sharp, out)
    assert sha256_of(victim) == before and not (victim.parent / "new.png").exists()
    assert sorted(p.name for p in out.rglob("*")) == [where, "a.png"]  # refused before writing anything


def test_a_linked_sub_folder_cannot_lead_outside(tmp_path, sharp, victim) -> None:
    out = tmp_path / "pairs"
    out.mkdir()
    (out / "A").symlink_to(victim.parent)
    with pytest.raises(ValueError, match="leads outside the output folder"):
        synthesize_pairs(sharp, out)
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.png"]


def test_organize_gopro_refuses_planted_links_and_linked_folders(tmp_path, victim) -> None:
    root = _gopro(tmp_path / "GOPRO_Large")
    out = tmp_path / "ab"
    (out / "B").mkdir(parents=True)
    (out / "B" / "GOPR0001_000001.png").symlink_to(victim)
    before = sha256_of(victim)
    assert main(["organize-gopro", str(root), str(out), "--copy", "--quiet"]) == 2
    assert sha256_of(victim) == before and not (out / "A").exists()
    (out / "B" / "GOPR0001_000001.png").unlink()
    (out / "B").rmdir()
    (out / "B").symlink_to(victim.parent)
    assert main(["organize-gopro", str(root), str(out), "--quiet"]) == 2
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.png"]


def test_organized_links_are_replaced_not_written_through(tmp_path) -> None:
    """organize-gopro links frames; a later write to a linked name replaces the link (temp file + rename)."""
    root = _gopro(tmp_path / "GOPRO_Large")
    out = tmp_path / "ab"
    organize_gopro(root, out)
    source = root / "train" / "GOPR0001" / "blur" / "000001.png"
    before = sha256_of(source)
    write_image(out / "A" / "GOPR0001_000001.png", np.full((8, 8, 3), 200, np.uint8))
    assert sha256_of(source) == before
    assert read_image(out / "A" / "GOPR0001_000001.png")[0, 0, 0] == 200
