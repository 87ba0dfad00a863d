from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from napari_deblurgan.gan.model.critic import CriticConfig, PatchCritic, receptive_field
from napari_deblurgan.gan.training.losses import (
    CONV3_3,
    PerceptualLoss,
    content_loss,
    find_vgg19_weights,
    gradient_penalty,
    vgg19_features,
)


class _Linear(nn.Module):
    """D(x) = <w, x> per sample, as a one-patch map."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1).view(-1, 1, 1, 1)


class _Square(nn.Module):
    """Two patches per sample with scores sum(x^2) and 0: the critic value is their mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x**2).flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1).view(-1, 1, 1, 2)


def test_gradient_penalty_of_a_linear_critic_is_known() -> None:
    w = torch.full((3, 2, 2), 0.5)  # ||w|| = sqrt(12 * 0.25) = sqrt(3)
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    gp = gradient_penalty(_Linear(w), real, fake, weight=10.0)
    assert gp.item() == pytest.approx(10 * (3**0.5 - 1) ** 2, rel=1e-5)


def test_gradient_penalty_uses_one_alpha_and_one_norm_per_sample() -> None:
    real, fake = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    alpha = torch.tensor([0.0, 0.3, 1.0])
    # value = mean over 2 patches of sum(x^2) -> grad = x_hat (2x / 2); per-sample L2 norm over C,H,W
    x_hat = alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake
    expected = 10 * ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert gradient_penalty(_Square(), real, fake, 10.0, alpha).item() == pytest.approx(expected.item(), rel=1e-5)


def test_patch_critic_has_a_70px_receptive_field() -> None:
    assert receptive_field(CriticConfig()) == 70
    assert PatchCritic()(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_pixel_content_losses() -> None:
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert content_loss("l1")(a, b).item() == pytest.approx(0.5)
    assert content_loss("mse")(a, b).item() == pytest.approx(0.25)
    assert content_loss("charbonnier")(a, b).item() == pytest.approx(0.5, rel=1e-5)
    # a constant error of 0.5 is one DC coefficient of 0.5 * 4 (orthonormal 4x4) among 4 x 3 rfft2 bins
    assert content_loss("charbonnier+fft")(a, b).item() == pytest.approx(0.5 + 2 / 12, rel=1e-5)
    assert content_loss("charbonnier+fft")(a.bfloat16(), b.bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError, match="choose one of"):
        content_loss("ssim")


def _fake_vgg_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg19_features(CONV3_3).state_dict().items()}
    state["features.34.weight"] = torch.zeros(512, 512, 3, 3)  # conv5_4, which VGG16 lacks
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file has more; it is ignored
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path


def test_perceptual_loss_loads_torchvision_format_weights(tmp_path: Path) -> None:
    path = _fake_vgg_file(tmp_path)
    loss = PerceptualLoss(path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0
    assert loss(x, -x).item() > 0.0
    assert torch.equal(loss.features[0].weight, torch.load(path, weights_only=True)["features.0.weight"])
    assert len(loss.features) == CONV3_3 + 1  # up to conv3_3, as DeblurGAN


def test_vgg16_weights_are_refused_as_vgg19(tmp_path: Path) -> None:
    state = torch.load(_fake_vgg_file(tmp_path), weights_only=True)
    del state["features.34.weight"]  # VGG16: the same layers up to conv3_3, none at 34
    torch.save(state, tmp_path / "vgg16.pth")
    with pytest.raises(ValueError, match="not VGG19's"):
        PerceptualLoss(tmp_path / "vgg16.pth")


def test_missing_vgg_weights_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("NAPARI_DEBLURGAN_VGG19", raising=False)
    with pytest.raises(FileNotFoundError, match=r"vgg19-dcbb9e9d.pth.*hub/checkpoints"):
        find_vgg19_weights(download=False)
    monkeypatch.setenv("NAPARI_DEBLURGAN_VGG19", str(_fake_vgg_file(tmp_path)))
    assert find_vgg19_weights(download=False).name == "vgg19-dcbb9e9d.pth"


def test_vgg_weights_are_fetched_into_the_hub_cache_and_checksummed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from napari_deblurgan.gan.training import losses

    (tmp_path / "server").mkdir()
    made = _fake_vgg_file(tmp_path / "server")
    prefix = hashlib.sha256(made.read_bytes()).hexdigest()[:8]
    served = made.with_name(f"vgg19-{prefix}.pth")
    made.rename(served)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("NAPARI_DEBLURGAN_VGG19", raising=False)
    monkeypatch.setattr(losses, "VGG19_URL", served.as_uri())
    monkeypatch.setattr(losses, "VGG19_FILENAME", served.name)
    monkeypatch.setattr(losses, "HASH_PREFIX", "0" * 8 if prefix != "0" * 8 else "1" * 8)
    with pytest.raises(ValueError, match="failed their checksum"):
        find_vgg19_weights()
    assert not (tmp_path / "hub" / "checkpoints" / served.name).exists()  # a bad file is never kept
    monkeypatch.setattr(losses, "HASH_PREFIX", prefix)
    fetched = find_vgg19_weights()
    assert fetched == tmp_path / "hub" / "checkpoints" / served.name
    assert fetched.read_bytes() == served.read_bytes()
    loss = PerceptualLoss()  # no file given: the cached one, loaded as tensors only
    assert torch.equal(loss.features[0].weight, torch.load(served, weights_only=True)["features.0.weight"])
    served.unlink()  # cached now: found without the network
    assert find_vgg19_weights() == fetched


def test_offline_the_missing_vgg_weights_are_one_line_that_says_to_pass_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_deblurgan.gan.training import losses

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("NAPARI_DEBLURGAN_VGG19", raising=False)
    monkeypatch.setattr(losses, "VGG19_URL", (tmp_path / "unreachable" / "vgg19-dcbb9e9d.pth").as_uri())
    with pytest.raises(FileNotFoundError) as info:
        content_loss("perceptual")
    message = str(info.value)
    assert f"could not be downloaded from {losses.VGG19_URL}" in message and "--vgg-weights FILE" in message
    assert len(message.splitlines()) == 1 and not list((tmp_path / "hub" / "checkpoints").iterdir())


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_given_as_vgg_weights_is_one_clear_line_without_torchs_advice(tmp_path: Path, capsys) -> None:
    evil = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": _Payload()}, evil)
    with pytest.raises(ValueError) as info:
        PerceptualLoss(evil)
    message = str(info.value)
    assert message.startswith(f"VGG19 weights file {evil} holds Python objects besides tensors, which are refused")
    assert "weights_only" not in message and len(message.splitlines()) == 1
    assert "this must never run" not in capsys.readouterr().out
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(ValueError, match=r"text.pth: it is truncated, corrupt or not a torch file \(not a pickle"):
        PerceptualLoss(tmp_path / "text.pth")
