"""The photo corpus: built from a (small, fake) Debian package, it keeps sharp photos and records why the
others were left out; the split never changes; the pack fits its budget."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from napari_deblurgan.gan.data import corpus
from napari_deblurgan.gan.data.corpus import build_corpus, largest_rectangle, read_manifest, split_of, write_pack

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian or Ubuntu)")


def _photo(seed: int, shape=(500, 600)) -> np.ndarray:
    """A sharp 'photo': fine structures at full contrast."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.standard_normal((*shape, 3)), (1.0, 1.0, 0))
    return np.round(np.clip(0.5 + 0.25 * x / x.std(), 0, 1) * 255).astype(np.uint8)


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def _fake_package(cache: Path, files: dict[str, bytes]) -> None:
    """fakephotos_1.0_all.deb in ``cache`` holding ``files`` and a DEP-5 copyright file."""
    root = cache / "build"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: fakephotos\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@e.org>\nDescription: test\n"
    )
    doc = root / "usr/share/doc/fakephotos"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nCopyright: someone\nLicense: CC-BY-SA-4.0\n")
    for name, data in files.items():
        path = root / "usr/share/fakephotos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(cache / "fakephotos_1.0_all.deb")],
                   check=True, capture_output=True)  # fmt: skip
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("corpus")
    sharp = _photo(1)
    soft = gaussian_filter(sharp.astype(float), (3, 3, 0))
    soft = np.clip(128 + (soft - soft.mean()) * 4, 0, 255).astype(np.uint8)  # full contrast, soft edges
    drawing = np.zeros((500, 600, 4), np.uint8)
    drawing[100:400, 100:500] = (255, 120, 0, 255)
    flat = np.zeros((500, 600, 3), np.uint8)
    flat[:, 300:] = (20, 200, 90)
    flat[200:260] = 240
    half_soft = _photo(3).copy()
    half_soft[:, 384:] = gaussian_filter(half_soft[:, 384:].astype(float), (4, 4, 0)).astype(np.uint8) * 3 // 2
    files = {
        "sharp.jpg": _jpeg(sharp),
        "sharp_small_copy.jpg": _jpeg(np.asarray(Image.fromarray(sharp).resize((480, 400), Image.LANCZOS))),
        "marked.jpg": _jpeg(_photo(2)),
        "soft.jpg": _jpeg(soft),
        "drawing.png": _png(drawing),
        "flat.png": _png(flat),
        "tiny.jpg": _jpeg(_photo(4, (200, 200))),
        "half_soft.png": _png(half_soft),
    }
    cache = tmp / "debs"
    cache.mkdir()
    _fake_package(cache, files)
    mp = pytest.MonkeyPatch()
    mp.setitem(corpus.LOOKED_AT, "fakephotos/usr/share/fakephotos/marked.jpg", "exclude: soft (looked at)")
    mp.setattr(corpus, "SKIMAGE_PHOTOS", ("camera",))
    try:
        build_corpus(tmp / "out", cache, packages={"fakephotos": r"usr/share/fakephotos/.+"})
    finally:
        mp.undo()
    return tmp / "out"


def test_sharp_photos_are_kept_and_every_other_file_says_why_not(built: Path) -> None:
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in read_manifest(built)}
    assert rows["sharp.jpg"]["status"] == "keep"
    assert rows["marked.jpg"]["status"] == "exclude: soft (looked at)"  # a file marked soft is left out
    assert rows["soft.jpg"]["status"].startswith("soft (blur measure")
    assert rows["drawing.png"]["status"] == "transparent: a drawing"
    assert rows["flat.png"]["status"] == "mostly flat: an illustration"
    assert rows["tiny.jpg"]["status"].startswith("smaller than")
    assert rows["sharp_small_copy.jpg"]["status"].startswith("exclude: near-duplicate of fakephotos/")
    kept = [r for r in rows.values() if r["status"] == "keep"]
    for r in (r for r in kept if r["source"] != "skimage.data.camera"):
        assert r["package"] == "fakephotos" and r["version"] == "1.0" and r["licence"] == "CC-BY-SA-4.0"
        assert (built / r["file"]).is_file() and r["split"] == split_of(r["source"])
    files = {p.name for p in built.rglob("*.png") if ".debs" not in p.parts}
    assert "fakephotos_marked.png" not in files and "fakephotos_soft.png" not in files
    assert any(r["source"] == "skimage.data.camera" and r["file"] == "test/skimage_camera.png" for r in kept)


def test_a_partly_soft_photo_is_cropped_to_its_sharp_part(built: Path) -> None:
    row = next(r for r in read_manifest(built) if r["source"].endswith("half_soft.png"))
    assert row["status"] == "keep" and row["crop"] == "0:500,0:384"
    with Image.open(built / row["file"]) as im:
        assert im.size == (384, 500)


