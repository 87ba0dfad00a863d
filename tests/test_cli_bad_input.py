"""The command line under bad input: one-line errors naming the file and the fix (exit code 2), correct
results for unusual images, and input files that are never modified.

Complements test_cli.py (missing file, non-image file, garbage PNG, existing outputs, formats that cannot
hold an image).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import tifffile

from _helpers import TINY_RECIPE
from napari_deblurgan import deblur
from napari_deblurgan.cli import main
from napari_deblurgan.gan.io.images import read_image, write_image

TINY_RECIPE = {**TINY_RECIPE, "steps": 2}


def digest(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (links are not followed): file contents hashed, link targets as text."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


_FROZEN: dict[Path, dict[str, str]] = {}


def _freeze(folder: Path) -> None:
    """Record the input folder's contents once the test has written its inputs."""
    _FROZEN[folder] = digest(folder)


@pytest.fixture
def inputs(tmp_path: Path):
    """An input folder; after the test its contents must be what :func:`_freeze` recorded."""
    folder = tmp_path / "in"
    folder.mkdir()
    yield folder
    assert folder in _FROZEN, "the test never recorded its inputs"
    assert digest(folder) == _FROZEN.pop(folder), "an input file was modified"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main([*args])
    err = capsys.readouterr().err.strip()
    if code:
        assert len(err.splitlines()) == 1, err  # one line, no traceback
    return code, err


def _deblur(capsys, model: Path, *args: str) -> tuple[int, str]:
    return _cli(capsys, "deblur", *args, "--model", str(model), "--quiet")


def _truncated_png(path: Path) -> Path:
    write_image(path, skimage.data.astronaut()[:64, :64])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# -- folders and files ---------------------------------------------------------------------------------


def test_an_empty_folder_is_refused(inputs, tmp_path, capsys, identity_model_path) -> None:
    _freeze(inputs)
    code, err = _deblur(capsys, identity_model_path, str(inputs), "-o", str(tmp_path / "out"))
    assert code == 2 and "holds no images (.png," in err and str(inputs) in err
    assert not (tmp_path / "out").exists()


def test_a_folder_of_non_images_is_refused(inputs, tmp_path, capsys, identity_model_path) -> None:
    (inputs / "notes.txt").write_text("hello")
    (inputs / "data.npy").write_bytes(b"\x93NUMPY")
    write_image(inputs / ".hidden.png", np.zeros((4, 4), np.uint8))  # dot files are never inputs
    (inputs / "folder.png").mkdir()  # a folder with an image suffix
    _freeze(inputs)
    code, err = _deblur(capsys, identity_model_path, str(inputs), "-o", str(tmp_path / "out"))
    assert code == 2 and "holds no images (.png," in err


@pytest.mark.parametrize("kind", ["png", "tif", "empty-jpg"])
def test_truncated_images_are_named_and_leave_no_partial_output(inputs, tmp_path, capsys, identity_model_path, kind):
    write_image(inputs / "a_good.png", skimage.data.camera()[:40, :40])
    if kind == "png":
        bad = _truncated_png(inputs / "b_bad.png")
    elif kind == "tif":
        bad = inputs / "b_bad.tif"
        tifffile.imwrite(bad, np.zeros((64, 64), np.uint16))
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        bad = inputs / "b_bad.jpg"
        bad.write_bytes(b"")
    _freeze(inputs)
    out = tmp_path / "out"
    code, err = _deblur(capsys, identity_model_path, str(inputs), "-o", str(out))
    assert code == 2 and "Cannot read image" in err and "b_bad" in err and "complete image" in err
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert written in ([], ["a_good.png"])  # the good image may be done already; nothing partial, no temp file


def test_a_symlink_loop_input_is_named(inputs, tmp_path, capsys, identity_model_path) -> None:
    loop = inputs / "loop.png"
    loop.symlink_to(loop)
    _freeze(inputs)
    code, err = _deblur(capsys, identity_model_path, str(loop), "-o", str(tmp_path / "out"))
    assert code == 2 and "broken or looping symbolic link" in err


def test_links_in_a_folder_are_skipped_when_broken(inputs, tmp_path, capsys, identity_model_path) -> None:
    write_image(inputs / "good.png", skimage.data.camera()[:32, :48])
    (inputs / "loop.png").symlink_to(inputs / "loop.png")
    (inputs / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (inputs / "sub").symlink_to(inputs)  # a folder loop: inputs are not searched recursively
    _freeze(inputs)
    out = tmp_path / "out"
    assert _deblur(capsys, identity_model_path, str(inputs), "-o", str(out))[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (1, 5000), (5000, 1), (1, 1, 3)])
