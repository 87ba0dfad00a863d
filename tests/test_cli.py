"""The command line: round trips, refusals that protect files, one-line errors, and the dataset tools."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from _helpers import TINY_RECIPE, fail_train_step_at, sha256_of
from napari_deblurgan.cli import main
from napari_deblurgan.gan.io.checkpoint import load_checkpoint
from napari_deblurgan.gan.io.images import icc_profile, read_image, write_image
from napari_deblurgan.gan.model.weights import load_generator


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "rgb8.png", skimage.data.astronaut()[:96, :120])
    write_image(folder / "gray16.tif", skimage.data.camera()[:80, :70].astype(np.uint16) * 257)
    write_image(folder / "rgb16.tif", skimage.data.coffee()[:64, :64].astype(np.uint16) * 250)
    return folder


def _rgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_round_trip_keeps_format_shape_bit_depth_and_colour_profile(
    images: Path, tmp_path: Path, identity_model_path: Path
) -> None:
    profile = _rgb_profile()
    write_image(images / "phone.jpg", skimage.data.chelsea()[:64, :80], icc_profile=profile)
    out = tmp_path / "out"
    assert main(["deblur", str(images), "-o", str(out), "--model", str(identity_model_path), "--quiet"]) == 0
    for name in ("rgb8.png", "gray16.tif", "rgb16.tif"):
        src, dst = read_image(images / name), read_image(out / name)
        assert dst.dtype == src.dtype and dst.shape == src.shape
        np.testing.assert_array_equal(dst, src)  # the identity model gives the input back, bit for bit
    assert icc_profile(out / "phone.jpg") == profile and icc_profile(out / "rgb8.png") is None


def test_tiff_channels_are_colours_only_where_the_file_says_so(tmp_path, tiny_model_path, identity_model_path):
    """Four microscope stains are deblurred one by one (not as RGB + alpha) and stay stains; gray + alpha keeps
    its alpha bit for bit and its mark; a CMYK TIFF comes out as the RGB it shows."""
    import tifffile

    from napari_deblurgan import deblur
    from napari_deblurgan.gan.io.images import probe

    (tmp_path / "in").mkdir()
    stains = np.stack([skimage.data.camera()[:48, 16 * i : 16 * i + 56] for i in range(4)], axis=-1).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in" / "stains.tif", stains * 200, photometric="minisblack", planarconfig="contig")
    gray_alpha = np.stack([skimage.data.camera()[:40, :40], np.where(np.eye(40) > 0, 255, 0)], -1).astype(np.uint8)
    tifffile.imwrite(tmp_path / "in" / "ga.tif", gray_alpha, photometric="minisblack", extrasamples=["unassalpha"])
    out = tmp_path / "out"
    assert main(["deblur", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model_path), "--quiet"]) == 0
    expected = deblur(stains * 200, tiny_model_path, channel_axis=-1, rgb=False)
    np.testing.assert_array_equal(read_image(out / "stains.tif"), expected)
    assert probe(out / "stains.tif").colour is False and probe(out / "ga.tif").gray_alpha
    np.testing.assert_array_equal(read_image(out / "ga.tif")[..., 1], gray_alpha[..., 1])
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[..., 1:3] = 255  # red
    tifffile.imwrite(tmp_path / "cmyk.tif", cmyk, photometric="separated")
    args = ["deblur", str(tmp_path / "cmyk.tif"), "-o", str(tmp_path / "rgb"), "--model", str(identity_model_path)]
    assert main([*args, "--quiet", "--no-refine"]) == 0
    assert (read_image(tmp_path / "rgb" / "cmyk.tif") == [255, 0, 0]).all()


def test_outputs_keep_pixel_size_compression_imagej_axes_and_exif(tmp_path, identity_model_path) -> None:
    """A microscopist's pixel size and Z spacing, and a photographer's date taken, survive deblurring."""
    import tifffile
    from PIL import Image

    (tmp_path / "in").mkdir()
    stack = (np.random.default_rng(3).random((3, 2, 24, 20)) * 4000).astype(np.uint16)
    calibration = {"axes": "ZCYX", "spacing": 0.5, "unit": "um"}
    tifffile.imwrite(
        tmp_path / "in" / "cells.tif",
        stack,
        imagej=True,
        metadata=calibration,
        resolution=(4.0, 4.0),
        compression="zlib",
    )
    exif = Image.Exif()
    exif[0x0132], exif[0x0112] = "2026:12:06 09:30:00", 6  # DateTime; stored turned by 90 degrees
    Image.fromarray(skimage.data.astronaut()[:40, :64]).save(tmp_path / "in" / "photo.jpg", exif=exif, dpi=(300, 300))
    out = tmp_path / "out"
    assert main(["deblur", str(tmp_path / "in"), "-o", str(out), "--model", str(identity_model_path), "--quiet"]) == 0
    with tifffile.TiffFile(out / "cells.tif") as tif:
        assert tif.series[0].axes == "ZCYX" and tif.imagej_metadata["spacing"] == 0.5
        assert tif.imagej_metadata["unit"] == "um" and tif.pages[0].resolution == (4.0, 4.0)
        assert tif.pages[0].compression.name == "ADOBE_DEFLATE"
    np.testing.assert_array_equal(read_image(out / "cells.tif"), stack)  # the identity model
    odd = tmp_path / "odd"  # ImageJ metadata whose axes ImageJ could not take back: written as a plain TIFF
    odd.mkdir()
    with tifffile.TiffWriter(odd / "images.tif") as tif:  # read as axes IYX
        tif.write(stack[:, 0], description="ImageJ=1.54f\nimages=3\n", metadata=None, photometric="minisblack")
    args = ["deblur", str(odd), "-o", str(tmp_path / "odd-out"), "--model", str(identity_model_path), "--quiet"]
    assert main(args) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "odd-out" / "images.tif"), stack[:, 0])
    with Image.open(out / "photo.jpg") as photo:
        assert photo.getexif()[0x0132] == "2026:12:06 09:30:00" and photo.getexif()[0x0112] == 1  # upright
        assert photo.size == (40, 64) and round(photo.info["dpi"][0]) == 300


def test_a_real_model_changes_the_image(images: Path, tmp_path: Path, tiny_model_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["deblur", str(images / "rgb8.png"), "-o", str(out), "--model", str(tiny_model_path), "--quiet"]) == 0
    assert not np.array_equal(read_image(out / "rgb8.png"), read_image(images / "rgb8.png"))
    small = ["deblur", str(images / "rgb8.png"), "-o", str(tmp_path / "small"), "--model", str(tiny_model_path)]
    assert main([*small, "--tile-size", "64", "--quiet"]) == 0  # any size from 32 px: overlap shrinks with it


def test_deblur_ensemble_and_strength_match_the_api(images: Path, tmp_path: Path, tiny_model_path: Path) -> None:
    from napari_deblurgan import deblur

    out = tmp_path / "out"
    cmd = ["deblur", str(images / "rgb8.png"), "-o", str(out), "--model", str(tiny_model_path), "--quiet"]
    assert main([*cmd, "--ensemble", "4", "--strength", "0.7"]) == 0
    expected = deblur(read_image(images / "rgb8.png"), tiny_model_path, ensemble=4, strength=0.7)
    np.testing.assert_array_equal(read_image(out / "rgb8.png"), expected)
    assert not np.array_equal(expected, deblur(read_image(images / "rgb8.png"), tiny_model_path, ensemble=4))
    for bad in (["--ensemble", "3"], ["--strength", "1.5"]):
        with pytest.raises(SystemExit):
            main([*cmd, "--overwrite", *bad])


def test_no_refine_gives_the_generator_output_alone(
    tmp_path: Path, identity_model_path: Path, ungated_refinement
) -> None:
    from scipy import ndimage

    src = tmp_path / "shaken.png"
    camera = skimage.data.camera()[60:316, 100:356].astype(np.float32)  # 160 px failed the PSF cross-check
    write_image(src, ndimage.uniform_filter1d(camera, 9, axis=1).round().astype(np.uint8))  # a 9 px blur
    cmd = ["deblur", str(src), "--model", str(identity_model_path), "--quiet", "-o"]
    assert main([*cmd, str(tmp_path / "plain"), "--no-refine"]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "plain" / src.name), read_image(src))  # identity model
    assert main([*cmd, str(tmp_path / "refined")]) == 0  # the default: deconvolved by the estimated PSF
    assert np.abs(read_image(tmp_path / "refined" / src.name).astype(int) - read_image(src)).mean() > 1


def test_existing_outputs_and_inputs_are_never_overwritten(images, tmp_path, identity_model_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "rgb8.png").write_bytes(b"precious")
    args = ["deblur", str(images / "rgb8.png"), "-o", str(out), "--model", str(identity_model_path), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err
    assert (out / "rgb8.png").read_bytes() == b"precious"
    assert main([*args, "--overwrite"]) == 0
    assert read_image(out / "rgb8.png").shape == (96, 120, 3)
    before = (images / "rgb8.png").read_bytes()
    assert main(["deblur", str(images / "rgb8.png"), "-o", str(images), "--overwrite", "--quiet"]) == 2
    assert "overwrite an input" in capsys.readouterr().err
    assert (images / "rgb8.png").read_bytes() == before


def test_an_output_that_is_an_input_under_another_name_is_refused(images, tmp_path, identity_model_path, capsys):
    """On a case-insensitive disk (macOS, exFAT) out/IMG.jpg *is* photos/IMG.JPG; a hard link stands in for it
    here: both names reach one file, which --overwrite must not replace."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "rgb8.png").hardlink_to(images / "rgb8.png")
    before = (images / "rgb8.png").read_bytes()
    args = ["deblur", str(images / "rgb8.png"), "-o", str(out), "--model", str(identity_model_path), "--quiet"]
    assert main([*args, "--overwrite"]) == 2
    assert "overwrite an input" in capsys.readouterr().err
    assert (images / "rgb8.png").read_bytes() == before


