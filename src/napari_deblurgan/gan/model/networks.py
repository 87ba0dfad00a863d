"""Build any generator from its config, and the form of it that runs fastest at inference."""

from __future__ import annotations

from torch import nn

from .generator import GeneratorConfig, InferenceGenerator, ResnetGenerator
from .nafnet import NafGenerator

#: Every generator takes and gives (N, C, H, W) in [-1, 1] and has ``config`` and ``multiple``.
Generator = ResnetGenerator | NafGenerator


def build_generator(config: GeneratorConfig) -> Generator:
    """A new generator of the architecture ``config`` describes."""
    config.validate()
    return NafGenerator(config) if config.arch == "nafnet" else ResnetGenerator(config)


def for_inference(generator: Generator) -> nn.Module:
    """``generator`` rearranged for fast inference where a faster equivalent exists (the ResNet's
    upsampling stages), else itself. Build it after training, right before use."""
    return InferenceGenerator(generator) if isinstance(generator, ResnetGenerator) else generator
