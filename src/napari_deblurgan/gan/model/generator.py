"""The DeblurGAN ResNet generator (Kupyn et al. 2018, table 1), configurable, and the architecture
config every generator shares (see :mod:`.nafnet` for the encoder-decoder).

Layout: ReflPad3-Conv7x7 -> 2 x stride-2 Conv3x3 -> N ResBlocks -> 2 x upsampling -> ReflPad3-Conv7x7
-> tanh, plus the global skip ``out = clamp(input + residual, -1, 1)``.  Unlike the original code, the
ResBlock really has two convolutions, dropout is a module (so ``eval()`` turns it off) and any input
size works: the forward pass reflect-pads to a multiple of 4 and crops back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

NormName = Literal["instance", "batch", "none"]
UpsampleName = Literal["transpose", "resize"]
ArchName = Literal["resnet", "nafnet"]
PaddingName = Literal["reflect", "zero"]


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a generator; stored as JSON next to the weights.

    ``arch`` "resnet" is the DeblurGAN ResNet (``ngf`` base channels, ``n_blocks`` ResBlocks; the other
    fields below ``learn_residual`` apply to it); "nafnet" the encoder-decoder of :mod:`.nafnet`
    (``ngf`` channels at full resolution, ``encoder_blocks`` blocks per level, ``n_blocks`` in the
    middle; norm, dropout, upsample and padding must keep their defaults' meaning of "none": they are
    not used).
    """

    arch: ArchName = "resnet"
    encoder_blocks: tuple[int, ...] = ()
    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 64
    n_blocks: int = 9
    norm: NormName = "instance"
    dropout: float = 0.5
    upsample: UpsampleName = "transpose"
    block_padding: PaddingName = "reflect"
    learn_residual: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown generator config keys {sorted(unknown)}; known: {sorted(known)}")
        if isinstance(data.get("encoder_blocks"), list):
            data = {**data, "encoder_blocks": tuple(data["encoder_blocks"])}
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name in ("ngf", "n_blocks", "in_channels", "out_channels"):
            value = getattr(self, name)
            if type(value) is not int:  # a JSON float or string would fail later, inside torch
                raise ValueError(f"generator option {name} must be a whole number, got {value!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float):
            raise ValueError(f"generator option dropout must be a number, got {self.dropout!r}")
        if not isinstance(self.learn_residual, bool):
            raise ValueError(f"generator option learn_residual must be true or false, got {self.learn_residual!r}")
        if self.arch not in ("resnet", "nafnet"):
            raise ValueError(f"arch must be 'resnet' or 'nafnet', got {self.arch!r}")
        blocks = self.encoder_blocks
        if not isinstance(blocks, tuple) or not all(type(n) is int and 0 <= n <= 64 for n in blocks):
            raise ValueError(f"encoder_blocks must be a list of block counts (0-64), got {blocks!r}")
        if self.arch == "resnet" and blocks:
            raise ValueError('encoder_blocks are for arch "nafnet"; the ResNet has n_blocks only')
        if self.arch == "nafnet" and not 1 <= len(blocks) <= 5:
            raise ValueError(f'arch "nafnet" needs 1 to 5 levels in encoder_blocks, got {list(blocks)}')
        if self.norm not in ("instance", "batch", "none"):
            raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {self.norm!r}")
        if self.upsample not in ("transpose", "resize"):
            raise ValueError(f"upsample must be 'transpose' or 'resize', got {self.upsample!r}")
        if self.block_padding not in ("reflect", "zero"):
            raise ValueError(f"block_padding must be 'reflect' or 'zero', got {self.block_padding!r}")
        if self.ngf < 1 or self.n_blocks < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"invalid generator size: {self}")
        if self.learn_residual and self.in_channels != self.out_channels:
            raise ValueError("learn_residual needs in_channels == out_channels")
        if not 1 <= self.in_channels <= 64 or not 1 <= self.out_channels <= 64:
            raise ValueError(
                f"in_channels and out_channels must be 1 to 64, got {self.in_channels}, {self.out_channels}"
            )
        if self.approx_parameters() > MAX_PARAMETERS:
            raise ValueError(
                f"this generator would have about {self.approx_parameters() / 1e6:,.0f} M parameters, over the "
                f"limit of {MAX_PARAMETERS / 1e6:,.0f} M: refused before allocating (a damaged or hostile file?)"
            )

    def approx_parameters(self) -> int:
        """The weights of the network's blocks, to within a small factor: what validation bounds before
        anything is allocated (a ResBlock has two 3x3 convolutions at 4 x ngf channels, the two down- and
        two upsamplings 180 ngf^2 weights together; a NAFNet block about 8 c^2 weights at its level's c
        channels)."""
        if self.arch == "resnet":
            ends = 49 * self.ngf * (self.in_channels + self.out_channels)
            return 2 * 9 * (4 * self.ngf) ** 2 * self.n_blocks + 180 * self.ngf**2 + ends
        widths = [self.ngf * 2**level for level in range(len(self.encoder_blocks) + 1)]
        blocks = [*self.encoder_blocks, self.n_blocks]
        return sum(8 * c * c * max(n, 1) for c, n in zip(widths, blocks))


