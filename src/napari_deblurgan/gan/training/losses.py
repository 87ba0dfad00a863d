"""Losses: pixel content losses, the VGG19 conv3_3 perceptual loss, and WGAN-GP."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
HASH_PREFIX = VGG19_FILENAME.split("-")[1].split(".")[0]  # torchvision names files by their SHA-256 prefix
#: Layer layout of torchvision's ``vgg19().features`` (so its state dict loads unchanged).
_VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
#: Index of conv3_3 in ``features`` (DeblurGAN's content layer).
CONV3_3 = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CONTENT_LOSSES = ("l1", "mse", "charbonnier", "charbonnier+fft", "perceptual", "l1+perceptual")


def vgg19_features(last_layer: int = CONV3_3) -> nn.Sequential:
    """``torchvision.models.vgg19().features[: last_layer + 1]``, defined here (no torchvision needed)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            cin = int(v)
    return nn.Sequential(*layers[: last_layer + 1])


def find_vgg19_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The ImageNet VGG19 weights file: ``path``, else $NAPARI_DEBLURGAN_VGG19, else torch's hub cache
    (downloaded there when a network is reachable). Raises FileNotFoundError saying where to put it."""
    candidates = [Path(p) for p in (path, os.environ.get("NAPARI_DEBLURGAN_VGG19")) if p]
    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME
    for candidate in candidates:
        if not candidate.is_file():
            raise FileNotFoundError(f"VGG19 weights file {candidate} does not exist")
        return candidate
    missing = "are not in torch's hub cache"
    if not hub_file.is_file() and download:
        try:  # torch's way: into the hub cache, with progress, the SHA-256 checked against the file name
            hub_file.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(VGG19_URL, str(hub_file), HASH_PREFIX, progress=True)
        except RuntimeError as exc:  # the file arrived but its checksum is wrong: never use it
            raise ValueError(f"The VGG19 weights downloaded from {VGG19_URL} failed their checksum ({exc})") from exc
        except (OSError, ValueError) as exc:  # offline or unreachable
            missing = f"could not be downloaded from {VGG19_URL} ({' '.join(str(exc).split()) or type(exc).__name__})"
    if hub_file.is_file():
        return hub_file
    raise FileNotFoundError(
        f"The perceptual loss needs ImageNet VGG19 weights ({VGG19_FILENAME}, torchvision's format), which {missing}: "
        f"pass the file with --vgg-weights FILE (or NAPARI_DEBLURGAN_VGG19=FILE), put it at {hub_file}, or choose "
        "a content loss without 'perceptual' (the default, charbonnier, needs no weights)."
    )


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A weights file's tensors, loaded with ``weights_only=True`` (no code runs); one clear error for a
    file that holds other Python objects or is not a torch file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
            raise ValueError(  # not torch's advice to load with weights_only=False, which would run its code
                f"VGG19 weights file {path} holds Python objects besides tensors, which are refused "
                "(nothing in it ran); pass torchvision's vgg19 weights (a state dict of tensors)"
            ) from None
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        unpickling = isinstance(exc, pickle.UnpicklingError)  # its text is the advice to drop weights_only
        reason = "not a pickle of tensors" if unpickling or not lines else lines[0]
        raise ValueError(
            f"Cannot load VGG19 weights file {path}: it is truncated, corrupt or not a torch file ({reason})"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"VGG19 weights file {path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


class PerceptualLoss(nn.Module):
    """MSE between VGG19 conv3_3 features of ImageNet-normalised images (inputs in [-1, 1])."""

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        self.features = vgg19_features()
        state = _load_weights(find_vgg19_weights(weights))
        ours = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        wanted = self.features.state_dict().keys()
        missing = [k for k in wanted if k not in ours]
        if missing:
            raise ValueError(f"VGG19 weights file lacks {missing}: is it torchvision's vgg19 state dict?")
        deepest = ours.get("34.weight")  # conv5_4: VGG19 has it, VGG16 (the same layers up to conv3_3) not
        if deepest is None or tuple(deepest.shape) != (512, 512, 3, 3):
            raise ValueError(
                "The weights file is not VGG19's (it lacks conv5_4, features.34: VGG16's?); pass torchvision's "
                "vgg19 weights"
            )
        self.features.load_state_dict({k: ours[k] for k in wanted})
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _feat(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(((x + 1) / 2 - self.mean) / self.std)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self._feat(target)
        return F.mse_loss(self._feat(output), target_features)


def charbonnier(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((output - target) ** 2 + eps**2).mean()


def charbonnier_fft(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Charbonnier plus the mean absolute difference of the orthonormal 2D spectra, which weighs an error at
    each spatial frequency about alike (the fine detail that blur removes is a small share of the pixel
    error); the spectra are computed in float32, also under autocast."""
    spectrum = torch.fft.rfft2((output - target).float(), norm="ortho")
    return charbonnier(output, target) + spectrum.abs().mean()


def content_loss(
    name: str, vgg_weights: str | Path | None = None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The content loss called ``name`` (one of :data:`CONTENT_LOSSES`), as ``loss(output, target)``."""
    if name not in CONTENT_LOSSES:
        raise ValueError(f"Unknown content loss {name!r}; choose one of {', '.join(CONTENT_LOSSES)}")
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "charbonnier":
        return charbonnier
    if name == "charbonnier+fft":
        return charbonnier_fft
    perceptual = PerceptualLoss(vgg_weights)
    if name == "perceptual":
        return perceptual
    return _Sum(perceptual)


class _Sum(nn.Module):
    """L1 + perceptual."""

    def __init__(self, perceptual: PerceptualLoss) -> None:
        super().__init__()
        self.perceptual = perceptual

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(output, target) + self.perceptual(output, target)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """WGAN-GP: ``weight * mean((||grad D(x_hat)||_2 - 1)^2)`` with one alpha per sample (uniform, or
    the given (N,) ``alpha``) and the norm taken per sample over all of (C, H, W).

    A PatchGAN critic's value for a sample is the mean of its patch scores (what the Wasserstein loss
    averages), so that mean is what must be 1-Lipschitz; the gradient is taken of it.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device)
    alpha = alpha.to(real.device, real.dtype).view(-1, 1, 1, 1)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    values = critic(x_hat).flatten(1).mean(1)
    (grad,) = torch.autograd.grad(values.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return weight * ((norms - 1) ** 2).mean()
