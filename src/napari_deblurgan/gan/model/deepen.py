"""Start a deeper NAFNet-style generator from a trained one: same function, more blocks to train.

A :class:`~.nafnet.NafBlock` adds to its input through scales that start at zero, so blocks appended
to a level (or to the middle) are the identity until training moves them; so is the decoder block a
level gains with its first encoder block. The deeper network keeps every trained weight and computes
exactly what the trained one does; training then uses the new capacity. Blocks at the deep levels are
cheap: each costs about the same multiply-adds per full-resolution pixel as one at full resolution
but has 4-256x its weights.
"""

from __future__ import annotations

from dataclasses import replace

from .generator import GeneratorConfig
from .nafnet import NafGenerator


def deepens(previous: GeneratorConfig, config: GeneratorConfig) -> bool:
    """True when ``config`` is ``previous`` with at least as many blocks on every level and in the middle."""
    if previous.arch != "nafnet" or config.arch != "nafnet":
        return False
    if len(previous.encoder_blocks) != len(config.encoder_blocks):
        return False
    same_levels = replace(config, encoder_blocks=previous.encoder_blocks, n_blocks=previous.n_blocks) == previous
    more = all(b >= a for a, b in zip(previous.encoder_blocks, config.encoder_blocks))
    return same_levels and more and config.n_blocks >= previous.n_blocks


def deepen_generator(previous: NafGenerator, config: GeneratorConfig) -> NafGenerator:
    """A :class:`NafGenerator` of ``config`` holding ``previous``'s weights, its extra blocks the identity."""
    if not deepens(previous.config, config):
        raise ValueError(
            f"cannot deepen {previous.config} into {config}: it needs the same NAFNet levels and channels, "
            "with at least as many blocks everywhere"
        )
    deeper = NafGenerator(config).to(next(previous.parameters()).device)
    state = deeper.state_dict()
    for name, tensor in previous.state_dict().items():
        if state[name].shape != tensor.shape:
            raise ValueError(f"{name}: shape {tuple(tensor.shape)} does not fit {tuple(state[name].shape)}")
        state[name] = tensor
    deeper.load_state_dict(state)
    return deeper
