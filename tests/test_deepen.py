"""Deepening a trained NAFNet-style generator: the same function, with new blocks that train."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from napari_deblurgan.gan.model.deepen import deepen_generator, deepens
from napari_deblurgan.gan.model.generator import GeneratorConfig
from napari_deblurgan.gan.model.nafnet import NafBlock, NafGenerator

SMALL = GeneratorConfig.from_dict({"arch": "nafnet", "ngf": 4, "encoder_blocks": [0, 1, 1], "n_blocks": 1})


def _trained(config: GeneratorConfig) -> NafGenerator:
    """A generator whose block scales are not zero, as after training (a fresh one is the identity)."""
    torch.manual_seed(0)
    g = NafGenerator(config)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return g


def test_a_deepened_generator_computes_what_the_trained_one_did_and_its_new_blocks_learn() -> None:
    trained = _trained(SMALL)
    deeper = deepen_generator(trained, replace(SMALL, encoder_blocks=(1, 1, 3), n_blocks=3))
    assert len(deeper.model.middle) == 3 and len(deeper.model.encoders[2]) == 3
    assert isinstance(deeper.model.decoders[-1], NafBlock)  # full resolution gained its first decoder block
    x = torch.rand(2, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(deeper(x), trained(x), rtol=0, atol=1e-6)
    deeper(x).square().mean().backward()  # the new blocks' scales get gradients: they are not dead weight
    assert deeper.model.middle[2].beta.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "change",
    [
        {"n_blocks": 0},  # fewer blocks
        {"ngf": 8},  # other channels
        {"encoder_blocks": (0, 1)},  # other levels
    ],
)
def test_deepening_refuses_what_would_change_the_function(change: dict) -> None:
    target = replace(SMALL, **change)
    assert not deepens(SMALL, target)
    with pytest.raises(ValueError, match="cannot deepen"):
        deepen_generator(_trained(SMALL), target)
