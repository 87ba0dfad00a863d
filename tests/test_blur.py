from __future__ import annotations

import numpy as np
import pytest

from napari_deblurgan.gan.data.blur import (
    blur_image,
    defocus_kernel,
    linear_kernel,
    motion_kernels,
    random_trajectories,
)


def _centroid(k: np.ndarray) -> tuple[float, float]:
    yy, xx = np.indices(k.shape)
    return float((k * yy).sum()), float((k * xx).sum())


@pytest.mark.parametrize("size", [None, 15, 41, 65])
def test_motion_psfs_sum_to_one_and_are_centred(size) -> None:
    kernels = motion_kernels(np.random.default_rng(3), 20, (2.0, 30.0), size)
    for k in kernels:
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert size is None or k.shape == (size, size)
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
        assert k.min() >= 0
        c = k.shape[0] // 2
        assert _centroid(k) == pytest.approx((c, c), abs=1e-4)


def test_trajectories_have_the_requested_length() -> None:
    paths = random_trajectories(np.random.default_rng(0), np.array([10.0, 25.0]))
    lengths = np.abs(np.diff(paths, axis=1)).sum(axis=1)
    np.testing.assert_allclose(lengths, [10.0, 25.0], rtol=1e-6)


def test_linear_and_defocus_kernels() -> None:
    k = linear_kernel(15, 0)
    assert k.sum() == pytest.approx(1) and _centroid(k) == pytest.approx((k.shape[0] // 2,) * 2, abs=1e-4)
    assert (k.sum(axis=1) > 0).sum() <= 2  # a horizontal line spans at most two rows (bilinear)
    d = defocus_kernel(4.0)
    assert d.sum() == pytest.approx(1) and np.allclose(d, d.T) and np.allclose(d, d[::-1])


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (31, 64), (20, 17, 3), (5, 5, 1)])
def test_blur_image_any_shape(shape) -> None:
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    out = blur_image(img, motion_kernels(np.random.default_rng(1), 1, (5, 15))[0])
    assert out.shape == img.shape and out.dtype == np.float32


def test_blur_keeps_flat_images_flat_and_does_not_shift_content() -> None:
    flat = np.full((40, 40, 3), 0.3, np.float32)
    np.testing.assert_allclose(blur_image(flat, linear_kernel(11, 37)), 0.3, atol=1e-6)
    dot = np.zeros((61, 61), np.float32)
    dot[30, 30] = 1
    out = blur_image(dot, motion_kernels(np.random.default_rng(5), 1, (20, 25))[0])
    assert _centroid(out / out.sum()) == pytest.approx((30, 30), abs=1e-3)
