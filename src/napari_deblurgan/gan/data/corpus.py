"""A corpus of sharp photographs rebuilt offline from Debian packages (and scikit-image's photos).

``build_corpus(dest)`` downloads the packages of :data:`SOURCES` with ``apt-get download`` (no root
needed once the package lists are updated), unpacks them with ``dpkg -x``, cuts the photos out
(plain files, WebP images packed in Qt resource files, the largest JPEG of each Edje file), and keeps
the sharp ones:

- illustrations go: images with transparency, with large flat areas, or named in :data:`LOOKED_AT`;
- each photo is downscaled to at most :data:`WORK_SIDE` px (sharper per pixel) and scored per 128 px
  tile with Crete's blur measure (:func:`skimage.measure.blur_effect`, 0 sharp .. 1 blurred);
  the photo's score is its sharpest textured tiles' (10th percentile), and soft photos go;
- where only part of a photo is sharp, it is cropped to the largest rectangle of sharp (or smooth) tiles;
- near-duplicates (same picture at another size) keep their largest copy;
- the split (train/val/test) follows a hash of the source name, so it never changes.

Every decision is recorded in ``manifest.csv``: package, version, licence, the source file, its sha256,
score, crop and split, or why it was left out. Nothing here is committed: the command rebuilds it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

#: Longest side of a corpus photo, px: about GOPRO's frame width; wallpapers of 4-6k px come out
#: two to five times sharper per pixel than their files.
WORK_SIDE = 1280
TILE = 128
#: A photo is sharp when the 10th percentile of its textured tiles' blur measure is at most this.
SHARP_SCORE = 0.33
#: Tiles above this blur measure that hold edges are soft: a photo is cropped to keep none. Smooth
#: tiles (sky, water, a defocused background) hold no edges to learn from and are not judged.
SOFT_TILE = 0.45
SMOOTH_TILE = 0.015  # mean absolute gradient (0..2) under which a tile counts as smooth
TEXTURED_TILE = 0.01  # ... and over which it is textured enough to score
MAX_FLAT_SHARE = 0.5  # more of the image flat than this: an illustration
MIN_SIDE = 384  # photos (or sharp crops) smaller than this on either side are left out
SPLIT_SHARES = {"test": 0.1, "val": 0.1}  # the rest trains

#: Debian packages that hold sharp photographs, and which of their files to look at.
SOURCES: dict[str, str] = {
    "tuxtype-data": r"usr/share/tuxtype/images/(kcas\d+|backgrounds/\d+)\.jpg",
    "plasma-workspace-wallpapers": r"usr/share/wallpapers/[^/]+/contents/images/[^/]+\.(jpg|png)",
    "lomiri-wallpapers": r"usr/share/backgrounds/[^/]+\.(jpg|png)",
    "lomiri-wallpapers-16.04": r"usr/share/backgrounds/[^/]+\.(jpg|png)",
    "lomiri-wallpapers-20.04": r"usr/share/backgrounds/[^/]+\.(jpg|png)",
    "gcompris-qt-data": r"usr/share/gcompris-qt/rcc/[^/]+\.rcc",
    "mate-backgrounds": r"usr/share/backgrounds/mate/nature/[^/]+\.jpg",
    "tuxpaint-data": r"usr/share/tuxpaint/templates/[^/]+\.jpg",
    "enlightenment-data": r"usr/share/enlightenment/data/backgrounds/[^/]+\.edj",
    "opencv-doc": r"usr/share/doc/opencv-doc/examples/(data/([^/]+\.jpg|(basketball1|graf1)\.png)|text/scene.+\.jpg)",
}

_RCC = "gcompris-qt-data/usr/share/gcompris-qt/rcc/"
_KDE = "plasma-workspace-wallpapers/usr/share/wallpapers/"
_E = "enlightenment-data/usr/share/enlightenment/data/backgrounds/"
_CV = "opencv-doc/usr/share/doc/opencv-doc/examples/data/"

#: Decisions taken by looking at the photos, where the measures alone would decide otherwise: by source
#: key, or by a folder (a key ending in "/": a wallpaper, whichever of its sizes is the largest file).
LOOKED_AT: dict[str, str] = {
    **{f"{_RCC}babyshapes.rcc#webp{i}": "exclude: painting with holes" for i in (13, 16, 17, 26)},
    **{f"{_RCC}{name}": "exclude: painting" for name in ("babyshapes.rcc#webp38", "details.rcc#webp43")},
    **{f"{_RCC}details.rcc#webp{i}": "exclude: painting" for i in (50, 60)},
    f"{_CV}starry_night.jpg": "exclude: painting",
    f"{_CV}Blender_Suzanne1.jpg": "exclude: rendering",
    f"{_CV}Blender_Suzanne2.jpg": "exclude: rendering",
    f"{_KDE}Autumn/": "exclude: illustration",
    f"{_KDE}SafeLanding/": "exclude: illustration",
    f"{_KDE}Honeywave/": "exclude: rendering",
    f"{_KDE}summer_1am/": "exclude: soft",
    # photos whose content is smooth (fog, glossy cups, lanterns, leaves), sharp where they have edges
    f"{_KDE}Grey/": "include: sharp, smooth content",
    f"{_KDE}ColorfulCups/": "include: sharp, smooth content",
    f"{_E}Sea-of-Lanterns.edj#jpeg4": "include: sharp, smooth content",
    f"{_E}Green-Maple.edj#jpeg4": "include: sharp, smooth content",
}


def looked_at(key: str) -> str:
    """The decision :data:`LOOKED_AT` holds for a source key ("" for none)."""
    if key in LOOKED_AT:
        return LOOKED_AT[key]
    return next((v for k, v in LOOKED_AT.items() if k.endswith("/") and key.startswith(k)), "")


#: Calibration shots (the same chessboard 26 times) and stereo twins: one of each set is enough.
DUPLICATE_SETS = re.compile(r"opencv-doc/.*/data/((left|right)\d\d|right|aloeR|graf3|leuvenB|ela_modified)\.")

#: scikit-image's photographs (its other images are text, micrographs or drawings), split as
#: :data:`.batches.SKIMAGE_SPLITS` splits them.
SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "gravel", "brick", "grass")


@dataclass
class Candidate:
    """One image found in a package, before any decision."""

    key: str  # "package/path[#webpN|#jpegN]": stable, names the split
    package: str
    data: bytes
    record: dict[str, object] = field(default_factory=dict)  # its manifest row, once assessed


def split_of(key: str) -> str:
    """ "train", "val" or "test" from a hash of ``key``: the same for a photo forever."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for name, share in SPLIT_SHARES.items():
        edge += share
        if u < edge:
            return name
    return "train"


