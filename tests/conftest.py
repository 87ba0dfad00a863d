"""Shared fixtures: small generators saved as real model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _tiny_generator(seed: int, identity: bool = False):
    import torch

    from napari_deblurgan.gan.generator import GeneratorConfig, ResnetGenerator

    torch.manual_seed(seed)
    cfg = GeneratorConfig(ngf=8, n_blocks=2, norm="none", dropout=0.0, upsample="resize", block_padding="zero")
    model = ResnetGenerator(cfg)
    out_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        if identity:
            out_conv.weight.zero_()
        else:  # undo the near-identity init so the network visibly changes images
            out_conv.weight.normal_(0, 0.05)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random (untrained) small generator whose output clearly differs from its input."""
    from napari_deblurgan.gan.weights import save_generator

    return save_generator(_tiny_generator(0), tmp_path_factory.mktemp("models") / "tiny.safetensors")


@pytest.fixture(scope="session")
def identity_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generator whose residual is exactly zero: deblur() must then return its input unchanged."""
    from napari_deblurgan.gan.weights import save_generator

    return save_generator(_tiny_generator(1, identity=True), tmp_path_factory.mktemp("models") / "identity.safetensors")


@pytest.fixture(scope="session")
def natural_rgb() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()
