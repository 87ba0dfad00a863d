"""Untrusted model files: refused by name, never executed, never allowed to allocate at will (checkpoint
files: test_checkpoint_bad_input.py).

Complements test_weights.py (a pickle, a truncated file, a foreign safetensors file, a shape mismatch).
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from _helpers import PicklePayload
from napari_deblurgan.gan.model.generator import GeneratorConfig, ResnetGenerator
from napari_deblurgan.gan.model.weights import FORMAT, load_generator, read_metadata, save_generator

SMALL = GeneratorConfig(ngf=4, n_blocks=1, norm="none", dropout=0.0, upsample="resize")


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return save_generator(ResnetGenerator(SMALL), tmp_path / "good.safetensors")


def _with_config(tmp_path: Path, good: Path, config: object, name: str = "m.safetensors") -> Path:
    """``good``'s tensors with ``config`` (any JSON, or a raw string) as the stored architecture."""
    from safetensors.torch import load_file

    text = config if isinstance(config, str) else json.dumps(config)
    path = tmp_path / name
    save_file(load_file(str(good)), str(path), metadata={"format": FORMAT, "config": text})
    return path


@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 7, b"\xff" * 64, b"PK\x03\x04 not really a zip"], ids=["empty", "7-bytes", "ff", "zip"]
)
def test_garbage_files_are_not_valid_safetensors(tmp_path, content) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="is not a valid safetensors model file.*napari-deblurgan export"):
        load_generator(path)


def test_a_corrupted_header_is_refused(tmp_path, good) -> None:
    data = bytearray(good.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    data[8 + header_len // 2] = ord("\\")  # break the JSON header in its middle
    path = tmp_path / "bad.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a valid safetensors|not a napari-deblurgan generator"):
        load_generator(path)


def test_corrupted_weights_nan_are_refused(tmp_path, good) -> None:
    data = bytearray(good.read_bytes())
    data[-64:] = b"\xff" * 64  # 0xffffffff is a float32 NaN
    path = tmp_path / "nan.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is corrupt: .* NaN or infinite weights"):
        load_generator(path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "unreadable architecture config"),
        ("[1, 2]", "expected a JSON object"),
        ({**SMALL.to_dict(), "evil": 1}, "Unknown generator config keys"),
        ({**SMALL.to_dict(), "ngf": "4"}, "unreadable architecture config"),
        ({**SMALL.to_dict(), "ngf": 4.5}, "ngf must be a whole number"),
        ({**SMALL.to_dict(), "norm": "magic"}, "norm must be"),
        ({**SMALL.to_dict(), "in_channels": 1, "out_channels": 1}, r"RGB \(3 channels\)"),
    ],
    ids=["not-json", "list", "unknown-key", "str-ngf", "float-ngf", "bad-norm", "gray-model"],
)
def test_bad_stored_architectures_are_named(tmp_path, good, config, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_generator(_with_config(tmp_path, good, config))


@pytest.mark.parametrize(
    "overrides", [{"n_blocks": 10**8}, {"ngf": 10**6}, {"ngf": 2**40, "n_blocks": 1}], ids=["blocks", "ngf", "huge"]
)
def test_a_hostile_architecture_cannot_make_it_allocate(tmp_path, good, overrides) -> None:
    """The config's size and then its tensor shapes are checked before any network is built."""
    path = _with_config(tmp_path, good, {**SMALL.to_dict(), **overrides})
    start = time.perf_counter()
    with pytest.raises(ValueError, match="refused before allocating|does not match its stored architecture"):
        load_generator(path)
    assert time.perf_counter() - start < 5


def test_missing_and_extra_tensors_are_listed(tmp_path, good) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(good))
    first = next(iter(tensors))
    tensors["extra.weight"] = tensors.pop(first)
    path = tmp_path / "renamed.safetensors"
    save_file(tensors, str(path), metadata=read_metadata(good))
    with pytest.raises(ValueError, match=rf"bad or missing \['{first}'\], unexpected \['extra.weight'\]"):
        load_generator(path)


def test_a_torch_zip_with_a_pickle_payload_is_never_run(tmp_path) -> None:
    PicklePayload.marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.safetensors"
    torch.save({"weight": PicklePayload()}, path)
    with pytest.raises(ValueError, match="never unpickles"):
        load_generator(path)
    assert not (tmp_path / "pwned").exists()


def test_a_folder_is_not_a_model(tmp_path) -> None:
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_generator(tmp_path)
