"""napari reader for paired deblurring folders: A/B (A blurred, B sharp) and every GOPRO_Large level.

npe2 offers every folder to a directory reader, so :func:`get_reader` only looks at folder names (no
recursive search) and returns None for anything else. Frames load lazily through dask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .gan.images import read_image
from .gan.pairs import PairingError, find_pairs

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[Any], list[LayerData]]


def _looks_paired(root: Path) -> bool:
    """Cheap shape test: A/ + B/, a GOPRO scene (blur/ + sharp/), a split of scenes, or a GOPRO root."""

    def is_scene(folder: Path) -> bool:
        return (folder / "sharp").is_dir() and ((folder / "blur").is_dir() or (folder / "blur_gamma").is_dir())

    if ((root / "A").is_dir() and (root / "B").is_dir()) or is_scene(root):
        return True
    try:
        children = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return False
    if any(is_scene(child) for child in children):
        return True
    splits = [child for child in children if child.name.lower() in ("train", "test")]
    return any(is_scene(scene) for split in splits for scene in split.iterdir() if scene.is_dir())


def get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Return a reader for a paired folder, or None (quietly) for anything else."""
    if not isinstance(path, str | Path):
        return None
    root = Path(path)
    try:
        if not root.is_dir() or not _looks_paired(root):
            return None
        blur = "blur" if (root / "A").is_dir() or any(root.glob("**/blur")) else "blur_gamma"
        pairs = find_pairs(root, blur)
    except PairingError as exc:
        _warn(f"napari-deblurgan cannot open {root}: {exc}")
        return None
    except OSError:
        return None
    return lambda _path: _read_or_warn(pairs, root)


#: What a reader function returns for "handled, no layers" (napari's null-layer sentinel).
NO_LAYERS: list[tuple[None]] = [(None,)]


def _warn(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def _read_or_warn(pairs: Sequence[tuple[Path, Path]], root: Path) -> list[Any]:
    """:func:`read_pairs`, but an unreadable first frame becomes a warning and no layers, not an exception."""
    try:
        return read_pairs(pairs, root.name or str(root))
    except (ValueError, OSError) as exc:
        _warn(f"napari-deblurgan cannot open {root}: {exc}")
        return list(NO_LAYERS)


def _read_frame(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    image = read_image(path)
    if image.shape != shape:
        raise ValueError(f"{path} has shape {image.shape}, but the first frame of its stack has {shape}")
    if image.dtype != dtype:  # casting would wrap 16-bit values around or misscale them
        raise ValueError(
            f"{path} is {image.dtype}, but the first frame of its stack is {dtype}; save all frames at one bit depth"
        )
    return image


def lazy_stack(paths: Sequence[Path]) -> Any:
    """A dask array (N, H, W[, C]) over image files of one shape and dtype; only the first is read now."""
    import dask
    import dask.array as da

    first = read_image(paths[0])
    shape, dtype = first.shape, first.dtype
    frames = [da.from_delayed(dask.delayed(_read_frame)(p, shape, dtype), shape, dtype) for p in paths]
    return da.stack(frames)


def read_pairs(pairs: Sequence[tuple[Path, Path]], name: str) -> list[LayerData]:
    """Layer data for "<name> sharp" and "<name> blurred" (on top) stacks over ``pairs``."""
    layers: list[LayerData] = []
    for kind, files in (("sharp", [s for _, s in pairs]), ("blurred", [b for b, _ in pairs])):
        stack = lazy_stack(files)
        rgb = stack.ndim == 4 and stack.shape[-1] in (3, 4)
        layers.append((stack, {"name": f"{name} {kind}", "rgb": rgb}, "image"))
    (sharp, *_), (blurred, *_) = layers
    if sharp.shape[1:3] != blurred.shape[1:3]:
        first_blurred, first_sharp = pairs[0]
        raise PairingError(
            f"Size mismatch: {first_blurred} is {blurred.shape[1:3]} but {first_sharp} is {sharp.shape[1:3]}; "
            "a blurred frame and its sharp frame must have the same size"
        )
    return layers