def test_tiny_and_extreme_aspect_files(inputs, tmp_path, capsys, tiny_model_path, shape) -> None:
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    write_image(inputs / "x.png", image)
    _freeze(inputs)
    out = tmp_path / "out"
    assert _deblur(capsys, tiny_model_path, str(inputs / "x.png"), "-o", str(out))[0] == 0
    result = read_image(out / "x.png")
    assert result.shape == image.shape and result.dtype == np.uint8
    np.testing.assert_array_equal(result, deblur(image, tiny_model_path, tile_size=1024))


def test_gray_with_alpha_png_keeps_its_alpha(inputs, tmp_path, capsys, tiny_model_path) -> None:
    gray = skimage.data.camera()[:48, :40]
    alpha = np.tile(np.arange(40, dtype=np.uint8) * 6, (48, 1))
    write_image(inputs / "la.png", np.dstack([gray, alpha]))
    _freeze(inputs)
    out = tmp_path / "out"
    assert _deblur(capsys, tiny_model_path, str(inputs / "la.png"), "-o", str(out))[0] == 0
    result = read_image(out / "la.png")
    assert result.shape == (48, 40, 2)
    np.testing.assert_array_equal(result[..., 1], alpha)
    np.testing.assert_array_equal(result[..., 0], deblur(gray, tiny_model_path))


@pytest.mark.parametrize("count", [2, 5])
def test_multichannel_tiff_is_deblurred_channel_by_channel(inputs, tmp_path, capsys, tiny_model_path, count) -> None:
    image = np.random.default_rng(count).integers(0, 65535, (40, 36, count), dtype=np.uint16)
    tifffile.imwrite(inputs / "c.tif", image, photometric="minisblack", planarconfig="contig")
    _freeze(inputs)
    out = tmp_path / "out"
    assert _deblur(capsys, tiny_model_path, str(inputs / "c.tif"), "-o", str(out))[0] == 0
    result = read_image(out / "c.tif")
    assert result.shape == image.shape and result.dtype == np.uint16
    for c in range(count):
        np.testing.assert_array_equal(result[..., c], deblur(image[..., c], tiny_model_path))
    with tifffile.TiffFile(out / "c.tif") as tif:
        assert tif.series[0].axes == "YXS"  # still channels, not a stack of pages


def test_multipage_tiff_is_a_stack_of_gray_frames(inputs, tmp_path, capsys, tiny_model_path) -> None:
    stack = np.random.default_rng(3).integers(0, 255, (5, 24, 30), dtype=np.uint8)
    tifffile.imwrite(inputs / "s.tif", stack)
    _freeze(inputs)
    out = tmp_path / "out"
    assert _deblur(capsys, tiny_model_path, str(inputs / "s.tif"), "-o", str(out))[0] == 0
    result = read_image(out / "s.tif")
    np.testing.assert_array_equal(result[2], deblur(stack[2], tiny_model_path))
    as_png = _deblur(capsys, tiny_model_path, str(inputs / "s.tif"), "-o", str(tmp_path / "png"), "--format", "png")
    assert as_png[0] != 0 and "s.tif is a stack of 5 images and .png holds one" in as_png[1]
    assert not (tmp_path / "png").exists()  # refused before any work


def test_an_output_path_that_is_a_file_is_refused(inputs, tmp_path, capsys, identity_model_path) -> None:
    write_image(inputs / "a.png", np.zeros((8, 8), np.uint8))
    _freeze(inputs)
    target = tmp_path / "out.png"
    target.write_bytes(b"keep")
    code, err = _deblur(capsys, identity_model_path, str(inputs), "-o", str(target))
    assert code == 2 and "is a file, not a folder" in err and target.read_bytes() == b"keep"


@pytest.mark.parametrize("size", ["8", "-1"])
def test_a_tile_size_below_32_is_refused_before_any_work(tmp_path, capsys, size) -> None:
    with pytest.raises(SystemExit) as info:
        main(["deblur", str(tmp_path), "-o", str(tmp_path / "out"), "--tile-size", size])
    assert info.value.code == 2 and "use 0 (whole frames) or at least 32" in capsys.readouterr().err


# -- model files given with --model ------------------------------------------------------------------------


class _Payload:
    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(_Payload.marker),))


