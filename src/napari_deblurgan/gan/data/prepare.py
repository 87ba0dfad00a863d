"""Dataset preparation: A/B folders from GOPRO_Large, and synthetic A/B pairs from sharp images."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io.images import as_rgb, image_info, is_image_file, read_opaque, write_image
from ..io.intensity import dtype_range, to_float01
from .blur import blur_image, motion_kernels
from .pairs import gopro_pairs, refuse_both_splits
from .photo_pairs import realistic_cases
from .realistic import RealisticBlur


def _requantised(image01: np.ndarray, dtype: np.dtype) -> np.ndarray:
    lo, hi = dtype_range(dtype)
    return np.rint(np.clip(image01, 0, 1) * (hi - lo) + lo).astype(dtype)


def _safe_child(folder: Path, name: str, root: Path | None = None) -> Path:
    """``folder / name`` for a plain file name. Refuses names that are not one path component (``..``,
    separators, absolute paths), that would resolve outside ``folder`` (or ``folder`` outside ``root``, the
    chosen output folder, e.g. through a linked sub-folder), and existing symbolic links (writing through one
    could reach any file)."""
    seps = {os.sep, os.altsep or os.sep, "/", "\0"}
    if name in ("", ".", "..") or any(sep in name for sep in seps):
        raise ValueError(f"Refusing to write {name!r}: not a plain file name inside {folder}")
    target = folder / name
    if target.is_symlink():
        raise FileExistsError(
            f"{target} is a symbolic link (it could point outside {folder}); choose an empty output folder"
        )
    resolved = target.resolve()
    if resolved.parent != folder.resolve():
        raise ValueError(f"Refusing to write {name!r} outside {folder}")
    if root is not None and not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"Refusing to write {name!r}: {folder} leads outside the output folder {root}")
    return resolved


def _check_targets(targets: list[tuple[Path, Path]]) -> None:
    """(source, destination) pairs: no two sources onto one destination, and no destination existing yet."""
    seen: dict[Path, Path] = {}
    for src, dst in targets:
        if dst in seen:
            raise FileExistsError(f"{seen[dst]} and {src} would both be written to {dst}; rename one of them")
        seen[dst] = src
        if dst.exists() or dst.is_symlink():
            raise FileExistsError(f"{dst} already exists; choose an empty output folder")


def organize_gopro(
    root: str | Path, out: str | Path, blur: str = "blur", copy: bool = False, on_file: Callable[[], None] | None = None
) -> int:
    """Write GOPRO_Large pairs as ``out/A`` (blurred) and ``out/B`` (sharp), names prefixed by scene.

    Files are hard-linked (or symlinked across file systems) unless ``copy``; existing files are kept.
    Returns the number of pairs.
    """
    out = Path(out)
    refuse_both_splits(Path(root))
    pairs = gopro_pairs(root, blur)  # type: ignore[arg-type]
    plan = [
        (src, _safe_child(out / sub, f"{blurred.parent.parent.name}_{blurred.name}", out))
        for blurred, sharp in pairs
        for src, sub in ((blurred, "A"), (sharp, "B"))
    ]
    _check_targets(plan)  # before anything is written
    for sub in ("A", "B"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(len(pairs)):
        for src, dst in plan[2 * i : 2 * i + 2]:
            if copy:
                shutil.copy2(src, dst)
            else:
                try:
                    os.link(src, dst)
                except OSError:
                    os.symlink(src.resolve(), dst)
        if on_file:
            on_file()
    return len(pairs)


def synthesize_pairs(
    sharp_dir: str | Path,
    out: str | Path,
    seed: int = 0,
    length_range: tuple[float, float] = (5.0, 30.0),
    noise: float = 0.01,
    on_file: Callable[[], None] | None = None,
    realistic: RealisticBlur | None = None,
) -> int:
    """Blur every image of ``sharp_dir`` with its own random-trajectory PSF into ``out/A``, copy it to ``out/B``.

    With ``realistic``, the GOPRO-like engine blurs each image instead (``noise`` unused: the engine has
    its own), and ``out/B`` holds its target, the middle sub-frame (the image itself up to highlight
    clipping and rounding). Values are requantised to the source dtype (8-bit stays 8-bit, 16-bit stays 16-bit).
    """
    sharp_dir, out = Path(sharp_dir), Path(out)
    files = sorted(p for p in sharp_dir.iterdir() if is_image_file(p))
    if not files:
        raise FileNotFoundError(f"No .png, .jpg or .tif images in {sharp_dir}")
    plan = []
    for path in files:
        image_info(path, single=True)  # an unreadable file stops the run before anything is written
        name = path.stem + ".png"
        plan.append((path, _safe_child(out / "A", name, out), _safe_child(out / "B", name, out)))
    _check_targets([(src, dst) for src, a, b in plan for dst in (a, b)])  # before anything is written
    rng = np.random.default_rng(seed)
    for path, a_path, b_path in plan:
        image = read_opaque(path, single=True)
        if image.dtype not in (np.uint8, np.uint16):
            image = (to_float01(image) * 255).round().astype(np.uint8)
        sharp = as_rgb(image) if image.ndim == 3 else image
        if realistic is not None:
            seed_i = int(rng.integers(2**62))
            sharp_rgb01 = as_rgb(to_float01(sharp))
            eight_bit = sharp.dtype == np.uint8  # 16-bit stays 16-bit: its blurred frame is not rounded to 8 bits
            ((blurred01, sharp01),) = realistic_cases([sharp_rgb01], realistic, None, 1, seed_i, eight_bit=eight_bit)
            if sharp.ndim == 2:
                blurred01, sharp01 = blurred01.mean(axis=2), sharp01.mean(axis=2)
            sharp = _requantised(sharp01, sharp.dtype)
        else:
            (kernel,) = motion_kernels(rng, 1, length_range)
            blurred01 = blur_image(to_float01(sharp), kernel, noise, rng)
        blurred = _requantised(blurred01, sharp.dtype)
        a_path.parent.mkdir(parents=True, exist_ok=True)
        b_path.parent.mkdir(parents=True, exist_ok=True)
        write_image(a_path, blurred)
        write_image(b_path, sharp)
        if on_file:
            on_file()
    return len(files)
