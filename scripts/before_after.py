"""Before/after figures of the shipped model for the README and the model card.

    python scripts/before_after.py [--model MODEL.safetensors] [--out docs/images]

``clock_motion.png``: scikit-image's ``clock``, a photo with real motion blur (no ground truth), with
a 2x zoom of its centre. ``synthetic.png``: a held-out test image (``coffee``) with an unseen 20 px
camera-shake PSF as in ``benchmarks/quality.py``: blurred, deblurred and sharp, with PSNR. Both show
the generator alone (``refine=False``) and ``deblur``'s default (with PSF refinement).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import skimage.data

from napari_deblurgan import deblur, load_model
from napari_deblurgan.gan.data.blur import blur_image, motion_kernels
from napari_deblurgan.gan.training.metrics import psnr


def panels(path: Path, images: list[tuple[str, np.ndarray]], zoom: tuple[slice, slice] | None) -> None:
    rows = 2 if zoom else 1
    fig, axes = plt.subplots(rows, len(images), figsize=(4.2 * len(images), 3.3 * rows), squeeze=False)
    for col, (title, image) in enumerate(images):
        cmap = "gray" if image.ndim == 2 else None
        axes[0, col].imshow(image, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        axes[0, col].set_title(title, fontsize=10)
        if zoom:
            axes[1, col].imshow(image[zoom], cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
            axes[1, col].set_title("detail, enlarged", fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--out", default="docs/images")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, "cpu")

    clock = skimage.data.clock()
    h, w = clock.shape
    centre = (slice(h // 2 - 60, h // 2 + 60), slice(w // 2 - 80, w // 2 + 80))
    images = [
        ("clock (real motion blur)", clock),
        ("generator only", deblur(clock, model, refine=False)),
        ("deblurred (default: + PSF refinement)", deblur(clock, model)),
    ]
    panels(out / "clock_motion.png", images, centre)

    rng = np.random.default_rng(90210)
    sharp = skimage.data.coffee()
    psf = motion_kernels(rng, 1, (16.0, 20.0))[0]
    blurred = (blur_image(sharp / 255.0, psf, 0.01, rng) * 255).round().astype(np.uint8)
    images = [(f"blurred ({psnr(sharp / 255.0, blurred / 255.0):.2f} dB)", blurred)]
    for title, refine in (("generator only", False), ("deblurred, default", True)):
        restored = deblur(blurred, model, refine=refine)
        images.append((f"{title} ({psnr(sharp / 255.0, restored / 255.0):.2f} dB)", restored))
    images.append(("sharp", sharp))
    panels(out / "synthetic.png", images, (slice(100, 260), slice(200, 420)))


if __name__ == "__main__":
    main()
