"""napari reader for paired deblurring folders: A/B (A blurred, B sharp) and every GOPRO_Large level.

npe2 offers every folder to a directory reader, so :func:`get_reader` only looks at folder names (no
recursive search) and returns None for anything else. Frames load lazily through dask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .gan.data.pairs import PairingError, find_pairs
from .gan.io.images import ImageHeader, probe, read_image

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
    """:func:`read_pairs`, with what it leaves out said in one warning; no readable pair: no layers."""
    layers, skipped = read_pairs(pairs, root.name or str(root))
    if skipped:
        _warn(f"napari-deblurgan left out of {root}: " + "; ".join(skipped[:5]) + _more(len(skipped) - 5))
    return layers or list(NO_LAYERS)


def _more(count: int) -> str:
    return f"; and {count} more" if count > 0 else ""


#: How a file's frame shows in napari: as read, its gray plane (gray + alpha), or channels moved first.
View = Literal["as read", "gray", "channels first"]


def display_view(header: ImageHeader) -> View:
    """RGB(A) and grayscale show as read. napari has no gray + alpha display, so a PNG's (or WebP's) gray +
    alpha shows its gray plane; other channels on the last axis (a 2- or 5-channel TIFF) move first, under
    a slider (on the last axis napari would take them for the image's width)."""
    if header.channel_axis != -1 or (header.channels in (3, 4) and header.colour is not False):
        return "as read"
    return "gray" if header.gray_alpha else "channels first"


def _viewed(image: np.ndarray, view: View) -> np.ndarray:
    if view == "gray":
        return image[..., 0]
    return np.moveaxis(image, -1, 0) if view == "channels first" else image


def _read_frame(path: Path, shape: tuple[int, ...], dtype: np.dtype, view: View) -> np.ndarray:
    """One frame of a stack of files of ``shape`` and ``dtype``, as ``view`` shows it; a file that does not
    match (changed since the folder was opened, or in a folder too large to scan) or no longer decodes shows
    as black with a warning, so moving the slider never raises inside napari."""
    try:
        image = read_image(path)
        if image.shape != shape or image.dtype != dtype:
            raise ValueError(
                f"it is {image.shape} {image.dtype}, but its stack's frames are {shape} {dtype} (open a folder "
                "of one image size, or reopen it if the file changed)"
            )
    except (ValueError, OSError) as exc:
        _warn(f"napari-deblurgan shows {path} as black: {exc}")
        image = np.zeros(shape, dtype)
    return _viewed(image, view)


def lazy_stack(paths: Sequence[Path], shape: tuple[int, ...], dtype: np.dtype, view: View = "as read") -> Any:
    """A dask array (N, *frame) over image files whose headers say ``shape`` and ``dtype``, each frame as
    ``view`` shows it; none is read now."""
    import dask
    import dask.array as da

    frame = _viewed(np.empty(shape, dtype), view).shape
    frames = [da.from_delayed(dask.delayed(_read_frame)(p, shape, dtype, view), frame, dtype) for p in paths]
    return da.stack(frames)


Info = tuple[tuple[int, ...], np.dtype, View]  # a frame's shape and dtype as read, and how it shows

#: Folders of at most this many pairs have every file's header read when opened (a PNG's takes 1-15 ms),
#: so that frames of several sizes open as stacks of their own. Larger folders (a whole GOPRO_Large, of one
#: size) are sized by their first readable pair; a frame of another size then shows black with a warning.
SCAN_LIMIT = 256


def group_pairs(
    pairs: Sequence[tuple[Path, Path]], scan_limit: int = SCAN_LIMIT
) -> tuple[dict[tuple[Info, Info], list[tuple[Path, Path]]], list[str]]:
    """Pairs grouped by (blurred, sharp) shape, dtype and view from their headers, in order of first appearance;
    and why each left-out pair was left out (an unreadable header, or a blurred and sharp frame that differ
    in size). Over ``scan_limit`` pairs, the rest join the first readable pair's group unread."""
    groups: dict[tuple[Info, Info], list[tuple[Path, Path]]] = {}
    skipped: list[str] = []
    for index, (blurred, sharp) in enumerate(pairs):
        if groups and len(pairs) > scan_limit:
            next(iter(groups.values())).extend(pairs[index:])
            break
        try:
            headers = probe(blurred, single=True), probe(sharp, single=True)
        except (ValueError, OSError) as exc:
            skipped.append(str(exc))
            continue
        infos = tuple((h.shape, h.dtype, display_view(h)) for h in headers)
        (blurred_shape, *_), (sharp_shape, *_) = infos
        if blurred_shape[:2] != sharp_shape[:2]:
            skipped.append(
                f"Size mismatch: {blurred} is {blurred_shape[:2]} but {sharp} is {sharp_shape[:2]}; a blurred "
                "frame and its sharp frame must have the same size"
            )
            continue
        groups.setdefault(infos, []).append((blurred, sharp))
    return groups, skipped


def read_pairs(pairs: Sequence[tuple[Path, Path]], name: str) -> tuple[list[LayerData], list[str]]:
    """Layer data for "<name> sharp" and "<name> blurred" (on top) stacks over ``pairs``, and why any pair
    was left out.

    Frames of one size and bit depth make one pair of stacks. A folder of several sizes opens as one pair
    of stacks per size ("<name> blurred 300x451"), placed one below the other, so every stack is consistent
    and every frame is in view. Each layer's ``metadata["files"]`` lists the file of each frame.
    """
    groups, skipped = group_pairs(pairs, SCAN_LIMIT)
    several = len(groups) > 1
    several_dtypes = len({(b[1], s[1]) for b, s in groups}) > 1
    layers: list[LayerData] = []
    top = 0.0
    for (blurred_info, sharp_info), members in groups.items():
        height, width = blurred_info[0][:2]
        suffix = f" {height}x{width}" if several else ""
        suffix += f" {blurred_info[1]}" if several_dtypes else ""
        for kind, (shape, dtype, view), files in (
            ("sharp", sharp_info, [s for _, s in members]),
            ("blurred", blurred_info, [b for b, _ in members]),
        ):
            stack = lazy_stack(files, shape, dtype, view)
            rgb = stack.ndim == 4 and stack.shape[-1] in (3, 4) and view == "as read"
            translate = [0.0] * (stack.ndim - rgb)
            translate[-2] = top
            meta = {
                "name": f"{name} {kind}{suffix}",
                "rgb": rgb,
                "translate": translate,
                "metadata": {"files": [str(f) for f in files]},
            }
            layers.append((stack, meta, "image"))
        top += height * 1.1 if several else 0
    return layers, skipped