def test_outputs_whose_names_differ_only_in_case_are_refused(tmp_path, identity_model_path, capsys) -> None:
    for name in ("a/IMG.png", "b/img.png"):
        (tmp_path / name).parent.mkdir()
        write_image(tmp_path / name, np.zeros((8, 8), np.uint8))
    out = tmp_path / "out"
    args = ["deblur", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "--model", str(identity_model_path)]
    assert main([*args, "--quiet"]) == 2
    assert "would both be written" in capsys.readouterr().err and not out.exists()


def test_skip_existing_continues_a_stopped_batch_and_sigterm_leaves_no_partial_file(
    images, tmp_path, identity_model_path, capsys, monkeypatch
) -> None:
    import os
    import signal

    from napari_deblurgan.gan.io import checkpoint

    out = tmp_path / "out"
    args = ["deblur", str(images), "-o", str(out), "--model", str(identity_model_path)]
    fsync = checkpoint.os.fsync
    written: list[int] = []

    def terminated_at_the_second_file(fd: int) -> None:  # as `timeout` or a scheduler stops a batch
        written.append(fd)
        if len(written) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", terminated_at_the_second_file)
    assert main([*args, "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["gray16.tif"]  # the first; the second's temp file removed
    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    before = (out / "gray16.tif").stat().st_mtime_ns
    assert main([*args, "--skip-existing"]) == 0
    assert "Skipping 1 image(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["gray16.tif", "rgb16.tif", "rgb8.png"]
    assert (out / "gray16.tif").stat().st_mtime_ns == before  # left as it was
    assert main([*args, "--skip-existing", "--overwrite", "--quiet"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_deblur_overwrite_replaces_a_link_in_the_output_folder(tmp_path, victim, identity_model_path) -> None:
    src = tmp_path / "in" / "victim.png"
    src.parent.mkdir()
    write_image(src, np.zeros((16, 16), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "victim.png").symlink_to(victim)
    before = sha256_of(victim)
    args = ["deblur", str(src), "-o", str(out), "--model", str(identity_model_path), "--quiet"]
    assert main(args) == 2  # exists: needs --overwrite
    assert main([*args, "--overwrite"]) == 0
    assert sha256_of(victim) == before and not (out / "victim.png").is_symlink()
    np.testing.assert_array_equal(read_image(out / "victim.png"), np.zeros((16, 16), np.uint8))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "does not exist"),
        (lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt", "is not an image file (.png,"),
        (
            lambda d: (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage") and d / "broken.png",
            "Cannot read image",
        ),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(tmp_path, identity_model_path, capsys, make, message) -> None:
    path = make(tmp_path)
    code = main(["deblur", str(path), "-o", str(tmp_path / "o"), "--model", str(identity_model_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_16bit_colour_tiff_to_png_keeps_16_bits(images: Path, tmp_path: Path, identity_model_path: Path) -> None:
    out = tmp_path / "o"
    cmd = ["deblur", str(images / "rgb16.tif"), "-o", str(out), "--format", "png"]
    assert main([*cmd, "--model", str(identity_model_path), "--quiet"]) == 0
    np.testing.assert_array_equal(read_image(out / "rgb16.png"), read_image(images / "rgb16.tif"))


def test_formats_that_cannot_hold_an_image_are_refused_before_any_work(
    images: Path, tmp_path: Path, identity_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(images / "rgba.png", np.zeros((16, 16, 4), np.uint8))  # sorts after rgb8.png
    out = tmp_path / "o"
    cmd = ["deblur", str(images / "rgb8.png"), str(images / "rgba.png"), "-o", str(out), "--format", "jpg"]
    code = main([*cmd, "--model", str(identity_model_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "JPEG cannot hold 4 channels" in err and "rgba.jpg" in err and not out.exists()


def test_entry_point_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "napari_deblurgan", "deblur", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--tile-size" in done.stdout


def test_synthesize_then_evaluate(tmp_path: Path, identity_model_path: Path, capsys) -> None:
    sharp = tmp_path / "sharp"
    sharp.mkdir()
    write_image(sharp / "a.png", skimage.data.astronaut()[:64, :80])
    write_image(sharp / "b.png", skimage.data.camera()[:72, :64])
    pairs = tmp_path / "pairs"
    assert main(["synthesize", str(sharp), str(pairs), "--seed", "3", "--quiet"]) == 0
    assert sorted(p.name for p in (pairs / "A").iterdir()) == ["a.png", "b.png"]
    np.testing.assert_array_equal(read_image(pairs / "B" / "b.png"), read_image(sharp / "b.png"))
    assert not np.array_equal(read_image(pairs / "A" / "b.png"), read_image(sharp / "b.png"))
    assert main(["synthesize", str(sharp), str(pairs), "--quiet"]) == 2  # never overwrites
    capsys.readouterr()
    table = tmp_path / "scores.csv"
    assert main(["evaluate", str(pairs), "--model", str(identity_model_path), "--csv", str(table), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "standard SSIM" in printed and "full resolution" in printed
    rows = list(csv.DictReader(table.open()))
    assert [r["image"] for r in rows] == ["a.png", "b.png"]
    for r in rows:  # the identity model restores nothing: its scores are the blurred input's
        assert float(r["psnr"]) == pytest.approx(float(r["psnr_blurred"]), abs=0.01)
        assert float(r["psnr"]) < 40
    evaluate = ["evaluate", str(pairs), "--model", str(identity_model_path), "--csv", str(table), "--quiet"]
    table.write_text("mine")
    assert main(evaluate) == 2 and table.read_text() == "mine"  # refused before any work: the user's file stays
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*evaluate, "--overwrite", "--tile-size", "64"]) == 0 and table.read_text().startswith("image,")
    image = (pairs / "A" / "a.png").read_bytes()
    onto_input = ["evaluate", str(pairs), "--csv", str(pairs / "A" / "a.png"), "--overwrite", "--quiet"]
    assert main(onto_input) == 2 and (pairs / "A" / "a.png").read_bytes() == image  # even with --overwrite
    assert "one of the images evaluated" in capsys.readouterr().err
    assert main([*evaluate, "--csv", str(tmp_path), "--overwrite"]) == 2  # refused before the work, not after it
    assert "is a folder; name a file" in capsys.readouterr().err


def test_sample_writes_the_samples_and_never_half_a_set(tmp_path: Path, capsys) -> None:
    assert main(["sample", str(tmp_path / "new")]) == 0
    written = sorted(str(p.relative_to(tmp_path / "new")) for p in (tmp_path / "new").rglob("*.png"))
    assert written == ["clock_motion.png", "coffee_blurred.png", "ground_truth/coffee_blurred.png"]
    sharp, blurred = (
        read_image(tmp_path / "new" / p) for p in ("ground_truth/coffee_blurred.png", "coffee_blurred.png")
    )
    assert sharp.shape == blurred.shape and not np.array_equal(sharp, blurred)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "clock_motion.png").write_bytes(b"my own")
    assert main(["sample", str(mine)]) == 2
    assert "clock_motion.png" in capsys.readouterr().err
    assert [p.name for p in mine.rglob("*")] == ["clock_motion.png"] and (
        mine / "clock_motion.png"
    ).read_bytes() == b"my own"


def test_organize_gopro_links_pairs_with_scene_prefixes(tmp_path: Path, capsys) -> None:
    root = tmp_path / "GOPRO_Large"
    for scene in ("GOPR0372_07_00", "GOPR0384_11_01"):
        for sub in ("blur", "sharp"):
            (root / "train" / scene / sub).mkdir(parents=True)
            write_image(root / "train" / scene / sub / "000047.png", np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "ab"
    assert main(["organize-gopro", str(root), str(out), "--quiet"]) == 0
    assert sorted(p.name for p in (out / "A").iterdir()) == ["GOPR0372_07_00_000047.png", "GOPR0384_11_01_000047.png"]
    assert (out / "B" / "GOPR0372_07_00_000047.png").is_file()
    (root / "test" / "GOPR0384_11_00" / "blur").mkdir(parents=True)  # a whole GOPRO_Large: its test scenes too
    assert main(["organize-gopro", str(root), str(tmp_path / "mixed"), "--quiet"]) == 2
    assert "holds train/ and test/ scenes" in capsys.readouterr().err and not (tmp_path / "mixed").exists()


def test_train_help_shows_the_defaults_of_train_config(capsys) -> None:
    from napari_deblurgan.cli import TRAIN_FLAG_DEFAULTS
    from napari_deblurgan.gan.training.train import TrainConfig

    assert {k: getattr(TrainConfig(), k) for k in TRAIN_FLAG_DEFAULTS} == TRAIN_FLAG_DEFAULTS
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "(default 1000)" in " ".join(capsys.readouterr().out.split())


def test_train_resume_and_export(tmp_path: Path, capsys) -> None:
    sharp = tmp_path / "sharp"
    sharp.mkdir()
    write_image(sharp / "a.png", skimage.data.astronaut()[:100, :100])
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "validate_every": 2}))
    run = tmp_path / "run"
    base = ["train", str(sharp), "--out", str(run), "--config", str(recipe), "--quiet"]
    assert main([*base, "--steps", "2"]) == 0
    assert main([*base, "--steps", "2"]) == 2  # the folder holds a run: refuse to clobber it
    assert main([*base, "--steps", "4", "--resume"]) == 0
    assert "step 4" in capsys.readouterr().out
    assert main(["export", str(run), str(tmp_path / "m.safetensors")]) == 0
    from napari_deblurgan.gan.model.weights import read_metadata

    assert read_metadata(tmp_path / "m.safetensors")["step"] == "4"
    assert main(["export", str(run), str(tmp_path / "half.safetensors"), "--half"]) == 0
    full, half = (tmp_path / "m.safetensors").stat().st_size, (tmp_path / "half.safetensors").stat().st_size
    assert half < 0.6 * full  # the header (architecture, recipe) is the same size in both


def test_export_writes_the_weight_average_the_run_validated_or_the_raw_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    sharp = tmp_path / "sharp"
    sharp.mkdir()
    write_image(sharp / "a.png", skimage.data.astronaut()[:100, :100])
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "ema": 0.9, "lr": 1e-2}))
    run = tmp_path / "run"
    assert main(["train", str(sharp), "--out", str(run), "--config", str(recipe), "--steps", "4", "--quiet"]) == 0
    assert main(["export", str(run), str(tmp_path / "avg.safetensors")]) == 0
    assert main(["export", str(run), str(tmp_path / "raw.safetensors"), "--weights", "raw"]) == 0
    own, avg, raw = (load_file(str(p)) for p in (run / "generator.safetensors", tmp_path / "avg.safetensors",
                                                 tmp_path / "raw.safetensors"))  # fmt: skip
    assert all(torch.equal(own[k], avg[k]) for k in own)  # the run's own model file is its average
    assert any(not torch.equal(avg[k], raw[k]) for k in avg)


def test_train_set_reaches_every_option_overrides_the_recipe_and_branches_a_resume(tmp_path: Path) -> None:
    from napari_deblurgan.gan.io.checkpoint import load_checkpoint

    sharp = tmp_path / "sharp"
    sharp.mkdir()
    write_image(sharp / "a.png", skimage.data.astronaut()[:100, :100])
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "steps": 2, "max_noise": 0.05}))
    run = tmp_path / "run"
    base = ["train", str(sharp), "--out", str(run), "--config", str(recipe), "--quiet"]
    settings = ["max-noise=0", "betas=[0.9, 0.99]", 'generator={"ngf": 4, "n_blocks": 1}', "channels_last=false"]
    assert main([*base, "--steps", "2", *(arg for s in settings for arg in ("--set", s))]) == 0
    saved = json.loads(load_checkpoint(run / "checkpoint.pt")["config"])
    assert saved["max_noise"] == 0 and saved["betas"] == [0.9, 0.99] and saved["generator"]["ngf"] == 4
    assert saved["channels_last"] is False and saved["steps"] == 2
    assert main([*base, "--resume", "--set", "steps=3", "--set", "log_every=1"]) == 0
    saved = json.loads(load_checkpoint(run / "checkpoint.pt")["config"])
    assert (saved["steps"], saved["log_every"], saved["max_noise"]) == (3, 1, 0)  # the rest is the saved recipe


def test_train_until_stops_with_a_checkpoint_and_resume_flags_branch_the_run(tmp_path: Path, capsys) -> None:
    from napari_deblurgan.gan.io.checkpoint import load_checkpoint

    sharp = tmp_path / "sharp"
    sharp.mkdir()
    write_image(sharp / "a.png", skimage.data.astronaut()[:100, :100])
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "checkpoint_every": 100, "steps": 6, "adv_start": 3}))
    run = tmp_path / "run"
    base = ["train", str(sharp), "--out", str(run), "--config", str(recipe), "--quiet"]
    assert main([*base, "--until", "3", "--ema", "0.9"]) == 0
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 3 and json.loads(state["config"])["steps"] == 6  # the schedule still spans 6 steps
    assert json.loads(state["config"])["ema"] == 0.9 and state["ema"]["n_averaged"] == 3
    assert main([*base, "--resume", "--adv-weight", "0.1"]) == 0
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 6 and json.loads(state["config"])["adv_weight"] == 0.1 and state["critic"]
    capsys.readouterr()
    assert main([*base, "--until", "2", "--resume"]) == 0  # already past it: not one step more
    assert "Already at step 6 (--until 2)" in capsys.readouterr().out
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 6
    assert main([*base, "--until", "0", "--resume"]) == 2
    assert "--until" in capsys.readouterr().err


def test_train_never_overwrites_another_runs_outputs_and_init_starts_a_stage(tmp_path: Path, capsys) -> None:
    sharp = tmp_path / "sharp"
    sharp.mkdir()
    write_image(sharp / "a.png", skimage.data.astronaut()[:100, :100])
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "steps": 2}))
    first = tmp_path / "first"
    base = ["train", str(sharp), "--config", str(recipe), "--quiet"]
    assert main([*base, "--out", str(first)]) == 0
    (first / "checkpoint.pt").unlink()  # a folder that keeps a model and a log, like training/stage1
    model, log = (first / "generator.safetensors").read_bytes(), (first / "metrics.csv").read_text()
    for extra in ([], ["--resume"]):
        assert main([*base, "--out", str(first), *extra]) == 2
        err = capsys.readouterr().err
        assert "metrics.csv of another run" in err or "metrics.csv was not written by" in err, err
    assert (first / "generator.safetensors").read_bytes() == model and (first / "metrics.csv").read_text() == log
    failed = tmp_path / "failed"  # a run that failed at its first step leaves only the log's header: retry works
    failed.mkdir()
    (failed / "metrics.csv").write_text(log.splitlines()[0] + "\n")
    assert main([*base, "--out", str(failed)]) == 0
    killed = tmp_path / "killed"  # killed before its first checkpoint: only a log of lost steps
    killed.mkdir()
    (killed / "metrics.csv").write_text(log)
    capsys.readouterr()
    for extra in (["--resume"], []):
        with pytest.warns(UserWarning, match="stopped before its first checkpoint"):
            assert main([*base, "--out", str(killed), *extra]) == 0
        (killed / "checkpoint.pt").unlink()
        (killed / "generator.safetensors").unlink()
    assert (killed / "metrics-stopped-1.csv").read_text() == log and (killed / "metrics-stopped-2.csv").is_file()
    second = tmp_path / "second"
    assert main([*base, "--out", str(second), "--resume", "--init", str(first / "generator.safetensors")]) == 0
    assert "starts at step 0" in capsys.readouterr().err
    from napari_deblurgan.gan.model.weights import read_metadata

    assert json.loads(read_metadata(second / "generator.safetensors")["recipe"])["init"] == str(
        first / "generator.safetensors"
    )


