"""Sample data: a synthetically motion-blurred photo with its sharp ground truth, and a real blurred photo."""

from __future__ import annotations

from typing import Any

import numpy as np

LayerData = tuple[np.ndarray, dict[str, Any], str]


def blurred_coffee() -> list[LayerData]:
    """scikit-image's ``coffee`` (a test image, never trained on) with a random camera-shake blur, 8-bit."""
    import skimage.data

    from .gan.data.blur import blur_image, motion_kernels

    sharp = skimage.data.coffee()
    kernel = motion_kernels(np.random.default_rng(7), 1, (15, 25))[0]
    blurred = np.round(blur_image(sharp / 255.0, kernel) * 255).astype(np.uint8)
    return [
        (sharp, {"name": "coffee sharp", "rgb": True}, "image"),
        (blurred, {"name": "coffee blurred", "rgb": True}, "image"),
    ]


def blurred_clock() -> list[LayerData]:
    """scikit-image's ``clock``: a photo with real motion blur (no ground truth)."""
    import skimage.data

    return [(skimage.data.clock(), {"name": "clock"}, "image")]