def download_packages(packages: list[str], cache: Path, run: Callable[..., object] = subprocess.run) -> dict[str, Path]:
    """``apt-get download`` each package into ``cache`` (kept: a second build downloads nothing)."""
    cache.mkdir(parents=True, exist_ok=True)
    debs = {}
    for pkg in packages:
        found = sorted(cache.glob(f"{pkg}_*.deb"))
        if not found:
            if shutil.which("apt-get") is None:
                raise OSError("the corpus is built from Debian packages: apt-get is needed (Debian or Ubuntu)")
            result = run(["apt-get", "download", pkg], cwd=cache, capture_output=True, text=True)
            found = sorted(cache.glob(f"{pkg}_*.deb"))
            if not found:
                reason = (getattr(result, "stderr", "") or "").strip().splitlines()[-1:] or ["no .deb written"]
                raise OSError(
                    f"apt-get download {pkg} failed ({reason[0]}); update the package lists once "
                    "(sudo apt-get update) and run the command again"
                )
        debs[pkg] = found[-1]
    return debs


def unpack(deb: Path, into: Path) -> Path:
    """``dpkg -x`` a package once; returns its folder."""
    done = into / ".unpacked"
    if not done.exists():
        if shutil.which("dpkg") is None:
            raise OSError("the corpus is built from Debian packages: dpkg is needed (Debian or Ubuntu)")
        into.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(into)], check=True)
        done.touch()
    return into


