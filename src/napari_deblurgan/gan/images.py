"""Image reading and value-range conversion shared by the data pipeline, the CLI and the reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image(path: str | Path) -> NDArray:
    """Read an image file as (H, W) or (H, W, C), keeping its dtype (8- and 16-bit stay as they are)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as exc:  # decoders raise many types; the user needs the file name and the reason
        raise ValueError(f"Cannot read image {path}: {exc}. Check that the file is a complete image.") from exc


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """The value range an integer dtype maps to [0, 1] by; floats are taken as [0, 1]."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def to_float01(image: NDArray) -> NDArray[np.float32]:
    """Integer images scaled by their dtype range, floats clipped to [0, 1]; float32 output."""
    lo, hi = dtype_range(image.dtype)
    out = (image.astype(np.float32) - lo) / (hi - lo) if np.issubdtype(image.dtype, np.integer) else image
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def as_rgb(image: NDArray) -> NDArray:
    """(H, W) or (H, W, 1|3|4) as (H, W, 3): gray replicated, alpha dropped."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[:, :, :3]
    raise ValueError(f"Expected a grayscale or RGB(A) image, got shape {image.shape}")