#: Largest generator (parameters, :meth:`GeneratorConfig.approx_parameters`) a config may ask for: 40x
#: the paper's network (11.38 M), 2 GB of float32 weights.
MAX_PARAMETERS = 500_000_000


#: Named architectures. ``paper`` is the network of the DeblurGAN paper (11.38 M parameters).
#: ``fast`` is a laptop-sized ResNet: 32 base channels and 6 ResBlocks, about a fifth of the paper's
#: multiply-adds per pixel; no normalisation layers, so tiled inference matches whole-frame inference;
#: resize+conv upsampling, so no checkerboards; zero padding inside the quarter-resolution ResBlocks (15 %
#: faster to train), reflection padding at full resolution. The shipped default model's recipe
#: (recipes/default.json) starts from it and overrides the architecture: a NAFNet-style encoder-decoder
#: (:mod:`.nafnet`) of 16 base channels, 2.4 M parameters.
PRESETS: dict[str, GeneratorConfig] = {
    "paper": GeneratorConfig(),
    "fast": GeneratorConfig(ngf=32, n_blocks=6, norm="none", dropout=0.0, upsample="resize", block_padding="zero"),
}


def preset(name: str, **overrides: Any) -> GeneratorConfig:
    """Return the named preset, optionally with some fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"Unknown generator preset {name!r}; choose one of {sorted(PRESETS)}")
    unknown = set(overrides) - {f.name for f in fields(GeneratorConfig)}
    if unknown:
        known = sorted(f.name for f in fields(GeneratorConfig))
        raise ValueError(f"Unknown generator options {sorted(unknown)}; the options are {', '.join(known)}")
    if isinstance(overrides.get("encoder_blocks"), list):  # from a JSON recipe
        overrides = {**overrides, "encoder_blocks": tuple(overrides["encoder_blocks"])}
    cfg = replace(PRESETS[name], **overrides)
    cfg.validate()
    return cfg


def _norm(name: NormName, channels: int) -> nn.Module:
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if name == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def _conv3x3(channels: int, padding: PaddingName, bias: bool) -> list[nn.Module]:
    if padding == "reflect":
        return [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias)]
    return [nn.Conv2d(channels, channels, 3, padding=1, bias=bias)]


class ResBlock(nn.Module):
    """Pad-Conv3x3-Norm-ReLU-[Dropout]-Pad-Conv3x3-Norm, plus identity."""

    def __init__(
        self, channels: int, norm: NormName, dropout: float, bias: bool, padding: PaddingName = "reflect"
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv3x3(channels, padding, bias), _norm(norm, channels), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [*_conv3x3(channels, padding, bias), _norm(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _up(cin: int, cout: int, cfg: GeneratorConfig, bias: bool) -> list[nn.Module]:
    if cfg.upsample == "transpose":
        conv: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=bias)]
    else:
        conv = [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, bias=bias)]
    return [*conv, _norm(cfg.norm, cout), nn.ReLU(inplace=True)]


class ResnetGenerator(nn.Module):
    """DeblurGAN generator. Input and output are (N, C, H, W) tensors in [-1, 1]."""

    #: Height and width are padded to a multiple of this (two stride-2 stages).
    multiple = 4
    #: Smaller inputs are padded up to this size (the 1/4-scale reflection pads need 2 pixels).
    min_size = 8

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        cfg = config or GeneratorConfig()
        cfg.validate()
        if cfg.arch != "resnet":
            raise ValueError(f"ResnetGenerator builds arch 'resnet', got {cfg.arch!r}; use build_generator")
        self.config = cfg
        bias = cfg.norm != "batch"
        ngf = cfg.ngf
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(cfg.in_channels, ngf, 7, bias=bias),
            _norm(cfg.norm, ngf),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                _norm(cfg.norm, ngf * mult * 2),
                nn.ReLU(inplace=True),
            ]
        layers += [ResBlock(ngf * 4, cfg.norm, cfg.dropout, bias, cfg.block_padding) for _ in range(cfg.n_blocks)]
        layers += _up(ngf * 4, ngf * 2, cfg, bias) + _up(ngf * 2, ngf, cfg, bias)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cfg.out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        if cfg.norm == "none":
            self._init_residual_friendly()

    def _init_residual_friendly(self) -> None:
        """Without normalisation layers: He initialisation keeps activations at unit scale (PyTorch's
        default shrinks them layer by layer, so bias updates soon kill every ReLU), each ResBlock
        starts near identity (last conv x 0.1) and so does the global residual (output conv x 0.01)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in self.model:
            if isinstance(block, ResBlock):
                last = [m for m in block.body if isinstance(m, nn.Conv2d)][-1]
                last.weight.data.mul_(0.1)
        out_conv = [m for m in self.model if isinstance(m, nn.Conv2d)][-1]
        out_conv.weight.data.mul_(0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return generate(self.model, self.config, x, self.multiple)


def generate(body: nn.Module, config: GeneratorConfig, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``x`` to a multiple of ``multiple`` (and at least 8 px), run ``body`` and crop back; add the
    global skip."""
    m, smallest = multiple, max(multiple, ResnetGenerator.min_size)
    h, w = x.shape[-2:]
    ph, pw = (max(smallest, -(-n // m) * m) - n for n in (h, w))
    xp = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate") if ph or pw else x
    residual = body(xp)[..., :h, :w]
    if not config.learn_residual:
        return residual
    return torch.clamp(x + residual, -1.0, 1.0)


class UpsampleConv(nn.Module):
    """Nearest x2 upsampling, reflection pad 1 and a 3x3 conv, computed at the input resolution.

    Each output phase (row and column parity) of that sequence is a 3x3 conv of the replicate-padded
    input with summed taps, so one conv with the four phases as channels, (row parity, column parity,
    channel) in that order, gives the same result (up to float rounding) once :class:`ShufflePad`
    interleaves them, without the 4x larger upsampled intermediate. ``pad_input=False``: the input
    comes replicate-padded already (by a :class:`ShufflePad`).
    """

    #: taps[parity, d, k]: kernel row ``k`` of the original conv lands on input offset ``d - 1``
    taps = torch.tensor([[[1.0, 0, 0], [0, 1, 1], [0, 0, 0]], [[0, 0, 0], [1, 1, 0], [0, 0, 1]]])

    def __init__(self, conv: nn.Conv2d, pad_input: bool = True) -> None:
        super().__init__()
        w = conv.weight.detach()
        taps = self.taps.to(w)
        phases = torch.einsum("adk,oikl,bel->aboide", taps, w, taps)  # (row parity, col parity, out, in, 3, 3)
        self.register_buffer("weight", phases.reshape(-1, *w.shape[1:]).contiguous())
        bias = conv.bias.detach().repeat(4) if conv.bias is not None else None
        self.register_buffer("bias", bias)
        self.pad_input = pad_input

    def extra_repr(self) -> str:
        return f"pad_input={self.pad_input}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_input:
            x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        return F.conv2d(x, self.weight, self.bias)


class ShufflePad(nn.Module):
    """Interleave an :class:`UpsampleConv`'s four phases into an image twice the size and pad it by
    ``padding`` (``mode`` "reflect" or "replicate"), in one pass over memory: a pixel shuffle and a pad
    in turn took twice as long on channels-last tensors."""

    def __init__(self, padding: int = 0, mode: Literal["reflect", "replicate"] = "reflect") -> None:
        super().__init__()
        if mode not in ("reflect", "replicate") or padding < 0:
            raise ValueError(f"ShufflePad pads by 0 or more pixels, 'reflect' or 'replicate'; got {padding}, {mode!r}")
        self.padding, self.mode = padding, mode

    def extra_repr(self) -> str:
        return f"padding={self.padding}, mode={self.mode!r}"

    def forward(self, phases: torch.Tensor) -> torch.Tensor:
        n, c4, h, w = phases.shape
        c, p = c4 // 4, self.padding
        if self.mode == "reflect" and p >= 2 * min(h, w):
            raise ValueError(f"Reflection padding of {p} px needs an image wider than that, got {2 * h}x{2 * w}")
        layout = (
            torch.channels_last if phases.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        )
        out = torch.empty(
            (n, c, 2 * h + 2 * p, 2 * w + 2 * p), dtype=phases.dtype, device=phases.device, memory_format=layout
        )
        inner = out[:, :, p : p + 2 * h, p : p + 2 * w]
        inner.unflatten(2, (h, 2)).unflatten(4, (w, 2)).copy_(phases.unflatten(1, (2, 2, c)).permute(0, 3, 4, 1, 5, 2))
        if p:
            self._pad_borders(out, p)
        return out

    def _pad_borders(self, out: torch.Tensor, p: int) -> None:
        """Fill the ``p`` px frame around the interior: rows first, then whole columns (corners too)."""
        for dim in (2, 3):
            size = out.shape[dim] - 2 * p
            if self.mode == "reflect":
                before, after = out.narrow(dim, p + 1, p).flip(dim), out.narrow(dim, size - 1, p).flip(dim)
            else:
                before, after = out.narrow(dim, p, 1), out.narrow(dim, size + p - 1, 1)
            out.narrow(dim, 0, p).copy_(before)  # copy_ broadcasts the replicated edge
            out.narrow(dim, size + p, p).copy_(after)


def _is_upsample_conv(layers: list[nn.Module]) -> bool:
    up, pad, conv = layers
    return (
        isinstance(up, nn.Upsample)
        and up.mode == "nearest"
        and up.scale_factor in (2, 2.0, (2.0, 2.0))
        and isinstance(pad, nn.ReflectionPad2d)
        and tuple(pad.padding) == (1, 1, 1, 1)
        and isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.groups == 1
    )


def _rearranged(layers: list[nn.Module]) -> list[nn.Module]:
    """``layers`` with every nearest x2 upsampling + reflection pad 1 + 3x3 conv as an
    :class:`UpsampleConv` and a :class:`ShufflePad`; each ShufflePad moves past the ReLUs and identities
    after it (they act on every value alike) and takes on the padding that follows: a reflection pad, or
    the next UpsampleConv's replicate pad of 1."""
    layers, out = list(layers), list[nn.Module]()
    while layers:
        if len(layers) >= 3 and _is_upsample_conv(layers[:3]):
            padded = (
                bool(out) and isinstance(out[-1], ShufflePad) and (out[-1].padding, out[-1].mode) == (1, "replicate")
            )
            out.append(UpsampleConv(layers[2], pad_input=not padded))  # type: ignore[arg-type]
            layers = [ShufflePad(), *layers[3:]]
            continue
        layer = layers.pop(0)
        if isinstance(layer, ShufflePad) and layer.padding == 0 and layers:
            after = layers[0]
            if isinstance(after, nn.Identity | nn.ReLU):
                layers.insert(1, layer)
                continue
            if isinstance(after, nn.ReflectionPad2d) and len(set(after.padding)) == 1:
                layer, layers = ShufflePad(after.padding[0], "reflect"), layers[1:]
            elif len(layers) >= 3 and _is_upsample_conv(layers[:3]):
                layer = ShufflePad(1, "replicate")  # the next UpsampleConv's input pad
        out.append(layer)
    return out


class InferenceGenerator(nn.Module):
    """A generator rearranged for inference: the same outputs (up to float rounding), faster, with
    every upsampling stage as an :class:`UpsampleConv` and a :class:`ShufflePad` (see
    :func:`_rearranged`). It shares the generator's other layers, so build it after training, right
    before use."""

    def __init__(self, generator: ResnetGenerator) -> None:
        super().__init__()
        self.config = generator.config
        self.multiple = generator.multiple
        self.model = nn.Sequential(*_rearranged(list(generator.model)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return generate(self.model, self.config, x, self.multiple)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