def test_a_pickled_model_is_refused_and_never_run(inputs, tmp_path, capsys) -> None:
    write_image(inputs / "a.png", np.zeros((8, 8), np.uint8))
    _freeze(inputs)
    _Payload.marker = str(tmp_path / "pwned")
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps({"weight": _Payload()}))
    code, err = _deblur(capsys, evil, str(inputs), "-o", str(tmp_path / "out"))
    assert code == 2 and "only safetensors" in err and "model.safetensors" in err
    assert not (tmp_path / "pwned").exists()


def test_a_training_checkpoint_given_as_model_says_to_export(inputs, tmp_path, capsys) -> None:
    import torch

    write_image(inputs / "a.png", np.zeros((8, 8), np.uint8))
    _freeze(inputs)
    torch.save({"step": 1}, tmp_path / "checkpoint.pt")
    code, err = _deblur(capsys, tmp_path / "checkpoint.pt", str(inputs), "-o", str(tmp_path / "out"))
    assert code == 2 and "napari-deblurgan export" in err


def test_a_folder_given_as_model_is_named(inputs, tmp_path, capsys) -> None:
    write_image(inputs / "a.png", np.zeros((8, 8), np.uint8))
    _freeze(inputs)
    code, err = _deblur(capsys, tmp_path, str(inputs), "-o", str(tmp_path / "out"))
    assert code == 2 and "is a folder; pass a .safetensors model file" in err


# -- training, resuming and exporting --------------------------------------------------------------------


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(TINY_RECIPE))
    return path


def _train(capsys, data: Path, out: Path, recipe: Path, *extra: str) -> tuple[int, str]:
    return _cli(
        capsys, "train", str(data), "--out", str(out), "--config", str(recipe), "--device", "cpu", "--quiet", *extra
    )


def test_training_on_an_empty_folder_is_refused(inputs, tmp_path, capsys, recipe) -> None:
    (inputs / "readme.txt").write_text("no images here")
    _freeze(inputs)
    code, err = _train(capsys, inputs, tmp_path / "run", recipe)
    assert code == 2 and "No images" in err and str(inputs) in err


def test_training_pairs_of_different_sizes_names_both_files(inputs, tmp_path, capsys, recipe) -> None:
    for sub, size in (("A", 64), ("B", 72)):
        (inputs / sub).mkdir()
        write_image(inputs / sub / "x.png", np.zeros((size, size, 3), np.uint8))
    _freeze(inputs)
    code, err = _train(capsys, inputs, tmp_path / "run", recipe)
    assert code == 2 and "Size mismatch" in err and "A/x.png" in err and "B/x.png" in err


def test_training_unpaired_files_lists_them(inputs, tmp_path, capsys, recipe) -> None:
    for sub in ("A", "B"):
        (inputs / sub).mkdir()
        write_image(inputs / sub / "same.png", np.zeros((40, 40, 3), np.uint8))
    write_image(inputs / "A" / "lonely.png", np.zeros((40, 40, 3), np.uint8))
    _freeze(inputs)
    code, err = _train(capsys, inputs, tmp_path / "run", recipe)
    assert code == 2 and "only in A: lonely.png" in err and "same name in B/" in err


@pytest.mark.parametrize(("text", "message"), [("{not json", "is not valid JSON"), ("[1, 2]", "JSON object")])
def test_a_broken_recipe_is_named(tmp_path, capsys, text, message) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    code, err = _cli(capsys, "train", "skimage", "--out", str(tmp_path / "run"), "--config", str(bad), "--quiet")
    assert code == 2 and message in err and "bad.json" in err


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('generator={"ngf": "16"}', "generator option ngf must be a whole number, got '16'"),
        ('generator={"ngf": 8.0}', "generator option ngf must be a whole number, got 8.0"),
        ('generator={"ngff": 16}', "Unknown generator options ['ngff']; the options are arch"),
        ("synthesis=realistic", "does not exist; build the corpus with `napari-deblurgan corpus`"),
    ],
)
def test_bad_generator_options_and_a_missing_photo_folder_are_named(tmp_path, capsys, setting, message) -> None:
    missing = str(tmp_path / "no-photos")
    code, err = _cli(capsys, "train", missing, "--out", str(tmp_path / "run"), "--set", setting, "--quiet")
    assert code == 2 and message in err


@pytest.fixture
def run(tmp_path: Path, recipe: Path, capsys) -> Path:
    """A finished 2-step run trained on a folder of one sharp image."""
    sharp = tmp_path / "sharp"
    sharp.mkdir()
    write_image(sharp / "a.png", skimage.data.astronaut()[:96, :96])
    assert _train(capsys, sharp, tmp_path / "run", recipe)[0] == 0
    return tmp_path / "run"