def embedded_images(path: Path) -> Iterator[tuple[str, bytes]]:
    """(suffix, bytes) of the images in a file: the file itself, each WebP in a Qt resource file, or
    the largest JPEG in an Edje file."""
    data = path.read_bytes()
    if path.suffix == ".rcc":
        for i, m in enumerate(re.finditer(rb"RIFF(....)WEBPVP8", data, re.S)):
            size = int.from_bytes(m.group(1), "little") + 8
            yield f"#webp{i}", data[m.start() : m.start() + size]
    elif path.suffix == ".edj":
        starts = [m.start() for m in re.finditer(rb"\xff\xd8\xff", data)]
        best: tuple[int, bytes] | None = None
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else len(data)
            end = data.rfind(b"\xff\xd9", start, stop)
            if end > start and (best is None or end + 2 - start > len(best[1])):
                best = (i, data[start : end + 2])
        if best is not None:
            yield f"#jpeg{best[0]}", best[1]
    else:
        yield "", data


def package_candidates(package: str, root: Path, pattern: str) -> Iterator[Candidate]:
    """The images a package holds at paths matching ``pattern``; for a wallpaper with several sizes
    only the largest file."""
    rx = re.compile(pattern)
    paths = sorted(p for p in root.rglob("*") if p.is_file() and rx.fullmatch(p.relative_to(root).as_posix()))
    largest: dict[str, Path] = {}
    for p in paths:
        group = p.parent.as_posix() if "/contents/images/" in p.as_posix() else p.as_posix()
        if group not in largest or p.stat().st_size > largest[group].stat().st_size:
            largest[group] = p
    for p in sorted(largest.values()):
        for suffix, data in embedded_images(p):
            yield Candidate(f"{package}/{p.relative_to(root).as_posix()}{suffix}", package, data)