def test_a_second_build_gives_the_same_corpus(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    mp = pytest.MonkeyPatch()
    mp.setitem(corpus.LOOKED_AT, "fakephotos/usr/share/fakephotos/marked.jpg", "exclude: soft (looked at)")
    mp.setattr(corpus, "SKIMAGE_PHOTOS", ("camera",))
    try:
        build_corpus(again, built / ".." / "debs", packages={"fakephotos": r"usr/share/fakephotos/.+"})
    finally:
        mp.undo()
    assert read_manifest(again) == read_manifest(built)
    for f in (built / "train").glob("*.png"):
        assert (again / "train" / f.name).read_bytes() == f.read_bytes()


def test_the_pack_fits_its_budget_or_says_it_cannot(built: Path, tmp_path: Path) -> None:
    (built / "train").mkdir(exist_ok=True)
    Image.fromarray(_photo(9)).save(built / "train" / "extra.png")  # the split may be empty by chance
    try:
        pack = write_pack(built, tmp_path / "pack", budget=1 << 20)
        photos = [f for f in pack.iterdir() if f.name != corpus.PACK_MARKER]
        assert sum(f.stat().st_size for f in pack.iterdir()) <= 1 << 20 and all(f.suffix == ".jpg" for f in photos)
        with pytest.raises(ValueError, match="do not fit"):
            write_pack(built, tmp_path / "pack2", budget=1000)
    finally:
        (built / "train" / "extra.png").unlink()
    # packed again: its own photos are replaced (extra.png's is gone), a photo the user put there is kept
    (pack / "holiday.jpg").write_bytes(b"the user's")
    write_pack(built, pack, budget=1 << 20)
    assert not (pack / "extra.jpg").exists() and (pack / "holiday.jpg").read_bytes() == b"the user's"
    # a pack made before packs listed their photos (its own photos only) is packed again
    (pack / "holiday.jpg").unlink()
    (pack / corpus.PACK_MARKER).unlink()
    assert write_pack(built, pack, budget=1 << 20) == pack and (pack / corpus.PACK_MARKER).is_file()


def test_a_pack_into_a_folder_of_other_files_is_refused(built: Path, tmp_path: Path) -> None:
    (tmp_path / "Pictures").mkdir()
    (tmp_path / "Pictures" / "holiday.jpg").write_bytes(b"the user's")
    with pytest.raises(FileExistsError, match="no pack wrote"):
        write_pack(built, tmp_path / "Pictures")
    assert [f.name for f in (tmp_path / "Pictures").iterdir()] == ["holiday.jpg"]


def test_a_failed_download_says_to_update_the_package_lists(tmp_path: Path) -> None:
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get")

    class Result:
        stderr = "E: Unable to locate package nosuchpackage"

    with pytest.raises(OSError, match="apt-get update"):
        corpus.download_packages(["nosuchpackage"], tmp_path, run=lambda *a, **k: Result())


def test_a_machine_without_apt_get_gets_one_line_from_the_command(tmp_path: Path, monkeypatch, capsys) -> None:
    from napari_deblurgan.cli import main

    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    assert main(["corpus", str(tmp_path / "corpus"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get is needed" in err


def test_largest_rectangle() -> None:
    ok = np.array([[1, 1, 0, 1], [1, 1, 1, 1], [1, 1, 1, 0]], bool)
    assert largest_rectangle(ok) == (0, 0, 3, 2)
    assert largest_rectangle(np.zeros((2, 2), bool)) == (0, 0, 0, 0)


def test_splits_are_stable_and_about_the_asked_shares() -> None:
    names = [f"pkg/photo{i}.jpg" for i in range(2000)]
    splits = [split_of(n) for n in names]
    assert splits == [split_of(n) for n in names]
    assert 0.07 < splits.count("test") / 2000 < 0.13 and 0.07 < splits.count("val") / 2000 < 0.13


def test_a_folder_of_other_files_is_refused_and_a_rebuild_touches_only_its_own(built: Path, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.png").write_bytes(b"not the corpus's")
    with pytest.raises(FileExistsError, match="no corpus manifest"):
        build_corpus(tmp_path / "mine", built / ".." / "debs", packages={"fakephotos": r"usr/share/fakephotos/.+"})
    assert (tmp_path / "mine" / "holiday.png").read_bytes() == b"not the corpus's"
    assert corpus._previous_build(built) == [r["file"] for r in read_manifest(built) if r["file"]]


def test_a_rebuild_deletes_only_split_photos_its_manifest_lists(built: Path, tmp_path: Path) -> None:
    other = tmp_path / "dataset"
    other.mkdir()
    (tmp_path / "victim.txt").write_text("the user's")
    (other / "manifest.csv").write_text("file,label\n../victim.txt,cat\n")  # someone else's manifest
    with pytest.raises(FileExistsError, match="not a corpus manifest"):
        build_corpus(other, built / ".." / "debs", packages={"fakephotos": r"usr/share/fakephotos/.+"})
    columns = ",".join(corpus.MANIFEST_COLUMNS)
    (other / "manifest.csv").write_text(f"{columns}\n../victim.txt{',' * (len(corpus.MANIFEST_COLUMNS) - 1)}\n")
    assert corpus._previous_build(other) == []  # a path out of the corpus is never the build's own
    assert (tmp_path / "victim.txt").read_text() == "the user's"


def test_the_command_builds_and_packs(built: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from napari_deblurgan.cli import main

    monkeypatch.setattr(corpus, "SOURCES", {"fakephotos": r"usr/share/fakephotos/.+"})
    monkeypatch.setattr(corpus, "SKIMAGE_PHOTOS", ("camera",))
    monkeypatch.setitem(corpus.LOOKED_AT, "fakephotos/usr/share/fakephotos/marked.jpg", "exclude: soft (looked at)")
    for quiet in ([], ["--quiet"]):
        out = tmp_path / f"cli{len(quiet)}"
        args = ["corpus", str(out), "--cache", str(built / ".." / "debs"), "--pack", str(out / "pack"), *quiet]
        assert main(args) == 0
        printed = capsys.readouterr().out
        assert "sharp photos (" in printed and "Training pack:" in printed
        assert ("fakephotos: " in printed) != bool(quiet)  # progress lines only without --quiet
        assert read_manifest(out) == read_manifest(built)
