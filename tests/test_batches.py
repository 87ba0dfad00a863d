"""Training batches: crops of file pairs, pairs synthesised from sharp images (augmentation, blur kernels),
the blur curriculum and the scikit-image splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_deblurgan.gan.data.batches import (
    SKIMAGE_SPLITS,
    BlurCurriculum,
    PairedCrops,
    SyntheticPairs,
    fft_blur_valid,
)
from napari_deblurgan.gan.data.pairs import pair_ab_folder
from napari_deblurgan.gan.io.images import write_image


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image)


def test_paired_crops_keep_alignment_and_handle_small_16bit_gray(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 65535, (20, 24), dtype=np.uint16)  # smaller than the crop
    _write(tmp_path / "A" / "x.tif", sharp)
    _write(tmp_path / "B" / "x.tif", sharp)
    blurred, target = PairedCrops(pair_ab_folder(tmp_path), crop=32, batch_size=3).batch(5)
    assert blurred.shape == (3, 3, 32, 32)
    assert torch.equal(blurred, target)  # identical images stay identical through crop and flips


def test_synthetic_batches_are_a_function_of_seed_and_step() -> None:
    img = np.random.default_rng(0).random((60, 70, 3)).astype(np.float32)
    src = SyntheticPairs([img], crop=24, batch_size=2, seed=1, kernel_size=15)
    b1, s1 = src.batch(3)
    b2, s2 = src.batch(3)
    assert torch.equal(b1, b2) and torch.equal(s1, s2)
    assert not torch.equal(src.batch(4)[0], b1)
    assert not torch.equal(src.batch(3, rank=1)[0], b1)
    assert b1.shape == s1.shape == (2, 3, 24, 24) and b1.min() >= -1 and b1.max() <= 1


def test_fft_blur_is_a_valid_convolution() -> None:
    from scipy.signal import convolve2d

    rng = np.random.default_rng(0)
    img, k = rng.random((1, 1, 20, 20)), rng.random((1, 5, 5))
    ours = fft_blur_valid(torch.from_numpy(img), torch.from_numpy(k)).numpy()[0, 0]
    np.testing.assert_allclose(ours, convolve2d(img[0, 0], k[0], mode="valid"), rtol=1e-5)


def test_curriculum_and_splits() -> None:
    c = BlurCurriculum(5, 35, 100)
    assert c.max_length(0) == 5 and c.max_length(50) == 20 and c.max_length(1000) == 35
    train, val, test = (set(SKIMAGE_SPLITS[k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)


def test_gray_samples_get_gray_noise() -> None:
    texture = np.random.default_rng(0).random((120, 120, 3)).astype(np.float32)
    blurred, sharp = SyntheticPairs([texture], crop=32, batch_size=4, seed=2, kernel_size=15, gray_prob=1).batch(0)
    assert (
        torch.all(sharp[:, 0] == sharp[:, 1])
        and torch.all(blurred[:, 0] == blurred[:, 1])
        and torch.all(blurred[:, 0] == blurred[:, 2])
    )


def test_synthetic_augmentation_draws_from_dead_leaves_skips_flat_crops_and_stays_deterministic() -> None:
    flat = np.full((120, 120, 3), 0.5, np.float32)
    texture = np.random.default_rng(0).random((120, 120, 3)).astype(np.float32)

    def sharp(src: SyntheticPairs, step: int) -> torch.Tensor:
        return src.batch(step)[1]

    plain = SyntheticPairs([flat], crop=24, batch_size=4, seed=1, kernel_size=15, gray_prob=0)
    assert torch.all(sharp(plain, 0) == 0.0)  # 0.5 in [-1, 1]
    leaves = SyntheticPairs([flat], crop=24, batch_size=4, seed=1, kernel_size=15, dead_leaves=1.0, pool_size=2)
    assert all(s.std() > 0.01 for s in sharp(leaves, 0))  # every crop comes from the procedural pool
    picky = SyntheticPairs([flat, texture], crop=24, batch_size=16, seed=1, kernel_size=15, min_detail=0.05)
    textured = sum(bool(s.std() > 0.01) for s in sharp(picky, 0))
    assert textured >= 15  # flat crops are redrawn (1 in 32 stays flat after 5 draws)
    scaled = SyntheticPairs([texture], crop=24, batch_size=4, seed=1, kernel_size=15, scale_min=0.5)
    b1, s1 = scaled.batch(5)
    b2, s2 = scaled.batch(5)
    assert torch.equal(b1, b2) and torch.equal(s1, s2) and s1.shape == (4, 3, 24, 24)
    assert s1.std() < torch.from_numpy(texture).std() * 2  # antialiased: the noise texture is averaged down
    with pytest.raises(ValueError, match="scale_min"):
        SyntheticPairs([texture], scale_min=0.0)


def test_soft_regions_defocus_one_side_of_the_target_only() -> None:
    texture = np.random.default_rng(0).random((200, 200, 3)).astype(np.float32)
    base = SyntheticPairs([texture], crop=64, batch_size=8, seed=3, kernel_size=15, gray_prob=0)
    soft = SyntheticPairs([texture], crop=64, batch_size=8, seed=3, kernel_size=15, gray_prob=0, soft_regions=1.0)
    sharp = soft.batch(0)[1]
    assert torch.equal(soft.batch(0)[1], sharp)  # deterministic
    for s in sharp:  # one part of every crop is smooth, another keeps the noise texture
        d = (s[:, :, 1:65] - s[:, :, :63]).abs().mean(dim=0)[:, :56]  # (64, 56) horizontal detail
        blocks = d.reshape(8, 8, 7, 8).mean(dim=(1, 3))
        assert blocks.min() < 0.3 * blocks.max()
    assert (sharp - base.batch(0)[1]).abs().mean() > 0  # the option changes the targets


def test_defocus_sets_the_fraction_of_disc_kernels() -> None:
    texture = np.zeros((64, 64, 3), np.float32)

    def discs(defocus: float) -> int:
        kernels = SyntheticPairs([texture], kernel_size=15, defocus=defocus).kernels(np.random.default_rng(1), 300, 20)
        return sum(bool(np.allclose(k, k.T) and np.allclose(k, k[::-1])) for k in kernels)  # discs are symmetric

    assert discs(0.0) == 0  # motion only: an intentionally soft background is left soft
    assert 10 <= discs(0.1) <= 50 and discs(0.9) >= 230
    with pytest.raises(ValueError, match="defocus"):
        SyntheticPairs([texture], defocus=1.0)


def test_contrast_min_lowers_the_contrast_of_targets_about_their_mean() -> None:
    texture = np.random.default_rng(0).random((200, 200, 3)).astype(np.float32)  # std 0.289, mean 0.5
    options = {"crop": 64, "batch_size": 16, "seed": 3, "kernel_size": 15, "gray_prob": 0}
    full = SyntheticPairs([texture], **options).batch(0)[1] / 2  # targets in [-1, 1]: halve for [0, 1] units
    low = SyntheticPairs([texture], contrast_min=0.2, **options).batch(0)[1] / 2
    assert torch.allclose(full.std(dim=(2, 3)), torch.tensor(0.289), rtol=0.05)
    contrast = low.std(dim=(2, 3)) / 0.289
    assert contrast.min() > 0.18 and contrast.max() < 1.05 and contrast.mean() < 0.8
    assert low.mean(dim=(2, 3)).abs().max() < 0.02  # about the crop's mean: brightness is kept
    with pytest.raises(ValueError, match="contrast_min"):
        SyntheticPairs([texture], contrast_min=0.0)


def test_small_blur_sets_the_fraction_of_slight_kernels() -> None:
    texture = np.zeros((64, 64, 3), np.float32)
    r2 = np.add.outer(np.arange(-7, 8) ** 2, np.arange(-7, 8) ** 2)

    def slight(small_blur: float, defocus: float = 0.0) -> int:
        pairs = SyntheticPairs([texture], kernel_size=15, defocus=defocus, small_blur=small_blur)
        kernels = pairs.kernels(np.random.default_rng(1), 300, 20)
        return sum(float(np.sqrt((k * r2).sum())) < 1.0 for k in kernels)  # RMS radius under a pixel

    none, some, most = slight(0.0), slight(0.2), slight(0.9)
    assert none < 60 and some > none + 25 and most > 250
    assert slight(0.8, defocus=0.1) > 220
    for defocus, small_blur in ((0.5, 0.5), (float("nan"), 0.0), (0.0, float("nan"))):
        with pytest.raises(ValueError, match="small_blur"):
            SyntheticPairs([texture], defocus=defocus, small_blur=small_blur)
    edge = SyntheticPairs([texture], kernel_size=15, defocus=0.67, small_blur=0.23)  # 0.9 - 0.67 - 0.23 < 0
    assert len(edge.kernels(np.random.default_rng(0), 50, 20)) == 50
