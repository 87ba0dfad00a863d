"""An encoder-decoder generator with NAFNet's cheap blocks (Chen et al., ECCV 2022), made tile-safe.

Each block is a per-pixel LayerNorm, a 1x1 expansion, a 3x3 depthwise convolution and a *simple gate*
(one half of the channels times the other) instead of an activation, then a 1x1 projection, and the same
again without the depthwise convolution as a feed-forward part; both add to the input through a learned
scale that starts at zero, so a new network is the identity. NAFNet's channel attention pools over the
whole image: it is left out, as are all statistics over space, so a tile gives the same output as the
same region of the whole frame. Each level halves the resolution (a 2x2 stride-2 convolution) and doubles
the channels; the way back is a 1x1 convolution and bilinear x2 upsampling (no checkerboards), added to
the encoder's features, then one block (none on a level whose encoder has none). The output is the
input plus a residual, clamped to [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .generator import GeneratorConfig, generate


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel (nothing is pooled over space)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NafBlock(nn.Module):
    """Norm-1x1-DW3x3-gate-1x1 and Norm-1x1-gate-1x1, each added through a zero-initialised scale."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.spatial = nn.Sequential(
            ChannelNorm(c),
            nn.Conv2d(c, 2 * c, 1),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c),
            SimpleGate(),
            nn.Conv2d(c, c, 1),
        )
        self.mix = nn.Sequential(ChannelNorm(c), nn.Conv2d(c, 2 * c, 1), SimpleGate(), nn.Conv2d(c, c, 1))
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.beta * self.spatial(x)
        return x + self.gamma * self.mix(x)


class Upsample(nn.Module):
    """1x1 convolution to half the channels at the low resolution, then bilinear x2."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c // 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False)


class _Body(nn.Module):
    """Everything but the global skip: returns the residual."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        c = cfg.ngf
        self.intro = nn.Conv2d(cfg.in_channels, c, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        for n in cfg.encoder_blocks:
            self.encoders.append(nn.Sequential(*(NafBlock(c) for _ in range(n))))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*(NafBlock(c) for _ in range(cfg.n_blocks)))
        for n in reversed(cfg.encoder_blocks):
            self.ups.append(Upsample(c))
            c //= 2
            self.decoders.append(NafBlock(c) if n else nn.Identity())
        self.ending = nn.Conv2d(c, cfg.out_channels, 3, padding=1)
        nn.init.normal_(self.ending.weight, std=1e-3)
        nn.init.zeros_(self.ending.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intro(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(up(x) + skip)
        return self.ending(x)


class NafGenerator(nn.Module):
    """Encoder-decoder generator; input and output are (N, C, H, W) tensors in [-1, 1]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        config.validate()
        if config.arch != "nafnet":
            raise ValueError(f"NafGenerator builds arch 'nafnet', got {config.arch!r}")
        self.config = config
        self.multiple = 2 ** len(config.encoder_blocks)
        self.model = _Body(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return generate(self.model, self.config, x, self.multiple)
