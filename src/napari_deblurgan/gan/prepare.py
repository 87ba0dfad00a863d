"""Dataset preparation: A/B folders from GOPRO_Large, and synthetic A/B pairs from sharp images."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .blur import blur_image, motion_kernels
from .data import gopro_pairs
from .images import as_rgb, dtype_range, is_image_file, read_image, to_float01, write_image


def _safe_child(folder: Path, name: str) -> Path:
    """``folder / name``, refusing names that would escape ``folder``."""
    target = (folder / name).resolve()
    if target.parent != folder.resolve():
        raise ValueError(f"Refusing to write {name!r} outside {folder}")
    return target


def organize_gopro(
    root: str | Path, out: str | Path, blur: str = "blur", copy: bool = False, on_file: Callable[[], None] | None = None
) -> int:
    """Write GOPRO_Large pairs as ``out/A`` (blurred) and ``out/B`` (sharp), names prefixed by scene.

    Files are hard-linked (or symlinked across file systems) unless ``copy``; existing files are kept.
    Returns the number of pairs.
    """
    out = Path(out)
    pairs = gopro_pairs(root, blur)  # type: ignore[arg-type]
    for sub in ("A", "B"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for blurred, sharp in pairs:
        name = f"{blurred.parent.parent.name}_{blurred.name}"
        for src, sub in ((blurred, "A"), (sharp, "B")):
            dst = _safe_child(out / sub, name)
            if dst.exists():
                raise FileExistsError(f"{dst} already exists; choose an empty output folder")
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
) -> int:
    """Blur every image of ``sharp_dir`` with its own random-trajectory PSF into ``out/A``, copy it to ``out/B``.

    Values are requantised to the source dtype (8-bit stays 8-bit, 16-bit stays 16-bit).
    """
    sharp_dir, out = Path(sharp_dir), Path(out)
    files = sorted(p for p in sharp_dir.iterdir() if is_image_file(p))
    if not files:
        raise FileNotFoundError(f"No .png, .jpg or .tif images in {sharp_dir}")
    rng = np.random.default_rng(seed)
    for path in files:
        image = read_image(path)
        if image.dtype not in (np.uint8, np.uint16):
            image = (to_float01(image) * 255).round().astype(np.uint8)
        sharp = as_rgb(image) if image.ndim == 3 else image
        suffix = ".tif" if sharp.dtype == np.uint16 and sharp.ndim == 3 else ".png"  # no 16-bit colour PNG
        a_path, b_path = _safe_child(out / "A", path.stem + suffix), _safe_child(out / "B", path.stem + suffix)
        for p in (a_path, b_path):
            if p.exists():
                raise FileExistsError(f"{p} already exists; choose an empty output folder")
        (kernel,) = motion_kernels(rng, 1, length_range)
        blurred01 = blur_image(to_float01(sharp), kernel, noise, rng)
        lo, hi = dtype_range(sharp.dtype)
        blurred = np.rint(blurred01 * (hi - lo) + lo).astype(sharp.dtype)
        a_path.parent.mkdir(parents=True, exist_ok=True)
        b_path.parent.mkdir(parents=True, exist_ok=True)
        write_image(a_path, blurred)
        write_image(b_path, sharp)
        if on_file:
            on_file()
    return len(files)
