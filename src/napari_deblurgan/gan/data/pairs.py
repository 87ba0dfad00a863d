"""Blurred/sharp file pairs: A/B folders, GOPRO_Large levels and aligned A|B images (no torch, so the
napari reader stays cheap for the folders it turns down)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ..io.images import as_rgb, is_image_file, read_opaque
from ..io.intensity import float_span, to_float01


class PairingError(ValueError):
    """A/B folders whose files cannot be paired one to one."""


def check_same_shape(blurred: tuple[int, ...], sharp: tuple[int, ...]) -> None:
    """Blurred and sharp stacks pair frame by frame, so their shapes must be equal."""
    if tuple(blurred) != tuple(sharp):
        raise PairingError(f"The blurred and sharp stacks differ in shape: {tuple(blurred)} vs {tuple(sharp)}")


def pair_ab_folder(root: str | Path) -> list[tuple[Path, Path]]:
    """Pairs (A = blurred, B = sharp) matched by identical file name, sorted by name.

    Raises :class:`PairingError` listing every unpaired name instead of silently mis-pairing.
    """
    root = Path(root)
    a_dir, b_dir = root / "A", root / "B"
    if not (a_dir.is_dir() and b_dir.is_dir()):
        raise PairingError(f"{root} is not an A/B folder: it needs sub-folders A/ (blurred) and B/ (sharp)")
    a = {p.name: p for p in a_dir.iterdir() if is_image_file(p)}
    b = {p.name: p for p in b_dir.iterdir() if is_image_file(p)}
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        raise PairingError(
            f"Unpaired files in {root}: only in A: {_names(only_a)}; only in B: {_names(only_b)}. "
            "Every blurred image in A/ needs a sharp image of the same name in B/."
        )
    if not a:
        raise PairingError(f"{root}/A and {root}/B hold no images ({', '.join(s for s in ('.png', '.jpg', '.tif'))})")
    return [(a[name], b[name]) for name in sorted(a)]


def _names(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def gopro_pairs(root: str | Path, blur: Literal["blur", "blur_gamma"] = "blur") -> list[tuple[Path, Path]]:
    """Pairs from a GOPRO_Large root, split folder or scene folder (``{blur|blur_gamma}/`` + ``sharp/``)."""
    root = Path(root)
    scenes = sorted({p.parent for p in root.glob(f"**/{blur}") if (p.parent / "sharp").is_dir()})
    if not scenes:
        raise PairingError(f"{root} holds no GOPRO scene (a folder with {blur}/ and sharp/ sub-folders)")
    pairs: list[tuple[Path, Path]] = []
    for scene in scenes:
        blurred = {p.name: p for p in (scene / blur).iterdir() if is_image_file(p)}
        sharp = {p.name: p for p in (scene / "sharp").iterdir() if is_image_file(p)}
        missing = sorted(set(blurred) ^ set(sharp))
        if missing:
            raise PairingError(f"GOPRO scene {scene} has unpaired frames: {_names(missing)}")
        pairs += [(blurred[n], sharp[n]) for n in sorted(blurred)]
    if not pairs:
        raise PairingError(
            f"The GOPRO scenes in {root} hold no images: put blurred frames in {blur}/ and sharp ones in sharp/"
        )
    return pairs


def find_pairs(root: str | Path, blur: Literal["blur", "blur_gamma"] = "blur") -> list[tuple[Path, Path]]:
    """Pairs from an A/B folder or any GOPRO_Large level, whichever ``root`` is."""
    root = Path(root)
    if (root / "A").is_dir() or (root / "B").is_dir():
        return pair_ab_folder(root)
    return gopro_pairs(root, blur)


def refuse_both_splits(root: Path) -> None:
    """Refuse a GOPRO_Large root (train/ and test/ scenes) where one split is meant: training on it, or
    merging it into one A/B folder, would mix the test scenes into training."""
    if all((root / split).is_dir() for split in ("train", "test")) and not (root / "A").is_dir():
        raise ValueError(
            f"{root} holds train/ and test/ scenes (GOPRO_Large): used whole, the test scenes would be trained "
            f"on; pass {root / 'train'} (and {root / 'test'} on its own, for evaluation)"
        )


def aligned_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """DeblurGAN's "aligned" layout: every image in ``root`` is A (blurred) | B (sharp) side by side.

    Each pair is the same path twice; :func:`load_pair` splits it.
    """
    files = sorted(p for p in Path(root).iterdir() if is_image_file(p))
    if not files:
        raise PairingError(f"{root} holds no aligned A|B images (.png, .jpg, .tif)")
    return [(p, p) for p in files]


def split_holdout(pairs: Sequence[tuple[Path, Path]], every: int = 20) -> tuple[list, list]:
    """(training, validation) pairs, about one in ``every`` held out, in whole runs so that few frames next
    to a validation frame (a video's neighbour, nearly the same image) are trained on: whole scenes where
    the pairs come from at least ``every`` scene folders (GOPRO), else one run from the middle of the
    sorted pairs (only its two ends border training frames). A single pair is used for both. A scene is a
    folder, or in an A/B folder the names' part before a last "_NUMBER" (``organize-gopro`` writes
    SCENE_FRAME names)."""
    if len(pairs) < 2:
        return list(pairs), list(pairs)
    keys = [(blurred.parent, _scene_of(blurred.stem)) for blurred, _ in pairs]
    scenes = list(dict.fromkeys(keys))
    if len(scenes) >= every:
        held_scenes = set(scenes[every // 2 :: every])
        held = {i for i, key in enumerate(keys) if key in held_scenes}
    else:
        count = max(1, len(pairs) // every)
        start = (len(pairs) - count) // 2
        held = set(range(start, start + count))
    return [p for i, p in enumerate(pairs) if i not in held], [pairs[i] for i in sorted(held)]


def _scene_of(stem: str) -> str:
    """The scene of a frame named SCENE_NUMBER; "" (the folder's one scene) for other names."""
    scene, _, frame = stem.rpartition("_")
    return scene if frame.isdigit() else ""


def load_pair(blurred_path: Path, sharp_path: Path) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Both images as float RGB in [0, 1]; a size mismatch is an error naming both files. The same path
    twice is an aligned A|B image, split in halves."""
    if blurred_path == sharp_path:
        a, b = split_aligned(read_opaque(blurred_path, single=True))
    else:
        a, b = read_opaque(blurred_path, single=True), read_opaque(sharp_path, single=True)
    if a.shape[:2] != b.shape[:2]:
        raise PairingError(f"Size mismatch: {blurred_path} is {a.shape[:2]} but {sharp_path} is {b.shape[:2]}")
    span = float_span(a, b)  # float pairs: one mapping for both, so their intensities stay comparable
    return as_rgb(to_float01(a, span)), as_rgb(to_float01(b, span))


def split_aligned(image: NDArray) -> tuple[NDArray, NDArray]:
    """DeblurGAN's "aligned" image (A and B side by side) split into (A, B)."""
    w = image.shape[1]
    if w % 2:
        raise ValueError(f"An aligned A|B image needs an even width, got {w}")
    return image[:, : w // 2], image[:, w // 2 :]
