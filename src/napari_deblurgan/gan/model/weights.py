"""Generator weights as safetensors files whose metadata holds the architecture (no pickle anywhere), and
:func:`load_model`, which keeps the loaded ones for reuse."""

from __future__ import annotations

import json
import threading
from importlib.resources import files
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..io.checkpoint import atomic_write
from ..io.json_files import parse_json
from .device import resolve_device
from .generator import GeneratorConfig
from .networks import Generator, build_generator

FORMAT = "napari-deblurgan/generator-v1"
DEFAULT_MODEL_NAME = "default.safetensors"


def default_model_path() -> Path:
    """Where the shipped default model lives inside the installed package."""
    return Path(str(files("napari_deblurgan") / "models" / DEFAULT_MODEL_NAME))


def save_generator(
    model: Generator, path: str | Path, metadata: dict[str, str] | None = None, half: bool = False
) -> Path:
    """Write ``model`` to ``path`` (safetensors) atomically; ``metadata`` is stored alongside.

    Weights are float32, or float16 with ``half`` (half the file; loaded back as float32).
    """
    state = model.state_dict()
    half_keys = {k for k, v in state.items() if half and v.is_floating_point()}  # other buffers stay float32
    dtypes = {k: torch.float16 if k in half_keys else torch.float32 for k in state}
    tensors = {k: v.detach().cpu().to(dtypes[k]).contiguous() for k, v in state.items()}
    overflow = [k for k in half_keys if torch.isfinite(state[k]).all() and not torch.isfinite(tensors[k]).all()]
    if overflow:  # finite in float32 but beyond float16's range (65504)
        raise ValueError(f"Weights {overflow[:5]} do not fit float16; export without half precision")
    meta = {**(metadata or {}), "format": FORMAT, "config": json.dumps(model.config.to_dict())}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a model file (architecture config, training recipe, ...)."""
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


_CACHE: dict[tuple[str, str], tuple[tuple[int, int, int] | None, Generator]] = {}  # (file, device) -> (version, model)
_CACHE_LOCK = threading.Lock()
#: How many loaded models :func:`load_model` keeps (each file and device one; deleted files leave in turn).
CACHED_MODELS = 4


def load_model(path: str | Path | None = None, device: str | torch.device = "auto") -> Generator:
    """Load (and cache) a generator from a safetensors model file; ``None`` means the shipped default.

    The cache keeps one model per file and device, the :data:`CACHED_MODELS` used last: a file rewritten
    since (a training run exporting as it goes) is loaded again and replaces the old copy, so memory does
    not grow with each export. A file counts as rewritten when its modification time (to the nanosecond),
    size or inode changed (exports replace the file, so a coarse clock that repeats a time still shows a
    new inode). The model returned is the cached one, shared with every ``deblur`` of that file: to change
    it (``.half()``, fine-tuning), take a copy of your own with :func:`load_generator`.
    """
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())  # "cuda" and "cuda:0": one copy
    resolved = Path(path).expanduser().resolve() if path is not None else default_model_path()
    stat = resolved.stat() if resolved.is_file() else None
    version = (stat.st_mtime_ns, stat.st_size, stat.st_ino) if stat else None
    key = (str(resolved), str(dev))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None or cached[0] != version:
            _CACHE.pop(key, None)  # free the old weights before loading the new ones
            model = load_generator(resolved, dev)
            if dev.type == "cpu":
                model = model.to(memory_format=torch.channels_last)
            _CACHE[key] = (version, model)
        _CACHE[key] = _CACHE.pop(key)  # the most recently used last
        while len(_CACHE) > CACHED_MODELS:
            del _CACHE[next(iter(_CACHE))]
        return _CACHE[key][1]


def load_generator(path: str | Path | None = None, device: str | torch.device = "cpu") -> Generator:
    """Load a generator from a napari-deblurgan safetensors file (the shipped default when ``path`` is None).

    The result is in eval mode (no dropout; deterministic). Pickle files are refused, never executed. The
    architecture stored in the file is checked against its tensors' shapes (read from the header) before
    anything is allocated, so a hostile config cannot make this allocate more than the file holds, and
    weights that are not finite (a corrupted file) are refused.
    """
    path = Path(path) if path is not None else default_model_path()
    config = model_config(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a valid safetensors model file ({exc})") from exc
    corrupt = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if corrupt:
        raise ValueError(
            f"{path} is corrupt: {corrupt[:5]} hold NaN or infinite weights; re-export or re-download the model"
        )
    model = build_generator(config)
    model.load_state_dict(state)
    return model.to(device).eval()


def model_config(path: str | Path | None = None) -> GeneratorConfig:
    """The architecture of a model file, read from its header and checked against its tensors' shapes (no
    weights read: for a widget to show it at once). Errors as :func:`load_generator`'s."""
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        if path == default_model_path():
            raise FileNotFoundError(
                "No default model is installed with napari-deblurgan yet. Pass a model file "
                "(model=... or --model PATH) trained with `napari-deblurgan train`."
            )
        if path.is_dir():
            raise IsADirectoryError(f"Model path {path} is a folder; pass a .safetensors model file")
        raise FileNotFoundError(f"Model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            shapes = {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a valid safetensors model file ({exc}). napari-deblurgan loads only "
            "safetensors models (it never unpickles); export one with `napari-deblurgan export`."
        ) from exc
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ValueError(
            f"{path} is a safetensors file but not a napari-deblurgan generator (format {meta.get('format')!r})"
        )
    config = _stored_config(path, meta["config"], len(shapes))
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            expected = {k: tuple(v.shape) for k, v in build_generator(config).state_dict().items()}
    except (RuntimeError, ValueError, OverflowError) as exc:  # sizes too large to describe
        raise ValueError(f"{path} does not match its stored architecture ({exc})") from exc
    problems = [k for k in expected if shapes.get(k) != expected[k]]
    extra = [k for k in shapes if k not in expected]
    if problems or extra:
        raise ValueError(
            f"{path} does not match its stored architecture: bad or missing {problems[:5]}, unexpected {extra[:5]}"
        )
    return config


def _stored_config(path: Path, text: str, n_tensors: int) -> GeneratorConfig:
    """The architecture in a model file's metadata, checked for types and plausibility before use."""
    try:
        data = parse_json(text, "its architecture config")
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        config = GeneratorConfig.from_dict(data)  # types checked there too
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{path} has an unreadable architecture config ({exc}); export the model again with "
            "`napari-deblurgan export`"
        ) from exc
    if config.in_channels != 3 or config.out_channels != 3:
        raise ValueError(
            f"{path} is a generator for {config.in_channels} -> {config.out_channels} channels; "
            "napari-deblurgan models take and give RGB (3 channels)"
        )
    if 2 * config.n_blocks > n_tensors:  # every ResBlock holds at least two weight tensors
        raise ValueError(
            f"{path} does not match its stored architecture: {config.n_blocks} ResBlocks, but only {n_tensors} tensors"
        )
    return config
