"""The CUDA path against the CPU: the network within 2 grey levels, refined results of the same quality,
half precision, odd sizes and 16-bit, and training with autocast (float16 with loss scaling, and the
default) and resume. Skipped without a CUDA GPU (CI has none). ``benchmarks/gpu_check.sh`` runs these
with the stack speed rows in one call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _helpers import TINY_RECIPE
from napari_deblurgan import deblur
from napari_deblurgan.gan.data.blur import blur_image, linear_kernel
from napari_deblurgan.gan.training.train import TrainConfig, Trainer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def blurred_photo(natural_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sharp = natural_rgb[:256, 128:384].astype(np.float32) / 255
    blurred = blur_image(sharp, linear_kernel(9, 20))
    return (sharp * 255).round().astype(np.uint8), (np.clip(blurred, 0, 1) * 255).round().astype(np.uint8)


def _levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_the_network_on_cuda_matches_the_cpu_and_half_precision_stays_close(blurred_photo) -> None:
    sharp, blurred = blurred_photo
    cpu = deblur(blurred, device="cpu", refine=False)
    gpu = deblur(blurred, device="cuda", refine=False)
    half = deblur(blurred, device="cuda", half=True, refine=False)
    assert gpu.shape == half.shape == blurred.shape and gpu.dtype == half.dtype == np.uint8
    assert _levels(cpu, gpu) <= 2  # TF32 convolutions on the GPU: rounding only
    assert _levels(gpu, half) <= 4
    assert _psnr(sharp, half) > _psnr(sharp, blurred) + 0.2  # the network alone: +0.44 dB here, on both


def _same_quality(sharp: np.ndarray, cpu: np.ndarray, gpu: np.ndarray) -> None:
    """The PSF refinement deconvolves: it amplifies the network's rounding differences at a few pixels
    (on an H200, 2026-12-04: 6 grey levels at most on this 256^2 photo, 14 on a 720p stack; on the CPU,
    0.5 grey level of noise on the network's output moved single pixels by up to 21 levels, yet the two
    results stayed 44.6 dB apart and 0.13 dB equally close to the sharp image). So: same image, same quality."""
    assert _psnr(cpu, gpu) > 40.0
    assert abs(_psnr(sharp, gpu) - _psnr(sharp, cpu)) < 0.2


def test_the_refined_result_on_cuda_matches_the_cpus_quality(blurred_photo) -> None:
    sharp, blurred = blurred_photo
    cpu = deblur(blurred, device="cpu")
    gpu = deblur(blurred, device="cuda")
    half = deblur(blurred, device="cuda", half=True)
    assert gpu.shape == half.shape == blurred.shape and gpu.dtype == half.dtype == np.uint8
    _same_quality(sharp, cpu, gpu)
    _same_quality(sharp, cpu, half)
    assert _psnr(sharp, half) > _psnr(sharp, blurred) + 1.0  # +3.7 dB on the CPU


def test_cuda_keeps_shape_and_dtype_of_odd_sized_16_bit_gray(blurred_photo) -> None:
    gray = (blurred_photo[1][:251, :199].mean(axis=2) * 257).astype(np.uint16)
    cpu = deblur(gray, device="cpu")
    half = deblur(gray, device="cuda", half=True)
    assert half.shape == gray.shape and half.dtype == np.uint16
    assert _levels(cpu, half) <= 4 * 257


def test_psf_refinement_on_cuda_matches_the_cpu(blurred_photo) -> None:
    """The refinement's FFTs, filters and solves on the GPU: same PSF, same image within 1 grey level."""
    from napari_deblurgan.gan.restoration.psf_refine import refine

    sharp, blurred = blurred_photo
    y, g = blurred.astype(np.float32) / 255, sharp.astype(np.float32) / 255
    stand_in = (0.6 * g + 0.4 * y).astype(np.float32)  # a generator that removed most of the blur
    cpu, psf_cpu = refine(y, stand_in, device="cpu")
    gpu, psf_gpu = refine(y, stand_in, device="cuda")
    np.testing.assert_allclose(psf_gpu, psf_cpu, atol=1e-4)
    assert np.abs(gpu - cpu).max() * 255 <= 1


def test_a_720p_stack_on_cuda_matches_the_cpu(natural_rgb) -> None:
    """Frames batched through the network on the GPU: within 2 grey levels of the CPU (float32); refined
    there too: the same images (see :func:`_same_quality`)."""
    from skimage.transform import resize

    frame = (resize(natural_rgb, (720, 1280)) * 255).round().astype(np.uint8)
    blurred = (np.clip(blur_image(frame.astype(np.float32) / 255, linear_kernel(9, 20)), 0, 1) * 255).round()
    stack = np.stack([np.roll(blurred.astype(np.uint8), 9 * t, axis=1) for t in range(3)])
    network = deblur(stack, device="cuda", refine=False)
    assert network.shape == stack.shape and network.dtype == np.uint8
    assert _levels(deblur(stack, device="cpu", refine=False), network) <= 2
    cpu, gpu = deblur(stack, device="cpu"), deblur(stack, device="cuda")
    sharp = np.stack([np.roll(frame, 9 * t, axis=1) for t in range(3)])
    for t in range(3):
        _same_quality(sharp[t], cpu[t], gpu[t])


@pytest.mark.parametrize("amp", ["fp16", "auto"])
def test_cuda_training_with_autocast_and_resume(tmp_path: Path, amp: str) -> None:
    recipe = {**TINY_RECIPE, "steps": 6, "adv_weight": 1.0, "adv_start": 2, "critic_steps": 1, "data": "skimage"}
    recipe["amp"] = amp
    trainer = Trainer(TrainConfig(**recipe), tmp_path / "run", device="cuda")
    if amp == "fp16":
        assert trainer.amp_dtype == torch.float16 and set(trainer.scalers) == {"generator", "critic"}
    else:  # bfloat16 where the GPU has it (Ampere and newer), else float16 with loss scaling
        assert trainer.amp_dtype == (torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8 else torch.float16)
    start = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    for event in trainer.steps():
        assert all(np.isfinite(v) for v in event.losses.values())
        if event.step == 4:
            trainer.request_stop()
    saved_rng = torch.cuda.get_rng_state()  # what dropout on the GPU draws from next
    torch.cuda.manual_seed(12345)  # a new process would start elsewhere
    resumed = Trainer(TrainConfig(**recipe), tmp_path / "run", device="cuda", resume=True)
    assert resumed.step == 4 and torch.equal(torch.cuda.get_rng_state(), saved_rng)
    resumed.fit()
    assert resumed.step == 6
    end = resumed.generator.state_dict()
    assert any(not torch.equal(start[k], end[k].to(start[k].device)) for k in start)
