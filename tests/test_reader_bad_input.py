"""The folder reader under bad input: it returns None (quietly, or with a warning naming the problem) or
layers, and never raises, hangs or modifies a file; checked on fixed cases and on random folder trees.

Complements test_reader.py (non-paired folders, files, missing paths, unpaired names, a frame of another size).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from hypothesis import event, given, settings
from hypothesis import strategies as st

from napari_deblurgan._reader import NO_LAYERS, get_reader


def _png(shape: tuple[int, ...]) -> bytes:
    return iio.imwrite("<bytes>", np.full(shape, 7, np.uint8), extension=".png")


def _tif(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.full(shape, 7, np.uint16))
    return buffer.getvalue()


CONTENT = {
    "png": _png((8, 8)),
    "png-9": _png((9, 8)),
    "rgb": _png((8, 8, 3)),
    "tif": _tif((8, 8)),
    "truncated": _png((8, 8))[:40],
    "empty": b"",
    "text": b"not an image",
}


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (SIGALRM; the tests run in the main thread)."""

    def fail(*_: object) -> None:
        raise TimeoutError(f"the reader took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                out[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def open_folder(path: Path) -> tuple[list | None, list[str]]:
    """What napari would get: None (declined) or the reader's layer data; and the warnings shown."""
    warnings: list[str] = []
    with mock.patch("napari.utils.notifications.show_warning", warnings.append), time_limit(10):
        reader = get_reader(str(path))
        layers = None if reader is None else reader(str(path))
    return layers, warnings


def _files(folder: Path, kinds: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, kind in kinds.items():
        (folder / name).write_bytes(CONTENT[kind])


# -- fixed cases ---------------------------------------------------------------------------------------------


def test_an_empty_folder_is_declined_quietly(tmp_path) -> None:
    assert open_folder(tmp_path) == (None, [])


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ({}, {}, "hold no images"),
        ({"notes.txt": "text", ".hidden.png": "png"}, {"data.csv": "text"}, "hold no images"),
        ({"x.png": "png"}, {"x.tif": "tif"}, "only in A: x.png; only in B: x.tif"),
    ],
    ids=["empty", "non-images", "unpaired-suffixes"],
)
def test_ab_folders_that_cannot_pair_warn_by_name(tmp_path, a, b, message) -> None:
    _files(tmp_path / "ab" / "A", a)
    _files(tmp_path / "ab" / "B", b)
    layers, warnings = open_folder(tmp_path / "ab")
    assert layers is None and len(warnings) == 1 and message in warnings[0]


@pytest.mark.parametrize("kind", ["truncated", "empty", "text"])
def test_an_unreadable_frame_is_left_out_by_name_and_the_rest_opens(tmp_path, kind) -> None:
    _files(tmp_path / "ab" / "A", {"a.png": kind, "b.png": "png"})
    _files(tmp_path / "ab" / "B", {"a.png": "png", "b.png": "png"})
    before = digest(tmp_path)
    layers, warnings = open_folder(tmp_path / "ab")
    assert [(meta["name"], data.shape) for data, meta, _ in layers] == [
        ("ab sharp", (1, 8, 8)),
        ("ab blurred", (1, 8, 8)),
    ]
    assert len(warnings) == 1 and "A/a.png" in warnings[0] and "complete image" in warnings[0]
    assert digest(tmp_path) == before


def test_only_unreadable_frames_warn_and_open_nothing(tmp_path) -> None:
    _files(tmp_path / "ab" / "A", {"a.png": "text"})
    _files(tmp_path / "ab" / "B", {"a.png": "png"})
    layers, warnings = open_folder(tmp_path / "ab")
    assert layers == NO_LAYERS  # napari's "handled, nothing to show": no exception, no second reader
    assert len(warnings) == 1 and "A/a.png" in warnings[0]


def test_a_gopro_scene_without_frames_warns(tmp_path) -> None:
    for sub in ("blur", "sharp"):
        (tmp_path / "GOPR0001" / sub).mkdir(parents=True)
    (tmp_path / "GOPR0001" / "sharp" / "readme.txt").write_text("frames go here")
    layers, warnings = open_folder(tmp_path / "GOPR0001")
    assert layers is None and len(warnings) == 1 and "hold no images" in warnings[0]


def test_symlink_loops_are_declined_without_hanging(tmp_path) -> None:
    root = tmp_path / "root"
    _files(root / "B", {"x.png": "png"})
    (root / "A").symlink_to(root / "A")  # A is a loop: not a folder
    (root / "up").symlink_to(tmp_path)  # a cycle through the parent
    (root / "train").symlink_to(root)  # a "split" that contains itself
    (tmp_path / "self").symlink_to(tmp_path / "self")
    for path in (root, root / "A", root / "train", root / "up", tmp_path / "self"):
        layers, warnings = open_folder(path)
        assert layers is None and warnings == []


def test_symlinked_frames_that_loop_are_reported_as_unpaired(tmp_path) -> None:
    _files(tmp_path / "ab" / "A", {"ok.png": "png"})
    _files(tmp_path / "ab" / "B", {"ok.png": "png", "x.png": "png"})
    (tmp_path / "ab" / "A" / "x.png").symlink_to(tmp_path / "ab" / "A" / "x.png")
    layers, warnings = open_folder(tmp_path / "ab")
    assert layers is None and "only in B: x.png" in warnings[0]