def test_resuming_from_a_truncated_checkpoint_is_refused(run, tmp_path, capsys, recipe) -> None:
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    code, err = _train(capsys, tmp_path / "sharp", run, recipe, "--resume", "--steps", "4")
    assert code == 2 and "truncated, corrupt" in err and "checkpoint.pt" in err


def test_a_pickle_checkpoint_is_never_run_by_resume_or_export(run, tmp_path, capsys, recipe) -> None:
    import torch

    _Payload.marker = str(tmp_path / "pwned")
    torch.save({"step": 2, "config": "{}", "generator": _Payload()}, run / "checkpoint.pt")
    code, err = _train(capsys, tmp_path / "sharp", run, recipe, "--resume", "--steps", "4")
    assert code == 2 and "nothing in it was executed" in err
    code, err = _cli(capsys, "export", str(run), str(tmp_path / "m.safetensors"))
    assert code == 2 and "checkpoint.pt" in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("drop", ["generator", "config"])
def test_an_incomplete_checkpoint_is_named_by_export_and_resume(run, tmp_path, capsys, recipe, drop) -> None:
    from napari_deblurgan.gan.io.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(run / "checkpoint.pt")
    del state[drop]
    save_checkpoint(state, run / "checkpoint.pt")
    code, err = _cli(capsys, "export", str(run), str(tmp_path / "m.safetensors"))
    assert code == 2 and "not a complete napari-deblurgan checkpoint" in err and drop in err
    code, err = _train(capsys, tmp_path / "sharp", run, recipe, "--resume", "--steps", "4")
    assert code == 2 and "Cannot resume" in err and drop in err


def test_export_never_writes_over_its_own_run(run, capsys) -> None:
    before = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "metrics.csv")}
    for name in before:
        code, err = _cli(capsys, "export", str(run), str(run / name), "--overwrite")
        assert code == 2 and f"the run's own {name}" in err
    assert all((run / name).read_bytes() == data for name, data in before.items())


def test_a_checkpoint_of_another_architecture_is_named(run, tmp_path, capsys) -> None:
    from napari_deblurgan.gan.io.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(run / "checkpoint.pt")
    config = json.loads(state["config"])
    state["config"] = json.dumps({**config, "generator": {"ngf": 16, "n_blocks": 1}})
    save_checkpoint(state, run / "checkpoint.pt")
    code, err = _cli(capsys, "export", str(run), str(tmp_path / "m.safetensors"))
    assert code == 2 and "not a complete napari-deblurgan checkpoint" in err and "size mismatch" in err


# -- dataset tools ------------------------------------------------------------------------------------------


def test_synthesize_refuses_two_sources_for_one_output_before_writing(inputs, tmp_path, capsys) -> None:
    write_image(inputs / "a.png", np.zeros((40, 40), np.uint8))
    write_image(inputs / "a.jpg", np.zeros((40, 40), np.uint8))
    _freeze(inputs)
    code, err = _cli(capsys, "synthesize", str(inputs), str(tmp_path / "pairs"), "--quiet")
    assert code == 2 and "would both be written" in err and "a.jpg" in err
    assert not (tmp_path / "pairs").exists() or not any((tmp_path / "pairs").rglob("*.*"))


def test_synthesize_on_an_empty_folder_is_refused(inputs, tmp_path, capsys) -> None:
    _freeze(inputs)
    code, err = _cli(capsys, "synthesize", str(inputs), str(tmp_path / "pairs"), "--quiet")
    assert code == 2 and "No .png, .jpg or .tif images" in err


# -- files of several images, decompression bombs, special files, Ctrl-C, a full disk ---------------------


def test_animated_and_multi_page_inputs_have_every_frame_deblurred(inputs, tmp_path, capsys, tiny_model_path) -> None:
    import imagecodecs

    frames = np.random.default_rng(7).integers(0, 256, (3, 24, 30, 3), dtype=np.uint8)
    (inputs / "anim.png").write_bytes(imagecodecs.apng_encode(frames))
    for i, page in enumerate(frames[..., 0]):  # pages written one at a time
        tifffile.imwrite(inputs / "pages.tif", page, append=i > 0)
    _freeze(inputs)
    code, err = _deblur(capsys, tiny_model_path, str(inputs / "anim.png"), "-o", str(tmp_path / "png"))
    assert code == 2 and "anim.png is a stack of 3 images and .png holds one (an animated PNG)" in err
    out = tmp_path / "out"
    assert _deblur(capsys, tiny_model_path, str(inputs), "-o", str(out), "--format", "tif")[0] == 0
    anim, pages = read_image(out / "anim.tif"), read_image(out / "pages.tif")
    assert anim.shape == frames.shape and pages.shape == frames.shape[:3]
    for i in range(3):
        np.testing.assert_array_equal(anim[i], deblur(frames[i], tiny_model_path))
        np.testing.assert_array_equal(pages[i], deblur(frames[i, ..., 0], tiny_model_path))


