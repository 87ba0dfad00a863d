"""Start a narrow generator from a trained wide one: keep each layer's most informative channels.

Data-driven filter pruning of every layer at once. On a calibration batch, each channel's variance at
the input of every layer that reads it, times the squared weight it is read with, estimates the error
of replacing the channel by its mean; the channels with the largest error are kept (the residual
stream's summed over all its readers, so the ResBlocks keep one common set), and each dropped channel's
mean contribution moves into the reading layer's bias (without that, halving every layer's inputs
shifts the later ReLUs off and whole layers go dead). The narrow network keeps the wide one's
channels, not yet its function, but it fine-tunes faster than a fresh start (stage 13 of the previous
default model, a ResNet narrowed from 32 to 16 base channels: 20.56 dB on the validation crops after
1,000 steps, from a fresh start 19.88).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch
from torch import nn

from .generator import ResnetGenerator

Conv = nn.Conv2d | nn.ConvTranspose2d


def _weight(conv: Conv) -> torch.Tensor:
    """The weight as (out, in, kh, kw) whatever the layer's kind."""
    w = conv.weight.detach()
    return w.transpose(0, 1) if isinstance(conv, nn.ConvTranspose2d) else w


def _input_moments(model: nn.Module, convs: list[Conv], batch: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of every conv's input on ``batch``."""
    moments: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(i: int, _module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().float().transpose(0, 1).flatten(1)
        moments[i] = (x.mean(dim=1), x.var(dim=1))

    handles = [c.register_forward_pre_hook(partial(record, i)) for i, c in enumerate(convs)]
    try:
        with torch.no_grad():
            model.eval()(batch)
    finally:
        for h in handles:
            h.remove()
    return [moments[i] for i in range(len(convs))]


def narrow_generator(wide: ResnetGenerator, ngf: int, calibration: torch.Tensor) -> ResnetGenerator:
    """A generator with ``ngf`` base channels, otherwise ``wide``'s architecture, started from ``wide``'s
    most informative channels; ``calibration`` is a batch of inputs (N, 3, H, W) in [-1, 1]."""
    cfg = wide.config
    if not 0 < ngf < cfg.ngf:
        raise ValueError(f"can only narrow to fewer base channels than the model's {cfg.ngf}, not {ngf}")
    if cfg.norm != "none":
        raise ValueError(f"only models without normalisation layers can be narrowed, not norm={cfg.norm!r}")
    narrow = ResnetGenerator(replace(cfg, ngf=ngf))
    src = [m for m in wide.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    dst = [m for m in narrow.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    w = [_weight(c) for c in src]
    moments = _input_moments(wide, src, calibration.to(w[0]))

    def keep(readers: list[int], count: int) -> torch.Tensor:
        error = sum(moments[r][1] * w[r].transpose(0, 1).flatten(1).square().sum(dim=1) for r in readers)
        return torch.topk(error, count).indices.sort().values  # type: ignore[union-attr]

    n = cfg.n_blocks
    down, up1, up2, last = 1, 3 + 2 * n, 4 + 2 * n, 5 + 2 * n
    blocks = [(3 + 2 * i, 4 + 2 * i) for i in range(n)]
    stream = keep([a for a, _ in blocks] + [up1], 4 * ngf)
    keep_in = {0: torch.arange(cfg.in_channels), down: keep([down], ngf), 2: keep([2], 2 * ngf), up1: stream}
    keep_in |= {up2: keep([up2], 2 * ngf), last: keep([last], ngf)}
    keep_in |= {a: stream for a, _ in blocks} | {b: keep([b], 4 * ngf) for _, b in blocks}
    readers_of = {0: down, 1: 2, up1: up2, up2: last} | {a: b for a, b in blocks}
    keep_out = {i: keep_in[r] for i, r in readers_of.items()}
    keep_out |= {2: stream, last: torch.arange(cfg.out_channels)} | {b: stream for _, b in blocks}
    with torch.no_grad():
        for i, (s, d) in enumerate(zip(src, dst, strict=True)):
            dropped = torch.ones(w[i].shape[1], dtype=torch.bool)
            dropped[keep_in[i]] = False
            sub = w[i][keep_out[i]]
            d.weight.copy_(_weight_back(d, sub[:, keep_in[i]]))
            shift = torch.einsum("oikl,i->o", sub[:, dropped], moments[i][0][dropped])
            d.bias.copy_(s.bias.detach()[keep_out[i]] + shift)
    return narrow


def _weight_back(conv: Conv, weight: torch.Tensor) -> torch.Tensor:
    return weight.transpose(0, 1) if isinstance(conv, nn.ConvTranspose2d) else weight