def test_a_loop_inside_a_gopro_tree_is_not_followed(tmp_path) -> None:
    scene = tmp_path / "GOPRO" / "train" / "GOPR0001"
    _files(scene / "blur", {"000001.png": "rgb"})
    _files(scene / "sharp", {"000001.png": "rgb"})
    (scene / "again").symlink_to(tmp_path / "GOPRO")  # '**/blur' must not recurse through it
    layers, warnings = open_folder(tmp_path / "GOPRO")
    assert warnings == [] and layers is not None
    assert {meta["name"]: data.shape for data, meta, _ in layers} == {
        "GOPRO sharp": (1, 8, 8, 3),
        "GOPRO blurred": (1, 8, 8, 3),
    }


# -- random folder trees ---------------------------------------------------------------------------------

DIRS = ["A", "B", "blur", "blur_gamma", "sharp", "train", "test", "GOPR0001"]
FILES = ["000001.png", "000002.png", "x.tif", "notes.txt", ".hidden.png"]
LINKS = ["self", "parent", "root", "dangling", "sibling"]

files = st.dictionaries(st.sampled_from(FILES), st.sampled_from(sorted(CONTENT)), max_size=3)
links = st.sampled_from(LINKS).map(lambda kind: ("link", kind))
frames = st.dictionaries(
    st.sampled_from(FILES[:2]), st.sampled_from(["png", "png", "png", "png-9", "rgb", "truncated"]), min_size=1
)
random_trees = st.recursive(
    files,
    lambda children: st.dictionaries(st.sampled_from(DIRS), st.one_of(children, links), max_size=4),
    max_leaves=12,
)
# mostly-valid layouts, so that many trees get past the layout check and into pairing and reading
ab_trees = st.fixed_dictionaries({"A": st.one_of(frames, links), "B": frames}, optional={"extra": random_trees})
gopro_trees = st.fixed_dictionaries(
    {
        "train": st.fixed_dictionaries(
            {"GOPR0001": st.fixed_dictionaries({"blur": frames, "sharp": st.one_of(frames, links)})}
        )
    },
    optional={"test": random_trees},
)
trees = st.one_of(random_trees, ab_trees, gopro_trees)


def build(folder: Path, root: Path, tree: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in tree.items():
        path = folder / name
        if isinstance(value, tuple):  # ("link", kind)
            target = {
                "self": path,
                "parent": folder,
                "root": root,
                "dangling": root / "missing",
                "sibling": folder / "A",
            }[value[1]]
            path.symlink_to(target)
        elif isinstance(value, dict):
            build(path, root, value)
        else:
            path.write_bytes(CONTENT[value])


@settings(max_examples=60, deadline=None)
@given(tree=trees)
def test_random_folder_trees_never_raise_hang_or_change_files(tree) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        build(root, root, tree if isinstance(tree, dict) else {})
        before = digest(root)
        folders = [root] + [Path(d) / n for d, names, _ in os.walk(root) for n in names]
        for folder in folders:
            layers, warnings = open_folder(folder)  # raises (fails) on any exception or after 10 s
            assert len(warnings) <= 1
            event("opened" if layers not in (None, NO_LAYERS) else "warned" if warnings else "declined")
            if layers is not None and layers != NO_LAYERS:  # pairs of stacks, each consistent, every frame readable
                assert [kind for *_, kind in layers] == ["image"] * len(layers) and len(layers) % 2 == 0
                for (sharp, sharp_meta, _), (blurred, _, _) in zip(layers[::2], layers[1::2]):
                    assert sharp.shape[:3] == blurred.shape[:3] and " sharp" in sharp_meta["name"]  # frames, Y, X
                    assert np.asarray(sharp).shape == sharp.shape and np.asarray(blurred).shape == blurred.shape
        assert digest(root) == before


def test_first_frames_of_different_sizes_warn_with_both_names(tmp_path) -> None:
    _files(tmp_path / "ab" / "A", {"000001.png": "png"})
    _files(tmp_path / "ab" / "B", {"000001.png": "png-9"})
    layers, warnings = open_folder(tmp_path / "ab")
    assert layers == NO_LAYERS and len(warnings) == 1
    assert "Size mismatch" in warnings[0] and "A/000001.png" in warnings[0] and "B/000001.png" in warnings[0]


def _apng_bytes() -> bytes:
    import imagecodecs

    return imagecodecs.apng_encode(np.full((3, 8, 8), 7, np.uint8))


def _bomb_bytes() -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = (100_000).to_bytes(4, "big") * 2 + bytes([16, 0, 0, 0, 0])  # 100,000^2 16-bit gray pixels
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [(_apng_bytes, "is an animated PNG of 3 images"), (_bomb_bytes, "NAPARI_DEBLURGAN_MAX_PIXELS")],
    ids=["animated", "bomb"],
)
def test_a_frame_of_several_images_or_a_bomb_is_left_out_by_name(tmp_path, content, message) -> None:
    _files(tmp_path / "ab" / "A", {"b.png": "png"})
    _files(tmp_path / "ab" / "B", {"a.png": "png", "b.png": "png"})
    (tmp_path / "ab" / "A" / "a.png").write_bytes(content())
    layers, warnings = open_folder(tmp_path / "ab")
    assert [(meta["name"], data.shape) for data, meta, _ in layers] == [
        ("ab sharp", (1, 8, 8)),
        ("ab blurred", (1, 8, 8)),
    ]
    assert len(warnings) == 1 and "A/a.png" in warnings[0] and message in warnings[0]