def test_a_decompression_bomb_is_refused_by_name_before_any_work(inputs, tmp_path, capsys, identity_model_path) -> None:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = (100_000).to_bytes(4, "big") * 2 + bytes([16, 2, 0, 0, 0])  # 100,000^2 16-bit RGB pixels
    bomb = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(10**5))) + chunk(b"IEND", b"")
    )
    (inputs / "bomb.png").write_bytes(bomb)
    _freeze(inputs)
    code, err = _deblur(capsys, identity_model_path, str(inputs), "-o", str(tmp_path / "out"))
    assert (
        code == 2 and "bomb.png is a PNG image of 100000 x 100000 x 3" in err and "NAPARI_DEBLURGAN_MAX_PIXELS" in err
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_special_files_are_named_as_such(inputs, tmp_path, capsys, identity_model_path, kind) -> None:
    path = Path("/dev/zero") if kind == "device" else inputs / "pipe.png"
    if kind == "fifo":
        os.mkfifo(path)
    _freeze(inputs)
    code, err = _deblur(capsys, identity_model_path, str(path), "-o", str(tmp_path / "out"))
    described = "a character device" if kind == "device" else r"a named pipe (FIFO)"
    assert code == 2 and f"{path} is {described}, not an image file" in err and "does not exist" not in err


def test_ctrl_c_ends_with_one_line_exit_130_and_no_partial_output(inputs, tmp_path, capsys, monkeypatch) -> None:
    from napari_deblurgan.gan.restoration import inference

    write_image(inputs / "a.png", np.zeros((16, 16), np.uint8))
    _freeze(inputs)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "deblur", interrupted)
    out = tmp_path / "out"
    code = main(["deblur", str(inputs), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 130 and err == "napari-deblurgan deblur: interrupted"
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_a_full_disk_names_the_output_and_says_so(inputs, tmp_path, capsys, identity_model_path, monkeypatch, suffix):
    import errno

    from PIL import ImageFile

    write_image(inputs / f"a{suffix}", np.zeros((16, 16), np.uint8))
    _freeze(inputs)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile.FileHandle, "write", full)
    monkeypatch.setattr(ImageFile, "_save", full)
    out = tmp_path / "out"
    code, err = _deblur(capsys, identity_model_path, str(inputs), "-o", str(out))
    assert code == 2 and f"Cannot write {out / ('a' + suffix)}: the disk is full" in err
    assert list(out.iterdir()) == []  # no temp file left behind


def test_training_never_appends_to_a_metrics_csv_that_no_run_wrote(tmp_path, capsys, recipe) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("experiment,accuracy\n")  # the user's own table, one line
    code, err = _train(capsys, tmp_path, run, recipe)
    assert code == 2 and "metrics.csv was not written by a napari-deblurgan run" in err
    assert (run / "metrics.csv").read_text() == "experiment,accuracy\n" and not (run / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("max_nosie=0.1", "there is no training option 'max_nosie'; did you mean max_noise?"),
        ("steps=1.5", "steps takes a whole number, not '1.5'"),
        ("lr=fast", "lr takes a number, not 'fast'"),
        ("channels_last=maybe", "channels_last takes true or false"),
        ("betas=0.9", "betas takes a JSON list such as [0.5, 0.999]"),
        ("generator=[8]", "generator takes a JSON object"),
        ("steps", "write KEY=VALUE"),
        ("steps=0", "steps must be a whole number from 1"),  # the range is checked with the recipe's options
        ("crop=64", "crop is given twice"),  # --crop too
    ],
)
def test_train_set_names_an_unknown_option_or_a_value_of_the_wrong_type(
    tmp_path, capsys, recipe, setting: str, message: str
) -> None:
    code, err = _train(capsys, tmp_path, tmp_path / "run", recipe, "--crop", "32", "--set", setting)
    assert code == 2 and message in err, err
    assert not (tmp_path / "run").exists()
