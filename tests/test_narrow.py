"""Narrowing a trained generator: the channels kept, the biases that absorb the dropped ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from napari_deblurgan.gan.model.generator import ResnetGenerator, preset
from napari_deblurgan.gan.model.narrow import narrow_generator

SMALL = preset("fast", ngf=4, n_blocks=2)


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _plant(narrow: ResnetGenerator, constant: float) -> ResnetGenerator:
    """A twice-as-wide generator holding ``narrow`` in its odd channels; every extra channel is written
    with zero weights and bias ``constant`` (a constant after its ReLU) and read with random weights, so
    the wide network is ``narrow`` plus constant shifts (exactly so away from the zero-padded borders)."""
    torch.manual_seed(1)
    wide = ResnetGenerator(replace(narrow.config, ngf=2 * narrow.config.ngf))
    n = narrow.config.n_blocks
    stream_writers = {2} | {4 + 2 * i for i in range(n)}
    with torch.no_grad():
        for i, (w, s) in enumerate(zip(_convs(wide), _convs(narrow), strict=True)):
            outs = torch.arange(w.out_channels) if i == 5 + 2 * n else torch.arange(1, w.out_channels, 2)
            ins = torch.arange(w.in_channels) if i == 0 else torch.arange(1, w.in_channels, 2)
            w.weight.normal_(0, 0.1)  # the extra channels are read with random weights ...
            extra = torch.ones(w.out_channels, dtype=torch.bool)
            extra[outs] = False
            w.weight[extra] = 0  # ... and written with none
            w.bias[extra] = 0 if i in stream_writers else constant  # the stream's extras stay constant
            w.weight[outs[:, None], ins] = s.weight
            w.bias[outs] = s.bias
    return wide


def _interior(x: torch.Tensor, margin: int = 28) -> torch.Tensor:
    return x[..., margin:-margin, margin:-margin]


@pytest.mark.parametrize("constant", [0.0, 0.5])
def test_narrowing_keeps_the_informative_channels_and_folds_constant_ones_into_the_biases(constant: float) -> None:
    torch.manual_seed(0)
    planted = ResnetGenerator(SMALL)
    wide = _plant(planted, constant)
    x = torch.rand(2, 3, 96, 96) * 2 - 1
    narrow = narrow_generator(wide, 4, calibration=x)
    assert narrow.config == SMALL
    for got, want in zip(_convs(narrow), _convs(planted), strict=True):  # the planted channels, in order
        assert torch.equal(got.weight, want.weight)
    with torch.no_grad():
        expected, got = wide(x), narrow(x)
    if constant == 0.0:  # dead extra channels: the narrow network is the wide one, borders and all
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    else:
        assert not torch.allclose(got, planted(x))  # the constants' contributions moved into biases ...
        torch.testing.assert_close(_interior(got), _interior(expected), rtol=0, atol=1e-4)  # ... exactly


@pytest.mark.parametrize("upsample", ["resize", "transpose"])
def test_a_narrowed_real_network_stays_close_to_the_wide_one(upsample: str) -> None:
    torch.manual_seed(0)
    wide = ResnetGenerator(preset("fast", ngf=8, n_blocks=2, upsample=upsample))
    with torch.no_grad():
        for conv in wide.modules():
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                conv.bias.normal_(0, 0.2)  # biases that matter, as in a trained network
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        target = wide(x) - x
        narrowed = narrow_generator(wide, 4, calibration=x)(x) - x
        fresh = ResnetGenerator(preset("fast", ngf=4, n_blocks=2, upsample=upsample))(x) - x
    assert (narrowed - target).square().mean() < 0.5 * (fresh - target).square().mean()


def test_narrowing_refuses_a_wider_target_and_normalisation_layers() -> None:
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="fewer base channels than the model's 4"):
        narrow_generator(ResnetGenerator(SMALL), 8, x)
    with pytest.raises(ValueError, match="without normalisation layers"):
        narrow_generator(ResnetGenerator(preset("paper", ngf=8, n_blocks=1)), 4, x)