def tile_scores(gray: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Crete blur measure and mean absolute gradient of each ``TILE`` x ``TILE`` tile."""
    from skimage.measure import blur_effect

    ny, nx = gray.shape[0] // TILE, gray.shape[1] // TILE
    blur, detail = np.ones((ny, nx)), np.zeros((ny, nx))
    for i in range(ny):
        for j in range(nx):
            t = gray[i * TILE : (i + 1) * TILE, j * TILE : (j + 1) * TILE]
            detail[i, j] = np.abs(np.diff(t, axis=0)).mean() + np.abs(np.diff(t, axis=1)).mean()
            blur[i, j] = blur_effect(t)
    return blur, detail


def largest_rectangle(ok: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive, of the largest all-True rectangle of a boolean grid."""
    best, box = 0, (0, 0, 0, 0)
    heights = np.zeros(ok.shape[1], dtype=int)
    for row in range(ok.shape[0]):
        heights = np.where(ok[row], heights + 1, 0)
        for left in range(ok.shape[1]):
            low = heights[left]
            for right in range(left, ok.shape[1]):
                low = min(low, heights[right])
                if low == 0:
                    break
                if low * (right - left + 1) > best:
                    best, box = low * (right - left + 1), (row - low + 1, left, row + 1, right + 1)
    return box


def flat_share(gray: NDArray[np.float32]) -> float:
    """Share of pixels whose neighbours differ by under 1 grey level (8 bits): large in illustrations."""
    d = np.abs(np.diff(gray, axis=1))[:-1] + np.abs(np.diff(gray, axis=0))[:, :-1]
    return float((d < 1 / 255).mean())


def dhash(gray: NDArray[np.float32]) -> int:
    """A 64-bit difference hash: near-duplicates (other size, other encoding) differ in a few bits."""
    from skimage.transform import resize

    small = resize(gray, (8, 9), anti_aliasing=True)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def assess(data: bytes) -> tuple[NDArray[np.uint8] | None, dict[str, object]]:
    """Decode, downscale and score one image. Returns the (cropped) RGB photo, or None and the reason."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = 200_000_000  # the packages' largest wallpaper is 34 MP
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        record: dict[str, object] = {"width": im.width, "height": im.height}
        if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
            alpha = np.asarray(im.convert("RGBA"))[..., 3]
            if (alpha < 255).any():
                return None, {**record, "reason": "transparent: a drawing"}
        rgb = im.convert("RGB")
    scale = min(1.0, WORK_SIDE / max(rgb.size))
    if scale < 1:
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.LANCZOS)
    photo = np.asarray(rgb)
    gray = np.asarray(rgb.convert("L"), dtype=np.float32) / 255
    record.update(scale=round(scale, 4), flat=round(flat_share(gray), 3))
    if min(photo.shape[:2]) < MIN_SIDE:
        return None, {**record, "reason": f"smaller than {MIN_SIDE} px"}
    blur, detail = tile_scores(gray)
    textured = detail > TEXTURED_TILE
    score = float(np.percentile(blur[textured], 10)) if textured.any() else 1.0
    record.update(score=round(score, 3), dhash=f"{dhash(gray):016x}")
    top, left, bottom, right = largest_rectangle((blur <= SOFT_TILE) | (detail < SMOOTH_TILE))
    # the rectangle is in tiles; a side that reaches the last tile keeps the photo's remainder pixels
    y0, x0 = top * TILE, left * TILE
    y1 = photo.shape[0] if bottom == blur.shape[0] else bottom * TILE
    x1 = photo.shape[1] if right == blur.shape[1] else right * TILE
    record.update(crop=f"{y0}:{y1},{x0}:{x1}")
    return photo[y0:y1, x0:x1], record


def decide(key: str, photo: NDArray | None, record: dict[str, object]) -> str:
    """ "" to keep, else the reason to leave a photo out."""
    look = looked_at(key)
    if look.startswith("exclude"):
        return look
    if DUPLICATE_SETS.search(key):
        return "exclude: another shot of the same set"
    if photo is None:
        return str(record["reason"])
    if look.startswith("include"):
        return ""
    if float(record["flat"]) > MAX_FLAT_SHARE:  # type: ignore[arg-type]
        return "mostly flat: an illustration"
    if float(record["score"]) > SHARP_SCORE:  # type: ignore[arg-type]
        return f"soft (blur measure {record['score']} > {SHARP_SCORE})"
    if min(photo.shape[:2]) < MIN_SIDE:
        return f"sharp part smaller than {MIN_SIDE} px"
    return ""


def licence_of(root: Path, package: str) -> str:
    """The licences a package's copyright file names (DEP-5 ``License:`` lines), comma-separated."""
    path = root / "usr/share/doc" / package / "copyright"
    if not path.is_file():
        return "unknown (no copyright file)"
    names = re.findall(r"^License:\s*(.+)$", path.read_text(errors="replace"), re.M)
    return ", ".join(dict.fromkeys(n.strip() for n in names)) or "see copyright file"


def _version(deb: Path) -> str:
    parts = deb.stem.split("_")
    return parts[1].replace("%3a", ":") if len(parts) > 1 else ""


MANIFEST_COLUMNS = (
    "file", "split", "status", "source", "package", "version", "licence", "sha256",
    "width", "height", "scale", "crop", "score", "flat", "dhash",
)  # fmt: skip


def build_corpus(
    dest: str | Path,
    cache: str | Path | None = None,
    packages: dict[str, str] | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Build the corpus in ``dest`` (``train``/``val``/``test`` PNGs and ``manifest.csv``); returns the
    manifest. ``cache`` keeps the downloaded and unpacked packages (default ``dest/.debs``)."""
    from PIL import Image

    dest = Path(dest)
    previous = _previous_build(dest)
    cache = Path(cache) if cache else dest / ".debs"
    sources = SOURCES if packages is None else packages
    debs = download_packages(list(sources), cache)
    candidates: list[Candidate] = []
    meta: dict[str, tuple[str, str]] = {}
    for pkg, pattern in sources.items():
        root = unpack(debs[pkg], cache / "x" / pkg)
        meta[pkg] = (_version(debs[pkg]), licence_of(root, pkg))
        found = list(package_candidates(pkg, root, pattern))
        progress(f"{pkg}: {len(found)} images")
        candidates += found
    seen_bytes: set[str] = set()
    kept: list[tuple[Candidate, NDArray]] = []
    rows = []
    for cand in candidates:
        digest = hashlib.sha256(cand.data).hexdigest()
        version, licence = meta[cand.package]
        row: dict[str, object] = {"source": cand.key, "package": cand.package, "version": version}
        row.update(licence=licence, sha256=digest)
        if digest in seen_bytes:
            rows.append({**row, "status": "exclude: the same file as another"})
            continue
        seen_bytes.add(digest)
        try:
            photo, record = assess(cand.data)
        except Exception as exc:  # a file the decoder does not take is a decision, not a crash
            photo, record = None, {"reason": f"not decodable ({exc.__class__.__name__})"}
        row.update(record)
        reason = decide(cand.key, photo, record)
        row["status"] = reason or "keep"
        rows.append(row)
        if not reason:
            cand.record = row
            kept.append((cand, photo))  # type: ignore[arg-type]
    kept = _drop_near_duplicates(kept)
    for old in previous:  # a rebuild replaces the photos the last build wrote, and nothing else
        (dest / old).unlink(missing_ok=True)
    for cand, photo in kept:
        split = split_of(cand.key)
        name = _file_name(cand.key)
        (dest / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo).save(dest / split / name, optimize=False, compress_level=6)
        cand.record.update(file=f"{split}/{name}", split=split)
    for name in SKIMAGE_PHOTOS:
        rows.append(_write_skimage(name, dest))
    manifest = dest / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (str(r.get("status")) != "keep", str(r.get("file", r["source"])))))
    progress(f"{sum(r['status'] == 'keep' for r in rows)} photos kept of {len(rows)} images; manifest: {manifest}")
    return manifest


def _previous_build(dest: Path) -> list[str]:
    """The photo files a previous build wrote in ``dest`` (from its manifest: split folder and PNG name,
    nothing else); a folder that holds anything else, or a ``manifest.csv`` that is not a corpus
    manifest, is refused, so a build never deletes or mixes with files it did not write."""
    if (dest / "manifest.csv").is_file():
        with open(dest / "manifest.csv", newline="") as fh:
            header = next(csv.reader(fh), [])
        if not {"file", "split", "status", "source", "sha256"} <= set(header):
            raise FileExistsError(
                f"{dest / 'manifest.csv'} is not a corpus manifest; build the corpus in an empty folder"
            )
        files = [row["file"] for row in read_manifest(dest) if row.get("file")]
        return [f for f in files if re.fullmatch(r"(train|val|test)/[^/\\]+\.png", f)]
    if dest.is_dir() and any(p.name != ".debs" for p in dest.iterdir()):
        raise FileExistsError(
            f"{dest} holds files of its own and no corpus manifest; build the corpus in an empty folder"
        )
    return []


def _drop_near_duplicates(kept: list[tuple[Candidate, NDArray]], bits: int = 6) -> list[tuple[Candidate, NDArray]]:
    """Keep the largest of photos whose difference hashes differ in at most ``bits`` bits (the others'
    manifest rows, shared as ``record``, say which they duplicate)."""
    order = sorted(kept, key=lambda cp: -cp[1].shape[0] * cp[1].shape[1])
    out: list[tuple[Candidate, NDArray]] = []
    for cand, photo in order:
        h = int(str(cand.record["dhash"]), 16)
        twin = next((c for c, _ in out if bin(h ^ int(str(c.record["dhash"]), 16)).count("1") <= bits), None)
        if twin is None:
            out.append((cand, photo))
        else:
            cand.record["status"] = f"exclude: near-duplicate of {twin.key}"
    return sorted(out, key=lambda cp: cp[0].key)


def _file_name(key: str) -> str:
    """A flat, readable file name for a source key: package, file stem, embedded index."""
    package, _, rest = key.partition("/")
    stem = Path(rest.split("#")[0]).stem
    if "/contents/images/" in rest:  # wallpapers are named by their folder
        stem = rest.split("/contents/")[0].rsplit("/", 1)[-1]
    extra = rest.split("#")[1] if "#" in rest else ""
    name = "_".join(p for p in (package, stem, extra) if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name) + ".png"


def _write_skimage(name: str, dest: Path) -> dict[str, object]:
    """Copy one of scikit-image's photos into its split (as :data:`.batches.SKIMAGE_SPLITS` has it)."""
    import skimage
    import skimage.data
    from PIL import Image

    from ..io.images import as_rgb
    from .batches import SKIMAGE_SPLITS

    split = next((s for s, names in SKIMAGE_SPLITS.items() if name in names), "train")
    image = as_rgb(np.asarray(getattr(skimage.data, name)()))
    (dest / split).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image[..., :3])).save(dest / split / f"skimage_{name}.png")
    licence = "see skimage.data's README (public domain, CC0 or BSD)"
    return {
        "file": f"{split}/skimage_{name}.png", "split": split, "status": "keep", "source": f"skimage.data.{name}",
        "package": "scikit-image", "version": skimage.__version__, "licence": licence,
        "width": image.shape[1], "height": image.shape[0],
    }  # fmt: skip


