"""What PSF refinement's gate sees and what refinement would give, case by case (calibrating the gate).

For each case of a quality set (``benchmarks/quality.py``'s, same seeds): the generator's gain, the
default pipeline's (the gate as it is), and refinement's forced through the gate (full weight, the
variation check off), with the gate's evidence: the chosen PSF's width (radius of gyration), the share of
the generator's change it leaves unexplained, each corner region's residual ratio (chosen PSF over the
region's own) and each corner's PSF width over the chosen one (``psf_refine.corner_evidence``; ``-`` on
frames too small for corner regions, which the pipeline does not check).
Then per blur kind: what refinement adds to the generator as gated and as forced, and how many cases
it makes more than 0.2 dB worse. Rows are tab-separated on stdout; the summary follows them.

    python benchmarks/refine_gate.py [--set realistic] [--split val] [--seed N] [--model PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from napari_deblurgan import deblur, load_model
from napari_deblurgan.gan.restoration import psf_refine as pr
from napari_deblurgan.gan.training.metrics import psnr
from quality import realistic_set, test_set


@contextmanager
def gate_open() -> Iterator[None]:
    """Refinement at full weight wherever the PSF is a blur: agreement and variation checks off."""
    saved = pr.AGREEMENT, pr.WIDER_IN_CORNERS, pr.REGION_TOLERANCE
    pr.AGREEMENT, pr.WIDER_IN_CORNERS, pr.REGION_TOLERANCE = (np.inf, np.inf), np.inf, np.inf
    try:
        yield
    finally:
        pr.AGREEMENT, pr.WIDER_IN_CORNERS, pr.REGION_TOLERANCE = saved


def evidence(blurred: np.ndarray, restored: np.ndarray) -> dict[str, object]:
    """The gate's inputs for one frame: weight, PSF width, unexplained share, corner ratios and widths."""
    y, g = (torch.as_tensor(a)[None] for a in (blurred, restored))
    psf, weight = pr._choose_psfs(y, g, pr.KERNEL_SIZE, 8)[0]
    gray_y, gray_g = pr._gray(y), pr._gray(g)
    width = pr.radius_of_gyration(psf)
    window = [pr._centre_crop(p, pr.ESTIMATE_WINDOW) for p in (gray_y, gray_g)]
    share = pr._unexplained_many(*window, [psf])[0] if width > 0 else float("nan")
    corners = pr.corner_evidence(gray_y, gray_g, [psf])  # None: the pipeline checks no corners
    return {
        "weight": weight,
        "width": width,
        "share": share,
        "ratios": corners[0][0] if corners else [],
        "widening": corners[0][1] if corners else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=["kernel", "realistic"], default="realistic")
    parser.add_argument("--split", choices=["test", "val"], default="val")
    parser.add_argument("--seed", type=int, help="blur the split's photos afresh from this seed")
    parser.add_argument("--corpus", default="data/corpus")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    args = parser.parse_args()
    if args.set == "realistic":
        cases = realistic_set(args.corpus, args.split, (5.0, 40.0), args.seed)
    else:
        cases = test_set([10, 20, 30], 2, args.split, args.seed)
    model = load_model(args.model, "cpu")
    print("case\tgenerator\tdefault\tforced\tweight\twidth\tshare\tcorner ratios\tcorner widening")
    by_kind: dict[str, list[tuple[float, float, float]]] = {}
    for name, sharp, blurred, _ in cases:
        restored = deblur(blurred, model, refine=False)
        with gate_open():
            forced, _ = pr.refine(blurred, restored)
        gains = [
            psnr(sharp, np.round(np.clip(out, 0, 1) * 255) / 255) - psnr(sharp, blurred)
            for out in (restored, pr.refine(blurred, restored)[0], forced)
        ]
        e = evidence(blurred, restored)
        ratios, widening = (",".join(f"{v:.2f}" for v in e[k]) or "-" for k in ("ratios", "widening"))  # type: ignore[attr-defined]
        print(
            f"{name}\t" + "\t".join(f"{g:+.2f}" for g in gains) + f"\t{e['weight']:.2f}\t{e['width']:.2f}\t"
            f"{e['share']:.3f}\t{ratios}\t{widening}",
            flush=True,
        )
        by_kind.setdefault(name.rsplit("/", 1)[-1] if args.set == "realistic" else "kernel", []).append(tuple(gains))
    print("\nkind\tcases\tgenerator\tgated refinement adds\tcosts > 0.2 dB\tforced adds\tforced costs > 0.2 dB")
    for kind, rows in by_kind.items():
        g, d, f = np.array(rows).T
        print(
            f"{kind}\t{len(rows)}\t{g.mean():+.2f}\t{(d - g).mean():+.2f}\t{int(((d - g) < -0.2).sum())}\t"
            f"{(f - g).mean():+.2f}\t{int(((f - g) < -0.2).sum())}"
        )


if __name__ == "__main__":
    main()
