"""Dead-leaves images: procedural training images with the statistics of natural photographs.

Occluding discs with power-law radii give the scale invariance and sharp occlusion edges of natural
scenes (Lee, Mumford and Huang 2001); denoising networks trained on them come close to ones trained on
photos (Achddou, Gousseau and Ladjal 2021). They add unlimited, license-free variety to the few
images that ship with scikit-image.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def dead_leaves(
    rng: np.random.Generator,
    size: int,
    palette: NDArray[np.float32],
    r_min: float = 2.5,
    r_max: float | None = None,
    alpha: float = 3.0,
    supersample: int = 2,
) -> NDArray[np.float32]:
    """A (size, size, 3) float32 image in [0, 1] of shaded discs with radii ~ r^-alpha in [r_min, r_max].

    Colours are drawn from ``palette`` (an (N, 3) array, e.g. pixels of real images); each disc gets a
    gentle linear shading. Rendered at ``supersample`` x and box-averaged so edges are anti-aliased.
    """
    if palette.ndim != 2 or palette.shape[1] != 3 or not len(palette):
        raise ValueError(f"palette must be a non-empty (N, 3) array, got shape {palette.shape}")
    s = supersample
    n = size * s
    r_max = (r_max or size / 4) * s
    r_min *= s
    # inverse-CDF sampling of p(r) ~ r^-alpha on [r_min, r_max]
    a = 1.0 - alpha
    img = np.empty((n, n, 3), dtype=np.float32)
    img[:] = palette[rng.integers(len(palette))]
    covered = np.zeros((n, n), dtype=bool)
    batch = 256
    # Leaves fall front to back: each new disc only paints pixels no earlier disc covers; the last
    # specks (0.1 %) keep the background colour.
    while covered.mean() <= 0.999:
        u = rng.random(batch)
        radii = (r_min**a + u * (r_max**a - r_min**a)) ** (1.0 / a)
        centres = rng.uniform(-r_max / 2, n + r_max / 2, size=(batch, 2))
        colours = palette[rng.integers(len(palette), size=batch)]
        slopes = rng.normal(0.0, 0.15, size=(batch, 2)) / np.maximum(radii, 1.0)[:, None]
        for (cy, cx), r, colour, (gy, gx) in zip(centres, radii, colours, slopes):
            y0, y1 = max(0, int(cy - r)), min(n, int(np.ceil(cy + r)) + 1)
            x0, x1 = max(0, int(cx - r)), min(n, int(np.ceil(cx + r)) + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            yy, xx = np.ogrid[y0:y1, x0:x1]
            dy, dx = yy - cy, xx - cx
            paint = (dy * dy + dx * dx <= r * r) & ~covered[y0:y1, x0:x1]
            if not paint.any():
                continue
            shade = (1.0 + gy * dy + gx * dx)[paint]
            img[y0:y1, x0:x1][paint] = np.clip(colour[None, :] * shade[:, None], 0.0, 1.0)
            covered[y0:y1, x0:x1] |= paint
    return img.reshape(size, s, size, s, 3).mean(axis=(1, 3), dtype=np.float32)