def read_manifest(dest: str | Path) -> list[dict[str, str]]:
    """The rows of a corpus' manifest."""
    with open(Path(dest) / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


#: The file in a pack folder that lists the photos the pack wrote (a rebuild replaces those only).
PACK_MARKER = ".napari-deblurgan-pack"


def write_pack(corpus: str | Path, pack: str | Path, split: str = "train", budget: int = 40 << 20) -> Path:
    """Write the ``split`` photos of a corpus as JPEGs (4:4:4) into ``pack``, at the highest quality
    (95 down to 80) that keeps the folder within ``budget`` bytes: a training set that travels. ``pack`` is
    a new or empty folder, or one packed before, whose photos (listed in :data:`PACK_MARKER`) are replaced."""
    from PIL import Image

    corpus, pack = Path(corpus), Path(pack)
    files = sorted((corpus / split).glob("*.png"))
    marker = pack / PACK_MARKER
    previous: list[str] = []  # the last pack's photos, and nothing else
    if marker.is_file():
        listed = marker.read_text().split("\n")
        previous = [name for name in listed if name and Path(name).name == name and name.endswith(".jpg")]
    elif pack.is_dir():
        previous = [p.name for p in pack.iterdir()]
        if not set(previous) <= {f"{f.stem}.jpg" for f in files}:  # a pack made before the marker holds these only
            raise FileExistsError(f"{pack} holds files that no pack wrote; give a new or empty folder for the pack")
    if not files:
        raise FileNotFoundError(f"{corpus / split} holds no photos; build the corpus first (napari-deblurgan corpus)")
    images = [Image.open(f).convert("RGB") for f in files]
    for quality in range(95, 79, -3):
        blobs = []
        for im in images:
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=quality, subsampling=0)
            blobs.append(buf.getvalue())
        if sum(map(len, blobs)) <= budget:
            break
    else:
        raise ValueError(f"the {split} photos do not fit {budget >> 20} MiB even at JPEG quality 80")
    for name in previous:
        (pack / name).unlink(missing_ok=True)
    pack.mkdir(parents=True, exist_ok=True)
    names = [f"{f.stem}.jpg" for f in files]
    for name, blob in zip(names, blobs):
        (pack / name).write_bytes(blob)
    marker.write_text("".join(f"{name}\n" for name in names))
    return pack
