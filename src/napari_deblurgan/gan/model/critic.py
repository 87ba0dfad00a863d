"""The PatchGAN critic of DeblurGAN: unconditional, 70x70 receptive field with the default depth."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn


@dataclass(frozen=True)
class CriticConfig:
    in_channels: int = 3
    ndf: int = 64
    n_layers: int = 3
    norm: Literal["instance", "none"] = "instance"

    def __post_init__(self) -> None:
        sizes = {"in_channels": (self.in_channels, 64), "ndf": (self.ndf, 256), "n_layers": (self.n_layers, 8)}
        for name, (value, most) in sizes.items():
            if type(value) is not int or not 1 <= value <= most:
                raise ValueError(f"critic.{name} must be an integer from 1 to {most}, got {value!r}")
        if self.norm not in ("instance", "none"):
            raise ValueError(f"critic.norm must be 'instance' or 'none', got {self.norm!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CriticConfig:
        known = set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or set(data) - known:
            raise ValueError(f"critic options are an object with keys from {sorted(known)}, got {data!r}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PatchCritic(nn.Module):
    """Conv4x4 s2 + LReLU, then ``n_layers - 1`` Conv4x4 s2 + norm + LReLU, Conv4x4 s1 + norm + LReLU,
    Conv4x4 s1 -> one score per patch. No batch norm: WGAN-GP penalises per-sample gradients."""

    def __init__(self, config: CriticConfig | None = None) -> None:
        super().__init__()
        cfg = config or CriticConfig()
        self.config = cfg

        def norm(c: int) -> nn.Module:
            return nn.InstanceNorm2d(c, affine=True) if cfg.norm == "instance" else nn.Identity()

        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, cfg.ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, cfg.n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < cfg.n_layers else 1
            layers += [
                nn.Conv2d(cfg.ndf * prev, cfg.ndf * mult, 4, stride, 1),
                norm(cfg.ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(cfg.ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def smallest_input(config: CriticConfig) -> int:
    """The smallest image side the critic scores: its last convolution needs an output, instance norm
    more than one value per channel."""

    def fits(side: int) -> bool:
        for n in range(config.n_layers + 2):  # 4x4 convolutions, padding 1: stride 2, then two of stride 1
            side = (side - 2) // 2 + 1 if n < config.n_layers else side - 1
            normed = config.norm == "instance" and 0 < n <= config.n_layers
            if side < (2 if normed else 1):
                return False
        return True

    return next(side for side in itertools.count(1) if fits(side))


def receptive_field(config: CriticConfig) -> int:
    """Receptive field in pixels of one output score (70 for the paper's 3 layers)."""
    strides = [2] * config.n_layers + [1, 1]
    rf = 1
    for s in reversed(strides):
        rf = rf * s + (4 - s)
    return rf
