"""What PSF refinement's gate sees and what refinement would give, case by case (calibrating the gate).

For each case of a quality set (``benchmarks/quality.py``'s, same seeds): the generator's gain, the
default pipeline's (``psf_refine.refine`` as it is, in display values or linear light), and in display
values refinement's without the check that the blur varies across the frame (``unchecked``: the
agreement and direction weights alone), forced through the gate (full weight) and at the display-value
weight that turns out best in hindsight (``best``, of 0, 0.1, ..., 1: what any gate choosing a weight
for this PSF could reach), with the gate's evidence in display values: the agreement weight, the PSF's
width (radius of gyration), the share of the generator's change it leaves unexplained, how far the
deconvolution's change agrees with the generator's (cosine, ``psf_refine.change_agreement``), each
corner region's residual ratio (the PSF over the region's own) and each corner's PSF width over the PSF's
(``psf_refine.corner_evidence``; ``-`` on frames too small for corner regions, which the pipeline does not
check). Unchecked, forced and best share one PSF and one deconvolution. Then per blur kind: what
refinement adds to the generator as gated, unchecked, forced and at the best weight, and how many
cases it makes more than 0.2 dB worse. Rows are tab-separated on stdout; the summary follows them.

    python benchmarks/refine_gate.py [--set realistic] [--split val] [--seed N] [--model PATH]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from napari_deblurgan import deblur, load_model
from napari_deblurgan.gan.restoration import psf_refine as pr
from napari_deblurgan.gan.training.metrics import psnr
from quality import realistic_set, test_set

COLUMNS = ("generator", "default", "unchecked", "forced", "best")
HINDSIGHT_WEIGHTS = np.linspace(0, 1, 11)


def outcomes(blurred: np.ndarray, restored: np.ndarray) -> tuple[list[np.ndarray], dict[str, object]]:
    """The generator's output refined as the gate decides, by the agreement and direction weights alone
    and at full weight (one PSF choice, one deconvolution), and the gate's evidence."""
    y, g = (torch.as_tensor(a)[None] for a in (blurred, restored))
    with torch.inference_mode():
        [(psf, share)] = pr.trusted_psfs(y, g, pr.KERNEL_SIZE, 8)
        agreement = pr.agreement_weight(share) if np.isfinite(share) else 0.0
        gray_y, gray_g = pr._gray(y), pr._gray(g)
        width = pr.radius_of_gyration(psf)
        corners = pr.corner_evidence(gray_y, gray_g, [psf])  # None: the pipeline checks no corners
        full_t = pr.blend_deconvolution(y, g, [psf])
        [direction] = pr.change_agreement(y, g, full_t)
        full = full_t[0].numpy()
    unchecked = restored + agreement * pr.direction_weight(direction) * (full - restored)  # linear in its weight
    gated = pr.refine(blurred, restored)[0]
    evidence = {
        "agreement": agreement,
        "width": width,
        "share": share,
        "direction": direction,
        "ratios": corners[0][0] if corners else [],
        "widening": corners[0][1] if corners else [],
    }
    return [restored, gated, unchecked, full], evidence


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
    print("case\t" + "\t".join(COLUMNS) + "\tagreement\twidth\tshare\tdirection\tcorner ratios\tcorner widening")
    by_kind: dict[str, list[list[float]]] = {}
    for name, sharp, blurred, _ in cases:
        results, e = outcomes(blurred, deblur(blurred, model, refine=False))
        restored, full = results[0], results[3]
        results.append(max((restored + w * (full - restored) for w in HINDSIGHT_WEIGHTS), key=lambda x: psnr(sharp, x)))
        gains = [psnr(sharp, np.round(np.clip(out, 0, 1) * 255) / 255) - psnr(sharp, blurred) for out in results]
        ratios, widening = (",".join(f"{v:.2f}" for v in e[k]) or "-" for k in ("ratios", "widening"))  # type: ignore[attr-defined]
        print(
            f"{name}\t" + "\t".join(f"{g:+.2f}" for g in gains) + f"\t{e['agreement']:.2f}\t{e['width']:.2f}\t"
            f"{e['share']:.3f}\t{e['direction']:.2f}\t{ratios}\t{widening}",
            flush=True,
        )
        by_kind.setdefault(name.rsplit("/", 1)[-1] if args.set == "realistic" else "kernel", []).append(gains)
    print("\nkind\tcases\tgenerator" + "".join(f"\t{c} adds\t{c} costs > 0.2 dB" for c in COLUMNS[1:]))
    for kind, rows in by_kind.items():
        gain = np.array(rows)
        added = gain[:, 1:] - gain[:, :1]
        print(
            f"{kind}\t{len(rows)}\t{gain[:, 0].mean():+.2f}"
            + "".join(f"\t{a.mean():+.2f}\t{int((a < -0.2).sum())}" for a in added.T)
        )


if __name__ == "__main__":
    main()
