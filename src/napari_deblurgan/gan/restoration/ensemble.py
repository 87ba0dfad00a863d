"""Self-ensemble: the model averaged over flipped and transposed copies of its input.

Torch-free at import (the CLI and the widgets read ``ENSEMBLE_SIZES`` before torch loads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Allowed ``ensemble`` sizes: the identity and its flip in x, then the same transposed (4: a mirror, a
#: diagonal mirror and a quarter turn, measured better than the two mirrors and the half turn), then all
#: of them flipped in y.
ENSEMBLE_SIZES = (1, 2, 4, 8)


def check_ensemble(ensemble: int) -> None:
    if ensemble not in ENSEMBLE_SIZES:
        raise ValueError(f"ensemble must be one of {ENSEMBLE_SIZES} (copies averaged), got {ensemble!r}")


def _flip(x: torch.Tensor, k: int) -> torch.Tensor:
    dims = [d for bit, d in ((1, 3), (4, 2)) if k & bit]
    return x.flip(dims) if dims else x


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th of the 8 flips/transposes of an (N, C, H, W) batch (bit 0: flip x, 1: transpose, 2: flip y)."""
    x = _flip(x, k)
    return x.transpose(2, 3) if k & 2 else x


def undo_dihedral(y: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`dihedral`."""
    return _flip(y.transpose(2, 3) if k & 2 else y, k)
