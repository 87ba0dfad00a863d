"""Image quality metrics: PSNR and standard SSIM (scikit-image, gaussian weights, as in Wang et al.)."""

from __future__ import annotations

from numpy.typing import NDArray
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

#: What :func:`ssim` computes, for reports.
SSIM_DESCRIPTION = (
    "standard SSIM (skimage structural_similarity, gaussian_weights=True, sigma=1.5, "
    "use_sample_covariance=False, data_range=1, mean over RGB channels) at full resolution"
)


def psnr(reference: NDArray, test: NDArray) -> float:
    """PSNR in dB of float images in [0, 1]."""
    return float(peak_signal_noise_ratio(reference, test, data_range=1.0))


def ssim(reference: NDArray, test: NDArray) -> float:
    """Standard SSIM of float images in [0, 1], (H, W) or (H, W, C)."""
    channel_axis = -1 if reference.ndim == 3 else None
    return float(
        structural_similarity(
            reference,
            test,
            data_range=1.0,
            channel_axis=channel_axis,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )
