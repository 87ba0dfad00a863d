"""Generator weights as safetensors files whose metadata holds the architecture (no pickle anywhere)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .checkpoint import atomic_write
from .generator import GeneratorConfig, ResnetGenerator

FORMAT = "napari-deblurgan/generator-v1"
DEFAULT_MODEL_NAME = "default.safetensors"


def default_model_path() -> Path:
    """Where the shipped default model lives inside the installed package."""
    return Path(str(files("napari_deblurgan") / "models" / DEFAULT_MODEL_NAME))


def save_generator(model: ResnetGenerator, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` to ``path`` (safetensors, float32) atomically; ``metadata`` is stored alongside."""
    meta = {**(metadata or {}), "format": FORMAT, "config": json.dumps(model.config.to_dict())}
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a model file (architecture config, training recipe, ...)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def load_generator(path: str | Path | None = None, device: str | torch.device = "cpu") -> ResnetGenerator:
    """Load a generator from a napari-deblurgan safetensors file (the shipped default when ``path`` is None).

    The result is in eval mode (no dropout; deterministic). Pickle files are refused, never executed.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        if path == default_model_path():
            raise FileNotFoundError(
                "No default model is installed with napari-deblurgan yet. Pass a model file "
                "(model=... or --model PATH) trained with `napari-deblurgan train`."
            )
        raise FileNotFoundError(f"Model file {path} does not exist")
    try:
        meta = read_metadata(path)
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a valid safetensors model file ({exc}). napari-deblurgan loads only "
            "safetensors models (it never unpickles); export one with `napari-deblurgan export`."
        ) from exc
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ValueError(
            f"{path} is a safetensors file but not a napari-deblurgan generator (format {meta.get('format')!r})"
        )
    config = GeneratorConfig.from_dict(json.loads(meta["config"]))
    model = ResnetGenerator(config)
    expected = model.state_dict()
    problems = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    extra = [k for k in state if k not in expected]
    if problems or extra:
        raise ValueError(
            f"{path} does not match its stored architecture: bad or missing {problems[:5]}, unexpected {extra[:5]}"
        )
    model.load_state_dict(state)
    return model.to(device).eval()