def test_a_grayscale_tiff_stack_three_pixels_wide_stays_grayscale(tmp_path: Path, tiny_model_path: Path) -> None:
    import tifffile

    from napari_deblurgan import deblur
    from napari_deblurgan.gan.io.images import channel_axis_of

    stack = np.random.default_rng(2).integers(0, 256, (5, 40, 3), dtype=np.uint8)  # (Z, Y, X), X = 3
    tifffile.imwrite(tmp_path / "z.tif", stack, metadata={"axes": "ZYX"})
    assert main(["deblur", str(tmp_path / "z.tif"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path)]) == 0
    expected = deblur(stack, tiny_model_path, rgb=False)  # five 40x3 planes, not one 5x40 colour image
    written = read_image(tmp_path / "out" / "z.tif")
    np.testing.assert_array_equal(written, expected)
    assert channel_axis_of(tmp_path / "out" / "z.tif") is None  # written as pages, not as RGB
    assert not np.array_equal(expected, deblur(stack, tiny_model_path, rgb=True))  # the two readings differ


TIFF_LAYOUTS = [
    ("SYX", (3, 24, 20), "rgb", "separate"),
    ("ZYXS", (4, 24, 20, 2), "minisblack", "contig"),
    ("ZSYX", (2, 4, 24, 20), "rgb", "separate"),
    ("YXS", (24, 20, 5), "minisblack", "contig"),
]


