"""Evaluate a generator on blurred/sharp pairs: PSNR and standard SSIM per image, at full resolution."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.pairs import load_pair
from ..io.checkpoint import atomic_write
from ..model.networks import Generator
from ..restoration.inference import deblur
from ..restoration.options import TILE_SIZE
from .metrics import psnr, ssim


@dataclass(frozen=True)
class PairScore:
    name: str
    psnr_blurred: float
    ssim_blurred: float
    psnr: float
    ssim: float


def evaluate_pairs(
    pairs: Sequence[tuple[Path, Path]],
    model: Generator,
    tile_size: int | None = TILE_SIZE.default,
    refine: bool = True,
    on_pair: Callable[[PairScore], None] | None = None,
) -> list[PairScore]:
    """Deblur each blurred image and score it (and the blurred input) against the sharp image.

    The output is quantised to 8 bits first, as a saved result would be. ``refine``: as in ``deblur``.
    """
    scores = []
    for blurred_path, sharp_path in pairs:
        blurred, sharp = load_pair(blurred_path, sharp_path)
        restored = deblur(blurred, model, tile_size=tile_size, refine=refine)
        restored = np.round(restored * 255) / 255
        score = PairScore(
            blurred_path.name, psnr(sharp, blurred), ssim(sharp, blurred), psnr(sharp, restored), ssim(sharp, restored)
        )
        scores.append(score)
        if on_pair:
            on_pair(score)
    return scores


def write_scores(scores: Sequence[PairScore], path: str | Path) -> Path:
    """Write the per-image scores as CSV, atomically (a crash leaves the old file or the new one)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["image", "psnr_blurred", "ssim_blurred", "psnr", "ssim"])
            for s in scores:
                writer.writerow(
                    [s.name, f"{s.psnr_blurred:.4f}", f"{s.ssim_blurred:.4f}", f"{s.psnr:.4f}", f"{s.ssim:.4f}"]
                )

    return atomic_write(path, write)
