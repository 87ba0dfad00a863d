from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_deblurgan import deblur
from napari_deblurgan.gan.model.generator import GeneratorConfig, preset
from napari_deblurgan.gan.model.nafnet import NafGenerator
from napari_deblurgan.gan.model.networks import build_generator, for_inference
from napari_deblurgan.gan.model.weights import load_generator, read_metadata, save_generator


def _config(**overrides: object) -> GeneratorConfig:
    fields = {"arch": "nafnet", "ngf": 8, "encoder_blocks": [0, 1], "n_blocks": 1, **overrides}
    return preset("fast", **fields)


def _trained_looking(config: GeneratorConfig, seed: int = 0) -> NafGenerator:
    """A network whose blocks and output are not the identity they start as."""
    torch.manual_seed(seed)
    model = build_generator(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")) or "ending" in name:
                p.normal_(0, 0.3)
    return model.eval()  # type: ignore[return-value]


def test_a_new_network_is_the_identity_up_to_a_small_residual() -> None:
    model = build_generator(_config()).eval()
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        assert float((model(x) - x).abs().max()) < 0.05


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (17, 30), (37, 41)])
def test_any_size_keeps_its_shape_and_range(size: tuple[int, int]) -> None:
    model = _trained_looking(_config(encoder_blocks=[1, 1, 1]))
    assert model.multiple == 8
    x = torch.rand(1, 3, *size) * 2 - 1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_nothing_is_pooled_over_the_image() -> None:
    # A change far outside the receptive field leaves a region unchanged: no statistic of the whole image
    # (NAFNet's channel attention, instance norm) reaches it, so tiles match the whole frame.
    model = _trained_looking(_config())
    x = torch.rand(1, 3, 64, 256) * 2 - 1
    changed = x.clone()
    changed[..., 192:] = -changed[..., 192:]
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert torch.equal(a[..., :64], b[..., :64])
    assert not torch.equal(a[..., 192:], b[..., 192:])


def test_gradients_reach_every_parameter() -> None:
    model = build_generator(_config(encoder_blocks=[1, 1]))
    model(torch.rand(2, 3, 32, 32) * 2 - 1).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_inference_form_is_the_network_itself() -> None:
    model = build_generator(_config())
    assert for_inference(model) is model


def test_config_checks_name_the_problem() -> None:
    with pytest.raises(ValueError, match="1 to 5 levels"):
        GeneratorConfig(arch="nafnet").validate()
    with pytest.raises(ValueError, match="encoder_blocks are for arch"):
        GeneratorConfig(encoder_blocks=(1,)).validate()
    with pytest.raises(ValueError, match="arch must be"):
        GeneratorConfig(arch="vit").validate()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block counts"):
        GeneratorConfig.from_dict({"arch": "nafnet", "encoder_blocks": [1, "2"]})


def test_round_trip_through_a_model_file(tmp_path: Path) -> None:
    model = _trained_looking(_config(encoder_blocks=[0, 1, 2]))
    save_generator(model, tmp_path / "naf.safetensors", half=True)
    stored = json.loads(read_metadata(tmp_path / "naf.safetensors")["config"])
    assert stored["arch"] == "nafnet" and stored["encoder_blocks"] == [0, 1, 2]
    loaded = load_generator(tmp_path / "naf.safetensors")
    assert isinstance(loaded, NafGenerator) and loaded.config == model.config
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        assert float((loaded(x) - model(x)).abs().max()) < 2e-2  # float16 weights


def test_deblur_tiles_match_the_whole_frame(tmp_path: Path) -> None:
    model = _trained_looking(_config(encoder_blocks=[0, 1, 1]))
    image = (np.random.default_rng(0).random((200, 230, 3)) * 255).astype(np.uint8)
    whole = deblur(image, model, refine=False, tile_size=None)
    tiled = deblur(image, model, refine=False, tile_size=128, tile_overlap=48)
    assert whole.shape == image.shape and whole.dtype == np.uint8
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 2
    assert np.abs(whole.astype(int) - image.astype(int)).mean() > 1  # the network did change it


def test_lazy_blocks_follow_the_networks_grid(tmp_path: Path) -> None:
    da = pytest.importorskip("dask.array")
    model = _trained_looking(_config(encoder_blocks=[0, 1, 1, 1]))
    save_generator(model, tmp_path / "naf.safetensors")
    image = (np.random.default_rng(1).random((400, 380, 3)) * 255).astype(np.uint8)
    options = {"refine": False, "tile_size": 96, "tile_overlap": 44}
    lazy = deblur(da.from_array(image, chunks=(100, 100, 3)), str(tmp_path / "naf.safetensors"), **options)
    eager = deblur(image, str(tmp_path / "naf.safetensors"), **options)
    assert np.abs(lazy.compute().astype(int) - eager.astype(int)).max() <= 2