@pytest.mark.parametrize(("axes", "shape", "photometric", "planar"), TIFF_LAYOUTS)
def test_tiff_channels_keep_their_layout(tmp_path: Path, identity_model_path: Path, axes, shape, photometric, planar):
    import tifffile

    image = np.random.default_rng(4).integers(0, 65536, shape, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", image, photometric=photometric, planarconfig=planar, metadata={"axes": axes})
    out = tmp_path / "out"
    cmd = ["deblur", str(tmp_path / "in.tif"), "-o", str(out), "--model", str(identity_model_path), "--quiet"]
    assert main(cmd) == 0
    with tifffile.TiffFile(out / "in.tif") as tif:
        assert tif.series[0].axes.replace("Q", "Z") == axes.replace("Q", "Z")  # channels stay channels
        np.testing.assert_array_equal(tif.series[0].asarray(), image)  # the identity model: bit for bit


def test_ctrl_c_saves_at_a_step_boundary_like_a_straight_run(tmp_path: Path, monkeypatch, capsys) -> None:
    import os
    import signal

    import torch

    from napari_deblurgan.gan.io.checkpoint import load_checkpoint
    from napari_deblurgan.gan.training import train as train_module

    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "steps": 10, "checkpoint_every": 100}))
    base = ["train", "skimage", "--config", str(recipe), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "straight"), "--until", "3"]) == 0
    train_step = train_module.Trainer.train_step

    def interrupted_step(self):  # Ctrl-C arrives in the middle of step 3
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return train_step(self)

    monkeypatch.setattr(train_module.Trainer, "train_step", interrupted_step)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a shell's background job
    with pytest.raises(SystemExit) as stopped:
        main([*base, "--out", str(tmp_path / "stopped")])
    assert stopped.value.code == 130 and "Interrupted at step 3" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    straight, stopped_state = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("straight", "stopped"))
    assert stopped_state["step"] == straight["step"] == 3
    for name, value in straight["generator"].items():
        assert torch.equal(value, stopped_state["generator"][name]), name


