"""The shipped default model: it loads offline, is what the committed lineage ships, and really deblurs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from skimage.metrics import peak_signal_noise_ratio

from napari_deblurgan import deblur, default_model_path, load_model
from napari_deblurgan.gan.data.blur import blur_image, motion_kernels
from napari_deblurgan.gan.model.weights import read_metadata
from napari_deblurgan.gan.training.lineage import Lineage

LINEAGE = Path(__file__).resolve().parents[1] / "recipes" / "default.json"  # the shipped model's lineage


def test_shipped_weights_load_and_are_the_lineages_ship_stage() -> None:
    lineage = Lineage.from_file(LINEAGE)
    stage = lineage.stage(lineage.ship_stage)
    model = load_model(None, "cpu")
    assert model.config == stage.config.generator_config()
    meta = read_metadata(default_model_path())
    assert int(meta["step"]) == stage.until
    trained_with, recipe = json.loads(meta["recipe"]), json.loads(json.dumps(stage.config.to_dict()))
    # the init stage's export, its shipped file or a copy of it named by stage and step (lineage --given)
    init = Path(trained_with.pop("init"))
    shipped = init.parts[-2:] == ("models", "default.safetensors") or init.name.startswith(f"{stage.init_stage}-")
    assert shipped or init.parts[-2:] == (stage.init_stage, "generator.safetensors")
    assert trained_with == {k: v for k, v in recipe.items() if k != "init"}


def test_the_gpu_burst_recipe_trains_the_shipped_network() -> None:
    """recipes/gpu_burst.sh starts from the shipped model: its recipe must build that network (or a deeper
    one), or the burst would fail on the GPU after the machine has started."""
    from napari_deblurgan.gan.model.deepen import deepens
    from napari_deblurgan.gan.training.train import TrainConfig

    burst = TrainConfig.from_dict(json.loads((LINEAGE.parent / "realistic_gpu.json").read_text()))
    assert deepens(load_model(None, "cpu").config, burst.generator_config())


@pytest.fixture(scope="module")
def blurred_camera() -> tuple[np.ndarray, np.ndarray]:
    """A held-out image (never trained on) with an unseen random-trajectory PSF, noise and 8 bits."""
    rng = np.random.default_rng(11)
    sharp = skimage.data.camera()[100:356, 150:406].astype(np.float32) / 255
    blurred = blur_image(sharp, motion_kernels(rng, 1, (10.0, 14.0))[0], 0.005, rng)
    return (sharp * 255).round().astype(np.uint8), (blurred * 255).round().astype(np.uint8)


def test_default_model_improves_psnr_on_a_fixed_synthetic_case(blurred_camera) -> None:
    sharp, blurred = blurred_camera
    generator_only = deblur(blurred, refine=False)
    gain = peak_signal_noise_ratio(sharp, generator_only) - peak_signal_noise_ratio(sharp, blurred)
    assert gain > 1.2  # measured +2.23 dB


def test_psf_refinement_improves_on_the_generator_alone(blurred_camera) -> None:
    sharp, blurred = blurred_camera
    refined = peak_signal_noise_ratio(sharp, deblur(blurred))
    assert refined > peak_signal_noise_ratio(sharp, deblur(blurred, refine=False)) + 2.5  # +3.27 dB


def test_a_sharp_noisy_image_is_not_made_worse() -> None:
    """The shipped model was trained with a quarter of its samples unblurred: it leaves edges as they are."""
    sharp = skimage.data.camera()[100:356, 150:406].astype(np.float32) / 255
    noise = np.random.default_rng(3).normal(0, 0.01, sharp.shape)
    noisy = np.clip(np.round((sharp + noise) * 255), 0, 255).astype(np.uint8)
    reference = (sharp * 255).round().astype(np.uint8)
    before = peak_signal_noise_ratio(reference, noisy)
    assert peak_signal_noise_ratio(reference, deblur(noisy)) > before - 0.5  # measured +0.00 dB


def test_no_border_ring_and_no_checkerboard(blurred_camera) -> None:
    sharp, blurred = blurred_camera
    restored = deblur(blurred)
    border = np.ones(sharp.shape, bool)
    border[8:-8, 8:-8] = False  # the outer 8 px: a ring there would make them worse than the input
    assert peak_signal_noise_ratio(sharp[border], restored[border]) > peak_signal_noise_ratio(
        sharp[border], blurred[border]
    )
    # Two x2 upsamplings: a checkerboard is a residual whose mean depends on (y mod 4, x mod 4).
    residual = (restored.astype(float) - blurred)[8:-8, 8:-8]
    phase_means = residual.reshape(60, 4, 60, 4).mean(axis=(0, 2))
    assert np.ptp(phase_means) < 1.0  # grey levels


def test_no_colour_cast_on_gray_content(blurred_camera) -> None:
    _, blurred = blurred_camera
    as_rgb = np.repeat(blurred[..., None], 3, axis=2)
    out = deblur(as_rgb).astype(int)
    assert np.abs(out[..., 0] - out[..., 1]).mean() < 0.5 and np.abs(out[..., 1] - out[..., 2]).mean() < 0.5
    gray = deblur(blurred).astype(int)
    assert np.abs(gray - out.mean(axis=2)).mean() < 0.5


def test_tiled_matches_whole_frame_on_a_1024px_natural_image() -> None:
    from skimage.transform import resize

    image = (resize(skimage.data.astronaut(), (1024, 1024), order=3) * 255).round().astype(np.uint8)
    whole = deblur(image, tile_size=None)
    tiled = deblur(image, tile_size=512)  # the default overlap (128 px)
    assert peak_signal_noise_ratio(whole, tiled) >= 55.0  # measured 58.3 dB (96 px: 54.9; steady's: 58.5)
    # The encoder-decoder's deepest blocks see past the overlap: 0.37 % of values differ by more than one
    # grey level, 0.049 % by more than 3, at most 12 (96 px: 0.64 %, 0.117 %, 37).
    difference = np.abs(whole.astype(int) - tiled)
    assert np.mean(difference > 3) < 1e-3 and difference.max() <= 20
