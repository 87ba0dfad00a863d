"""Atomic, pickle-safe checkpoint files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_umask() -> int:
    """The process umask. Reading it means setting it, so this runs once, at import: setting it while
    other threads create files (napari's workers) would give their files the wrong permissions."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def stale_temp_files(path: str | Path) -> list[Path]:
    """Temp files :func:`atomic_write` left beside ``path`` when its process was killed mid-write.

    Their names start with a dot and end with ``.tmp``, so nothing ever takes them for ``path`` itself.
    """
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Delete :func:`stale_temp_files` of ``path`` (call only when no other process writes ``path``)."""
    stale = stale_temp_files(path)
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Save a dict of tensors and plain Python values atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain values only, no code runs.
    ``mmap``: tensors are read from the file only when used (to read its step, say)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist (a run folder holds checkpoint.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        detail = exc.__class__.__name__ + (f": {lines[0]}" if lines else "")
        raise ValueError(
            f"Cannot load checkpoint {path} ({detail}). It is truncated, corrupt, or not a napari-deblurgan "
            "checkpoint; nothing in it was executed."
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a napari-deblurgan checkpoint")
    return state