def test_gif_and_webp_inputs_are_deblurred_into_formats_that_keep_the_result(tmp_path, identity_model_path, capsys):
    import imageio.v3 as iio

    frames = np.stack([skimage.data.astronaut()[8 * i : 32 + 8 * i, :40] for i in range(3)])  # GIF merges equal frames
    (tmp_path / "in").mkdir()
    iio.imwrite(tmp_path / "in" / "clip.gif", frames, extension=".gif", loop=0)
    iio.imwrite(tmp_path / "in" / "still.webp", frames[0], extension=".webp", lossless=True)
    base = ["deblur", str(tmp_path / "in"), "--model", str(identity_model_path), "--quiet", "-o"]
    assert main([*base, str(tmp_path / "default")]) == 0  # never written as GIF (256 colours): PNG, TIFF if animated
    assert sorted(p.name for p in (tmp_path / "default").iterdir()) == ["clip.tif", "still.png"]
    assert main([*base, str(tmp_path / "out"), "--format", "tif"]) == 0
    assert read_image(tmp_path / "out" / "clip.tif").shape == (3, 32, 40, 3)
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "still.tif"), frames[0])
    assert main([*base, str(tmp_path / "jpg"), "--format", "jpg"]) == 2  # an animation needs a stack format
    assert "write it as .tif" in capsys.readouterr().err


