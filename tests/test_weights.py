"""Model files: safetensors with config metadata; nothing is ever unpickled from them."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from napari_deblurgan.gan.model.generator import GeneratorConfig, ResnetGenerator
from napari_deblurgan.gan.model.weights import load_generator, read_metadata, save_generator


def test_round_trip_keeps_config_weights_and_metadata(tmp_path: Path) -> None:
    cfg = GeneratorConfig(ngf=8, n_blocks=2, norm="none", upsample="resize", dropout=0.0)
    model = ResnetGenerator(cfg)
    path = save_generator(model, tmp_path / "m.safetensors", {"step": "42"})
    loaded = load_generator(path)
    assert loaded.config == cfg and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert read_metadata(path)["step"] == "42"


def test_half_precision_files_load_as_float32_and_refuse_overflow(tmp_path: Path) -> None:
    model = ResnetGenerator(GeneratorConfig(ngf=8, n_blocks=2, norm="none", upsample="resize", dropout=0.0))
    path = save_generator(model, tmp_path / "h.safetensors", half=True)
    loaded = load_generator(path)
    for k, v in model.state_dict().items():
        assert loaded.state_dict()[k].dtype == torch.float32
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=1e-3, atol=1e-4)  # float16 rounding only
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max() < 1e-2
        next(model.parameters()).fill_(1e5)  # beyond float16's 65504
    with pytest.raises(ValueError, match="float16"):
        save_generator(model, tmp_path / "big.safetensors", half=True)
    assert not (tmp_path / "big.safetensors").exists()
    save_generator(model, tmp_path / "big32.safetensors")  # float32 holds them: no refusal without half


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.marker),))


def test_a_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    _Payload.marker = str(tmp_path / "pwned")
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"weight": _Payload()}))
    with pytest.raises(ValueError, match="only safetensors"):
        load_generator(evil)
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_foreign_files_are_rejected(tmp_path: Path) -> None:
    good = save_generator(ResnetGenerator(GeneratorConfig(ngf=8, n_blocks=1)), tmp_path / "g.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_generator(cut)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not a napari-deblurgan generator"):
        load_generator(foreign)


def test_weights_of_another_architecture_are_rejected(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = save_generator(ResnetGenerator(GeneratorConfig(ngf=8, n_blocks=1)), tmp_path / "g.safetensors")
    meta = read_metadata(path)
    bigger = {k: v for k, v in ResnetGenerator(GeneratorConfig(ngf=16, n_blocks=1)).state_dict().items()}
    save_file(bigger, str(path), metadata=meta)
    with pytest.raises(ValueError, match="does not match its stored architecture"):
        load_generator(path)


def test_missing_default_model_is_said_plainly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from napari_deblurgan.gan.model import weights
    from napari_deblurgan.gan.restoration import inference

    monkeypatch.setattr(weights, "default_model_path", lambda: tmp_path / "default.safetensors")
    with pytest.raises(FileNotFoundError, match="No default model"):
        inference.deblur(torch.zeros(8, 8).numpy())


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    path = save_generator(ResnetGenerator(GeneratorConfig(ngf=8, n_blocks=1)), tmp_path / "g.safetensors")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