def test_value_range_for_12_bit_data_in_16_bit_files(tmp_path: Path, tiny_model_path: Path, capsys) -> None:
    from napari_deblurgan import deblur

    image = skimage.data.camera()[:64, :80].astype(np.uint16) * 16 + 7  # 12-bit values
    write_image(tmp_path / "in" / "x.tif", image)
    base = ["deblur", str(tmp_path / "in" / "x.tif"), "--model", str(tiny_model_path), "--quiet"]
    assert main([*base, "-o", str(tmp_path / "auto"), "--value-range", "auto"]) == 0
    assert main([*base, "-o", str(tmp_path / "fixed"), "--value-range", "0,4095"]) == 0
    auto, fixed = (read_image(tmp_path / name / "x.tif") for name in ("auto", "fixed"))
    low, high = float(image.min()), float(image.max())
    own = (low - 0.1 * (high - low), high + 0.1 * (high - low))  # min..max with a 10 % margin for overshoot
    np.testing.assert_array_equal(auto, deblur(image, tiny_model_path, value_range=own))
    np.testing.assert_array_equal(fixed, deblur(image, tiny_model_path, value_range=(0, 4095)))
    with pytest.raises(SystemExit):
        main([*base, "-o", str(tmp_path / "bad"), "--value-range", "4095,0"])
    assert "HI must be larger than LO" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "narrow"), "--value-range", "-1000,3000"]) == 0  # negative LO, no '='
    err = capsys.readouterr().err
    assert f"holds values {image.min()}..{image.max()}, outside --value-range -1000,3000" in err and "clipped" in err
    assert read_image(tmp_path / "narrow" / "x.tif").max() <= 3000
    for infinite in ("0,inf", "-inf,1", "nan,1"):  # wrote black images with exit 0
        with pytest.raises(SystemExit):
            main([*base, "-o", str(tmp_path / "bad"), f"--value-range={infinite}"])
        assert "must be finite numbers" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# -- a training run's faults, each reported in one line (the trainer's side: test_train_faults.py) ------------

FAULT_RECIPE = {
    **TINY_RECIPE,
    "checkpoint_every": 2,
    "log_every": 1,
    "steps": 100_000,  # never reached: the run fails first
    "decay_start": 1.0,
}


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(FAULT_RECIPE))
    return path


def test_cli_reports_oom_in_one_line_after_saving(tmp_path, sharp, recipe, monkeypatch, capsys) -> None:
    fail_train_step_at(monkeypatch, 4, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    run = tmp_path / "run"
    code = main(["train", str(sharp), "--out", str(run), "--config", str(recipe), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "out of memory at step 4" in err and "e.g. batch size 1;" in err and str(run) in err  # crop 32 is minimal
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 3
    assert np.isfinite(next(iter(load_generator(run / "generator.safetensors").parameters())).detach()).all()


def test_cli_reports_a_diverged_run_in_one_line(tmp_path, sharp, recipe, monkeypatch, capsys) -> None:
    from napari_deblurgan.gan.data.batches import SyntheticPairs

    real = SyntheticPairs.batch

    def nan_batch(self: SyntheticPairs, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        blurred, sharp_ = real(self, step, rank)
        return blurred * float("nan"), sharp_

    monkeypatch.setattr(SyntheticPairs, "batch", nan_batch)
    run = ["train", str(sharp), "--out", str(tmp_path / "run"), "--config", str(recipe), "--device", "cpu"]
    code = main([*run, "--steps", "40"])  # the recipe's 100,000 steps would hide a missed divergence
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("napari-deblurgan train: error: Training diverged"), err
