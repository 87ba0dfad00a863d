"""The DeblurGAN trainer: content loss + WGAN-GP critic, resumable and GUI-friendly.

``Trainer.steps()`` is a generator of :class:`TrainEvent`s (one per step), so a CLI, a napari thread
worker or a notebook can drive it; ``request_stop()`` ends it at the next step with a checkpoint.
Every batch and every random number is a function of ``(seed, step, rank)``, so on CPU N steps plus a
resumed N steps give exactly the weights of 2N straight steps.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data.batches import BatchSource, BlurCurriculum, PairedCrops, SyntheticPairs, skimage_images
from ..data.blur import motion_kernels
from ..data.pairs import aligned_pairs, find_pairs, load_pair, refuse_both_splits, split_holdout
from ..data.photo_pairs import RealisticPairs, load_photos, realistic_cases
from ..data.prefetch import PrefetchedSource, default_data_workers
from ..data.realistic import RealisticBlur
from ..io.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from ..io.images import centre_crop
from ..io.json_files import parse_json
from ..model.critic import CriticConfig, PatchCritic, smallest_input
from ..model.deepen import deepen_generator, deepens
from ..model.device import bf16_supported, is_out_of_memory, resolve_device
from ..model.generator import PRESETS, GeneratorConfig, ResnetGenerator, preset
from ..model.nafnet import NafGenerator
from ..model.narrow import narrow_generator
from ..model.networks import Generator, build_generator
from ..model.weights import save_generator
from .losses import content_loss, gradient_penalty
from .metrics import psnr, ssim
from .recipe_checks import check_options

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "generator.safetensors"
METRICS_NAME = "metrics.csv"


class TrainingOutOfMemory(MemoryError):
    """A training step ran out of (GPU or CPU) memory; the message says what was saved and what to change."""


class TrainingDiverged(FloatingPointError):
    """The generator's gradients were NaN or infinite for :data:`MAX_NONFINITE_STEPS` steps in a row."""


#: Generator steps in a row with NaN/infinite gradients (each skipped: the weights keep their last finite
#: values) before a run is called diverged. A lone bad step (an overflow in reduced precision) is skipped.
MAX_NONFINITE_STEPS = 20


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else exc.__class__.__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class TrainConfig:
    """Everything that defines a run. Saved in every checkpoint; ``resume`` reuses it."""

    data: str = "skimage"  # "skimage", a folder of sharp images, an A/B folder or a GOPRO_Large folder
    data_mode: str = "auto"  # "auto", "pairs" (A/B or GOPRO), "aligned" (A|B images), "sharp" (synthesise blur)
    gopro_blur: str = "blur"
    preset: str = "paper"
    generator: dict[str, Any] = field(default_factory=dict)  # overrides of the preset's fields
    critic: dict[str, Any] = field(default_factory=dict)
    content_loss: str = "charbonnier"  # the shipped model's; "perceptual" (the paper's) needs VGG19 weights
    vgg_weights: str | None = None
    content_weight: float = 100.0
    adv_weight: float = 1.0  # 0 trains content-only (no critic)
    adv_start: int = 0  # adversarial term from this step on (content-only pretraining before it)
    critic_steps: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-4
    critic_lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    schedule: str = "linear"  # "linear": constant then linear decay to 0 (paper); "cosine": warmup + cosine
    decay_start: float = 0.5  # fraction of the run after which "linear" decays
    warmup: int = 0
    grad_clip: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the generator's weights (0: off)
    steps: int = 1000
    batch_size: int = 1
    crop: int = 256
    seed: int = 0
    amp: str = "auto"  # "auto" (bf16 where fast, fp16 on older GPUs), "bf16", "fp16", "off"
    channels_last: bool = True
    blur_start: float = 35.0  # curriculum of synthetic blur length (px)
    blur_end: float = 35.0
    blur_ramp: int = 0
    max_noise: float = 0.02
    scale_min: float = 1.0  # synthetic data: crops downscaled by a random factor in [scale_min, 1]
    dead_leaves: float = 0.0  # synthetic data: fraction of crops from procedural dead-leaves images
    min_detail: float = 0.0  # synthetic data: redraw crops flatter than this mean absolute gradient
    soft_regions: float = 0.0  # synthetic data: fraction of sharp crops with a defocused (soft) side
    defocus: float = 0.1  # synthetic data: fraction of blur kernels that are defocus discs, not motion
    contrast_min: float = 1.0  # synthetic data: sharp crops' contrast scaled by a factor in [contrast_min, 1]
    small_blur: float = 0.0  # synthetic data: fraction of blur kernels that are slight motion (0 to 3 px)
    # how blur is synthesised from sharp images: "kernel" (one PSF per image, the options above) or "realistic"
    # (the GOPRO-like engine of ..data.realistic, options of RealisticBlur in ``realistic``; ``data`` may then be a
    # corpus, whose train/ and val/ photos it uses)
    synthesis: str = "kernel"
    realistic: dict[str, Any] = field(default_factory=dict)
    init: str | None = None  # model file (.safetensors) whose weights start the generator (a previous stage)
    checkpoint_every: int = 500
    validate_every: int = 500
    log_every: int = 10

    def __post_init__(self) -> None:
        check_options({f.name: getattr(self, f.name) for f in fields(self)})
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.realistic_blur()  # bad engine options fail on load, naming the option
        self.generator_config()  # so do networks of absurd size, before anything is allocated
        critic = CriticConfig.from_dict(self.critic)
        smallest = smallest_input(critic)
        if self.adv_weight > 0 and self.crop < smallest:
            raise ValueError(
                f"crop {self.crop} is too small for the critic's {critic.n_layers} layers: use a crop of at least "
                f"{smallest} or fewer critic layers (critic.n_layers)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ValueError(f"Training options must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown training options {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def parse_setting(cls, text: str) -> tuple[str, Any]:
        """``KEY=VALUE`` (the command line's ``--set``) as an option's name and a value of its field's type:
        true/false for switches, numbers and words as written, null for an optional file left unset, JSON
        for objects and lists. The value's range is checked where the options are (``__post_init__``)."""
        key, equals, raw = text.partition("=")
        name = key.strip().replace("-", "_")
        if not equals or not name:
            raise ValueError(f"--set {text!r}: write KEY=VALUE, e.g. --set max_noise=0.01")
        known = [f.name for f in fields(cls)]
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else f"the options are {', '.join(known)}"
            raise ValueError(f"--set {key}: there is no training option {name!r}; {hint}")
        try:
            return name, _option_value(raw.strip(), get_type_hints(cls)[name])
        except ValueError as exc:
            raise ValueError(f"--set {text}: {name} takes {exc}") from None

    def realistic_blur(self) -> RealisticBlur | None:
        """The GOPRO-like engine's options, or None for the one-kernel synthesis."""
        if self.synthesis not in ("kernel", "realistic"):
            raise ValueError(f"synthesis must be 'kernel' or 'realistic', got {self.synthesis!r}")
        if self.synthesis == "kernel":
            if self.realistic:
                raise ValueError(
                    'realistic blur options are given but synthesis is "kernel": set "synthesis": "realistic"'
                )
            return None
        return RealisticBlur.from_dict(self.realistic)

    def generator_config(self) -> GeneratorConfig:
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        return preset(self.preset, **self.generator)


def _option_value(text: str, kind: Any) -> Any:
    """``text`` as a value of type ``kind``, or ValueError saying what that type takes."""
    optional = type(None) in get_args(kind)
    if optional:
        if text == "null":
            return None
        (kind,) = (arg for arg in get_args(kind) if arg is not type(None))
    unset = " (or null)" if optional else ""
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"true or false{unset}, not {text!r}")
        return text.lower() == "true"
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{'a whole number' if kind is int else 'a number'}{unset}, not {text!r}") from None
    if kind is str:
        return text
    expected = 'a JSON object such as {"ngf": 16}' if get_origin(kind) is dict else "a JSON list such as [0.5, 0.999]"
    try:
        value = parse_json(text, "the value")
    except ValueError:
        value = None
    if get_origin(kind) is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, get_origin(kind) or kind):
        raise ValueError(f"{expected}{unset}, not {text!r}")
    return value


@dataclass
class TrainEvent:
    """What a GUI or CLI shows after each step."""

    step: int
    total_steps: int
    losses: dict[str, float]
    lr: float
    steps_per_second: float
    validation: dict[str, float] | None = None
    preview: np.ndarray | None = None  # (H, W, 3) uint8 output on a validation image
    checkpoint: Path | None = None


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier at ``step``."""
    if cfg.warmup and step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.schedule == "cosine":
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    start = int(cfg.steps * cfg.decay_start)
    if step < start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / max(1, cfg.steps - start))


def data_mode(cfg: TrainConfig) -> str:
    """ "skimage", "pairs" (A/B or GOPRO folders), "aligned" (A|B images) or "sharp" (blur synthesised)."""
    if cfg.data == "skimage":
        return "skimage"
    root = Path(cfg.data)
    if not root.is_dir():
        raise FileNotFoundError(f"Training data folder {root} does not exist")
    if cfg.data_mode != "auto":
        return cfg.data_mode
    return "pairs" if (root / "A").is_dir() or any(root.glob(f"**/{cfg.gopro_blur}")) else "sharp"


def photo_folder(cfg: TrainConfig, split: str) -> Path | None:
    """The folder of ``split`` photos of a realistic-blur run: ``data/split`` of a corpus, or ``data``
    itself for training; None for ``data="skimage"`` and where there is none (scikit-image's images
    of that split are used then)."""
    if cfg.data == "skimage":
        return None
    root = Path(cfg.data)
    if (root / split).is_dir():
        return root / split
    return root if split == "train" else None


def _skimage_photos(split: str) -> list[np.ndarray]:
    return [np.round(image * 255).astype(np.uint8) for image in skimage_images(split)]  # type: ignore[arg-type]


def build_source(cfg: TrainConfig) -> BatchSource:
    """The training batches ``cfg.data`` describes."""
    options = cfg.realistic_blur()
    if options is not None:
        folder = photo_folder(cfg, "train")
        photos = load_photos(folder) if folder else _skimage_photos("train")
        return RealisticPairs(photos, cfg.crop, cfg.batch_size, cfg.seed, options, cfg.scale_min)
    curriculum = BlurCurriculum(cfg.blur_start, cfg.blur_end, cfg.blur_ramp)
    mode = data_mode(cfg)
    if mode == "skimage":
        images = skimage_images("train")
    else:
        if mode in ("pairs", "aligned"):
            train_pairs, _ = split_holdout(folder_pairs(cfg))
            return PairedCrops(train_pairs, cfg.crop, cfg.batch_size, cfg.seed)
        from ..io.images import as_rgb, is_image_file, read_opaque
        from ..io.intensity import to_float01

        root = photo_folder(cfg, "train") or Path(cfg.data)  # a corpus' train/, never its val/, test/ or .debs/
        files = sorted(
            p
            for p in root.rglob("*")
            if is_image_file(p) and not any(part.startswith(".") for part in p.parts[len(root.parts) :])
        )
        if not files:
            raise FileNotFoundError(f"No images (.png, .jpg, .tif) found in {root}")
        images = []
        for path in files:
            try:
                images.append(as_rgb(to_float01(read_opaque(path, single=True))))
            except ValueError as exc:  # name the file that is not one image of 1, 3 or 4 channels
                if str(path) in str(exc):
                    raise
                raise ValueError(f"{path}: {exc}") from exc
    return SyntheticPairs(
        images,
        cfg.crop,
        cfg.batch_size,
        cfg.seed,
        curriculum=curriculum,
        max_noise=cfg.max_noise,
        scale_min=cfg.scale_min,
        dead_leaves=cfg.dead_leaves,
        min_detail=cfg.min_detail,
        soft_regions=cfg.soft_regions,
        defocus=cfg.defocus,
        contrast_min=cfg.contrast_min,
        small_blur=cfg.small_blur,
    )


def folder_pairs(cfg: TrainConfig) -> list[tuple[Path, Path]]:
    """All (blurred, sharp) file pairs of a paired or aligned data folder."""
    if data_mode(cfg) == "aligned":
        return aligned_pairs(cfg.data)
    root = Path(cfg.data)
    refuse_both_splits(root)
    return find_pairs(root, cfg.gopro_blur)  # type: ignore[arg-type]


def validation_pairs(cfg: TrainConfig, size: int = 256) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed held-out (blurred, sharp) float RGB pairs: with realistic synthesis, 8 cases of the engine on
    the validation photos (a corpus' val/, else scikit-image's); synthetic one-kernel blur of the
    scikit-image validation images for other sharp-image data; else central crops of up to 4 pairs held
    out of training."""
    options = cfg.realistic_blur()
    if options is not None:
        folder = photo_folder(cfg, "val")
        photos = load_photos(folder) if folder else _skimage_photos("val")
        return realistic_cases(photos, options, size, count=8, seed=12345)
    if data_mode(cfg) not in ("pairs", "aligned"):
        from ..data.blur import blur_image

        rng = np.random.default_rng(12345)
        out = []
        images = skimage_images("val")
        for img, kernel in zip(images * 2, motion_kernels(rng, 2 * len(images), (10.0, 30.0))):
            y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
            sharp = img[max(0, y) : max(0, y) + size, max(0, x) : max(0, x) + size]
            blurred = np.round(blur_image(sharp, kernel, 0.01, rng) * 255) / 255
            out.append((blurred.astype(np.float32), sharp))
        return out
    _, held = split_holdout(folder_pairs(cfg))
    picked = [held[i] for i in np.unique(np.linspace(0, len(held) - 1, min(4, len(held))).astype(int))]
    return [tuple(centre_crop(im, size) for im in load_pair(*p)) for p in picked]  # type: ignore[misc]


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "off" or device.type == "mps":
        return None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and bf16_supported(device)):
        return torch.bfloat16
    if cfg.amp == "fp16" or (cfg.amp == "auto" and device.type == "cuda"):
        return torch.float16
    return None


class Trainer:
    """Trains a generator (and critic) from a :class:`TrainConfig` into ``run_dir``."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        device: str = "auto",
        resume: bool = False,
        source: BatchSource | None = None,
        val_pairs: list[tuple[np.ndarray, np.ndarray]] | None = None,
        resume_overrides: tuple[str, ...] = ("steps",),
        data_workers: int | None = None,
    ) -> None:
        """``source`` replaces the data ``config.data`` names (e.g. arrays from napari layers), and
        ``val_pairs`` the validation pairs, as float (H, W, 3) arrays in [0, 1]. A resumed run keeps
        its saved recipe except the options named in ``resume_overrides``, taken from ``config``
        (e.g. ``steps`` to extend a run, ``adv_weight`` to branch an ablation off a checkpoint).
        ``data_workers`` processes make the batches of the data ``config.data`` names ahead while
        :meth:`steps` trains (None: :func:`..data.prefetch.default_data_workers`, 0 but on CUDA); the
        batches, and so the run, are the same with any number."""
        self.run_dir = Path(run_dir)
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME
        state = None
        if resume and self.checkpoint_path.is_file():
            state = load_checkpoint(self.checkpoint_path)
            changes = {name: getattr(config, name) for name in resume_overrides}
            saved = parse_json(state["config"], f"The recipe in {self.checkpoint_path}")
            config = TrainConfig.from_dict({**saved, **changes})
        elif not resume and self.checkpoint_path.is_file():
            raise FileExistsError(
                f"{self.run_dir} already holds a training run; resume it (--resume) or choose another output folder"
            )
        _refuse_foreign_log(self.run_dir / METRICS_NAME)  # training appends to it
        if state is None:  # a new run must not overwrite the model or the log another run left there
            left = [name for name in (MODEL_NAME, METRICS_NAME) if _holds_results(self.run_dir / name)]
            if left == [METRICS_NAME]:  # a run killed before its first checkpoint: the steps it logged are lost
                with contextlib.suppress(FileNotFoundError):  # another rank of a distributed run set it aside
                    kept = _set_aside(self.run_dir / METRICS_NAME)
                    warnings.warn(
                        f"{self.run_dir} holds the log of a run stopped before its first checkpoint, so nothing of it "
                        f"can be resumed; its log is kept as {kept.name} and training starts at step 0",
                        stacklevel=2,
                    )
            elif left:
                raise FileExistsError(
                    f"{self.run_dir} holds {' and '.join(left)} of another run but no checkpoint to resume; "
                    "choose another output folder"
                )
        self.cfg = config
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.device = resolve_device(device)
        if self.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.manual_seed(config.seed)
        self.source = source if source is not None else build_source(config)
        self._own_source = source is None
        self.generator = build_generator(config.generator_config()).to(self.device)
        if config.init and state is None:
            self._load_init(config.init)
        self.critic = (
            PatchCritic(CriticConfig.from_dict(config.critic)).to(self.device) if config.adv_weight > 0 else None
        )
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        for net in (self.generator, self.critic):
            if net is not None:
                net.to(memory_format=self.memory_format)
        # The averaged copy is what validation scores and what export writes: it smooths the noise of
        # the last optimiser steps (a standard gain for restoration models at no training cost).
        self.ema = (
            AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
            if config.ema > 0
            else None
        )
        # on CUDA the fused optimisers: one kernel per step instead of several per parameter (AdamW took
        # 3.2 ms of a 40 ms step on an H200); elsewhere the default, so CPU runs resume bit for bit
        fused = True if self.device.type == "cuda" else None
        self.opt_g = torch.optim.AdamW(
            self.generator.parameters(), config.lr, betas=config.betas, weight_decay=config.weight_decay, fused=fused
        )
        self.opt_d = (
            torch.optim.Adam(self.critic.parameters(), config.critic_lr, betas=config.betas, fused=fused)
            if self.critic
            else None
        )
        self.amp_dtype = _autocast_dtype(config, self.device)
        cuda_fp16 = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        # float16: one loss scaler per optimiser (the critic's and the generator's losses differ by orders of
        # magnitude), starting at 2^10, not 2^16: on an H200 a 6-step run from 2^16 left the generator as it
        # was, every step skipped as overflowing (100 x the content loss; each overflow halves the scale)
        self.scalers: dict[str, torch.amp.GradScaler] = (
            {name: torch.amp.GradScaler("cuda", init_scale=2.0**10) for name in ("generator", "critic")}
            if cuda_fp16
            else {}
        )
        self.content = content_loss(config.content_loss, config.vgg_weights)
        if isinstance(self.content, nn.Module):
            self.content.to(self.device)
        self.step = 0
        if state is not None:
            self._restore(state)
            if self.rank == 0:  # rows logged after the checkpoint are logged again as the run repeats them
                _trim_log(self.run_dir / METRICS_NAME, self.step)
        # The generator trains under DistributedDataParallel. The critic's gradient penalty needs
        # autograd.grad, which DDP does not support, so its gradients are all-reduced by hand.
        self.g_train: nn.Module = self.generator
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_train = DDP(self.generator, device_ids=ids)
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.distributed else 1
        renders_here = isinstance(self.source, RealisticPairs) and self.device.type == "cuda"
        if data_workers is None:
            data_workers = default_data_workers(self.device, per_node)
        self.data_workers = data_workers
        if self._own_source and renders_here:  # workers cut the canvases; the blur renders on the GPU here
            self.source.device = self.device  # type: ignore[attr-defined]
        self._batches: BatchSource = self.source
        self._stop = False
        self._nonfinite_steps = 0  # generator steps in a row skipped for NaN/infinite gradients
        self._val = val_pairs

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": json.dumps(self.cfg.to_dict()),
            "step": self.step,
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict() if self.critic else {},
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d else {},
            "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
            "ema": self.ema.state_dict() if self.ema else {},
            "torch_rng": torch.get_rng_state(),
            # dropout on CUDA draws from the device's generator (ranks share one seed, so rank 0's serves all)
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else torch.empty(0),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.opt_g.load_state_dict(self._with_recipe_settings(state["opt_g"], self.cfg.weight_decay))
        if self.critic is not None and state["critic"]:
            self.critic.load_state_dict(state["critic"])
            self.opt_d.load_state_dict(self._with_recipe_settings(state["opt_d"]))  # type: ignore[union-attr]
        for name, scaler_state in state.get("scalers", {}).items():
            if name in self.scalers:
                self.scalers[name].load_state_dict(scaler_state)
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and len(state.get("cuda_rng", ())):
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step = int(state["step"])

    def _with_recipe_settings(self, saved: dict[str, Any], weight_decay: float | None = None) -> dict[str, Any]:
        """A saved optimiser state with the recipe's betas and weight decay (resume overrides included) and
        this device's choice of fused kernels, set before it is loaded: torch places the restored step
        counters by the groups' ``fused`` flag (the learning rates are set at every step)."""
        fused = True if self.device.type == "cuda" else None
        groups = [{**g, "betas": tuple(self.cfg.betas), "fused": fused} for g in saved["param_groups"]]
        if weight_decay is not None:
            groups = [{**g, "weight_decay": weight_decay} for g in groups]
        return {**saved, "param_groups": groups}

    def _load_init(self, path: str) -> None:
        """Start the generator from a model file of the same architecture (e.g. an earlier stage), of the
        same architecture with more base channels, narrowed to the recipe's (:mod:`..model.narrow`), or a
        NAFNet with fewer blocks, deepened to the recipe's (:mod:`..model.deepen`)."""
        from ..model.weights import load_generator

        previous = load_generator(path, self.device)
        mine = self.generator.config
        wider = isinstance(previous, ResnetGenerator) and previous.config.ngf > mine.ngf
        if wider and replace(previous.config, ngf=mine.ngf) == mine:
            calibration = torch.cat([self.source.batch(step)[0] for step in range(4)])  # training crops
            previous = narrow_generator(previous, mine.ngf, calibration.to(self.device))
        elif isinstance(previous, NafGenerator) and previous.config != mine and deepens(previous.config, mine):
            previous = deepen_generator(previous, mine)
        elif previous.config != mine:
            raise ValueError(
                f"init model {path} has architecture {previous.config}, but this recipe builds "
                f"{mine}: use a model trained with the same preset and generator options (or a wider ResNet, or a "
                "NAFNet with fewer blocks)"
            )
        self.generator.load_state_dict(previous.state_dict())

    @property
    def model(self) -> Generator:
        """The generator that validation scores and export writes: the weight average when ``ema`` is on."""
        return self.ema.module if self.ema is not None else self.generator  # type: ignore[return-value]

    def save(self) -> Path | None:
        """Export the generator, then write the checkpoint beside it (rank 0 only): killed in between, the
        model is the newer file, and resuming from the older checkpoint writes both again (the other way
        round, a run resumed at its last step would keep an older model for good)."""
        if self.rank != 0:
            return None
        self.export(self.run_dir / MODEL_NAME)
        save_checkpoint(self.state_dict(), self.checkpoint_path)
        return self.checkpoint_path

    def export(self, path: str | Path) -> Path:
        """Write :attr:`model` (the weight average when ``ema`` is on) as a safetensors file for ``load_model``."""
        meta = {"step": str(self.step), "recipe": json.dumps(self.cfg.to_dict())}
        return save_generator(self.model, path, meta)

    def request_stop(self) -> None:
        """Ask the running :meth:`steps` loop to save a checkpoint and end after the current step."""
        self._stop = True

    # -- training ------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _backward(
        self, loss: torch.Tensor, opt: torch.optim.Optimizer, net: nn.Module, all_reduce: bool = False
    ) -> bool:
        """Backpropagate ``loss`` and step ``opt``; False (and no step) when the gradients are not finite."""
        opt.zero_grad(set_to_none=True)
        scaler = self.scalers.get("generator" if net is self.generator else "critic")
        (scaler.scale(loss) if scaler is not None else loss).backward()
        params = [p for p in net.parameters() if p.grad is not None]
        if all_reduce and self.distributed:  # before unscaling, so every rank's scaler sees the same gradients
            world = dist.get_world_size()
            for p in params:
                dist.all_reduce(p.grad)
                p.grad /= world
        if scaler is not None:
            scaler.unscale_(opt)
        norm = nn.utils.clip_grad_norm_(params, self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf)
        if scaler is not None:  # float16: the scaler skips a non-finite step itself and lowers its scale
            scale = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            return scaler.get_scale() >= scale
        if not bool(torch.isfinite(norm)):
            opt.zero_grad(set_to_none=True)
            return False
        opt.step()
        return True

    def train_step(self) -> dict[str, float]:
        """One generator step (preceded by ``critic_steps`` critic steps in the adversarial phase)."""
        cfg = self.cfg
        factor = lr_factor(cfg, self.step)
        for group in self.opt_g.param_groups:
            group["lr"] = cfg.lr * factor
        blurred, sharp = (
            t.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            for t in self._batches.batch(self.step, self.rank)
        )
        self.g_train.train()
        losses: dict[str, float] = {}
        critic = self.critic
        adversarial = critic is not None and self.step >= cfg.adv_start
        with self._autocast():
            fake = self.g_train(blurred)
        if adversarial:
            assert critic is not None and self.opt_d is not None
            for group in self.opt_d.param_groups:
                group["lr"] = cfg.critic_lr * factor
            alphas = np.random.default_rng([cfg.seed, self.step, self.rank, 1]).random((cfg.critic_steps, len(sharp)))
            for alpha in alphas:
                with self._autocast():
                    d_loss = critic(fake.detach()).float().mean() - critic(sharp).float().mean()
                gp = gradient_penalty(critic, sharp, fake.float(), cfg.gp_weight, torch.from_numpy(alpha))
                self._backward(d_loss + gp, self.opt_d, critic, all_reduce=True)
            losses.update(critic=d_loss.item(), gp=gp.item())
        with self._autocast():
            c_loss = self.content(fake.float(), sharp)
            g_loss = cfg.content_weight * c_loss
            if adversarial:
                critic.requires_grad_(False)
                adv = -critic(fake).float().mean()
                critic.requires_grad_(True)
                g_loss = g_loss + cfg.adv_weight * adv
                losses["adversarial"] = adv.item()
        if self._backward(g_loss, self.opt_g, self.generator):
            self._nonfinite_steps = 0
            if self.ema is not None:
                self.ema.update_parameters(self.generator)
        else:
            self._nonfinite_steps += 1
            if self._nonfinite_steps >= MAX_NONFINITE_STEPS:
                path = self.save()  # the weights of the last finite step: the bad ones were skipped
                raise TrainingDiverged(
                    f"Training diverged: the gradients were NaN or infinite in {MAX_NONFINITE_STEPS} steps in a "
                    f"row (to step {self.step + 1}). Those steps were skipped: the weights of the last good step "
                    f"are saved in {path or self.checkpoint_path} and {self.run_dir / MODEL_NAME}. Start a new run "
                    f"from them with a lower learning rate (--init {self.run_dir / MODEL_NAME} --lr ...) or "
                    'without mixed precision ("amp": "off" in the recipe).'
                )
        losses["content"] = c_loss.item()
        self.step += 1
        return losses

    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], np.ndarray]:
        """Mean PSNR/SSIM of the generator (and of the blurred input) on the fixed validation pairs."""
        if self._val is None:
            self._val = validation_pairs(self.cfg) if self._own_source else _pairs_from(self.source)
        model = self.model
        model.eval()
        scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_blurred": []}
        preview = None
        for blurred, sharp in self._val:
            x = torch.from_numpy(blurred).permute(2, 0, 1)[None].to(self.device) * 2 - 1
            out = ((model(x)[0].permute(1, 2, 0).float().cpu().numpy() + 1) / 2).clip(0, 1)
            out = np.round(out * 255) / 255
            scores["psnr"].append(psnr(sharp, out))
            scores["ssim"].append(ssim(sharp, out))
            scores["psnr_blurred"].append(psnr(sharp, blurred))
            if preview is None:
                preview = (out * 255).astype(np.uint8)
        model.train()
        return {k: float(np.mean(v)) for k, v in scores.items()}, preview  # type: ignore[return-value]

    def steps(self) -> Iterator[TrainEvent]:
        """Train until ``cfg.steps`` or a stop request, yielding an event per step; checkpoints as it goes."""
        prefetched = None
        if self._own_source and self.data_workers > 0 and self.step < self.cfg.steps and not self._stop:
            prefetched = self._batches = PrefetchedSource(self.source, self.data_workers)
        try:
            yield from self._train_loop()
        finally:
            if prefetched is not None:
                self._batches = self.source
                prefetched.close()

    def _train_loop(self) -> Iterator[TrainEvent]:
        cfg = self.cfg
        log = _MetricsLog(self.run_dir / METRICS_NAME) if self.rank == 0 else None
        t0, s0 = time.perf_counter(), self.step
        while self.step < cfg.steps and not self._stop:
            try:
                losses = self.train_step()
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                error = _first_line(exc)  # keep no reference to the traceback: it holds the step's tensors
            else:
                error = None
            if error is not None:
                raise self._out_of_memory(error, trained=self.step > s0)
            rate = (self.step - s0) / max(1e-9, time.perf_counter() - t0)
            event = TrainEvent(self.step, cfg.steps, losses, self.opt_g.param_groups[0]["lr"], rate)
            if self.rank == 0 and (self.step % cfg.validate_every == 0 or self.step == cfg.steps):
                event.validation, event.preview = self.validate()
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                event.checkpoint = self.save()
            if log is not None and (self.step % cfg.log_every == 0 or event.validation):
                log.write(event)
            yield event
        if self._stop and self.step % cfg.checkpoint_every:
            path = self.save()
            yield TrainEvent(self.step, cfg.steps, {}, self.opt_g.param_groups[0]["lr"], 0.0, checkpoint=path)

    def _out_of_memory(self, error: str, trained: bool) -> TrainingOutOfMemory:
        """Free what the failed step held, save the state of the last completed step (if this session
        trained any) and return the error to raise. A critic update of the failed step may be in it."""
        for opt in (self.opt_g, self.opt_d):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        cfg = self.cfg
        if not trained:
            saved = "No step completed in this session, so no new checkpoint was written."
        else:
            try:
                path = self.save()
                saved = f"The last good state (step {self.step}) is saved in {path or self.checkpoint_path}."
            except Exception as exc:  # a second failure must not hide the first
                saved = f"Saving a checkpoint failed too ({_first_line(exc)})."
        smaller = [f"batch size {cfg.batch_size // 2}"] if cfg.batch_size > 1 else []
        smaller += [f"crop {cfg.crop // 2}"] if cfg.crop >= 64 else []
        example = f" (e.g. {' or '.join(smaller)}; --batch-size / --crop on the command line)" if smaller else ""
        return TrainingOutOfMemory(
            f"Training ran out of memory at step {self.step + 1} on {self.device} with batch size "
            f"{cfg.batch_size} and crop {cfg.crop} ({error}). {saved} Train with a smaller batch size or crop"
            f"{example}, a smaller generator, or on a device with more memory."
        )

    def fit(self) -> None:
        """Run :meth:`steps` to the end."""
        for _ in self.steps():
            pass


def _trim_log(path: Path, step: int) -> None:
    """Drop the rows of a run's ``metrics.csv`` logged after ``step`` (its checkpoint's), rewritten atomically."""
    if not path.is_file():
        return
    lines = path.read_bytes().splitlines(keepends=True)

    def logged_after(line: bytes) -> bool:
        first = line.split(b",", 1)[0]
        return first.isdigit() and int(first) > step

    kept = lines[:1] + [line for line in lines[1:] if not logged_after(line)]
    if len(kept) < len(lines):
        atomic_write(path, lambda tmp: tmp.write_bytes(b"".join(kept)))


def _refuse_foreign_log(path: Path) -> None:
    """Refuse a ``metrics.csv`` that no run of ours wrote: training would append to it. Ours start with
    :attr:`_MetricsLog.COLUMNS` (any line ending); an empty one is left by a run killed as it began."""
    if not (path.exists() or path.is_symlink()):
        return
    header = ",".join(_MetricsLog.COLUMNS).encode()
    if path.is_file():  # not a FIFO or device: reading those may never end
        with open(path, "rb") as fh:
            first = fh.readline(len(header) + 3)
        if not first or first.rstrip(b"\r\n") == header:
            return
    raise FileExistsError(
        f"{path} was not written by a napari-deblurgan run (its first line is not a training log's header), and "
        "training would append to it; choose another output folder, or move the file"
    )


def _set_aside(path: Path) -> Path:
    """Rename ``path`` (``metrics.csv``) to the first free ``metrics-stopped-N.csv`` beside it; the new name."""
    n = 1
    while (kept := path.with_name(f"{path.stem}-stopped-{n}{path.suffix}")).exists():
        n += 1
    path.rename(kept)
    return kept


def _holds_results(path: Path) -> bool:
    """A model file, or a log with logged steps (a run that failed at its first step leaves only a header)."""
    if path.name == METRICS_NAME:
        with contextlib.suppress(OSError), open(path) as fh:
            return len(fh.readlines(1 << 16)) > 1
        return False
    return path.exists()


def _pairs_from(source: BatchSource, count: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation pairs drawn from a batch no training step uses."""
    blurred, sharp = source.batch(2**31 - 1)
    as_image = lambda t: ((t.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1).astype(np.float32)  # noqa: E731
    return [(as_image(b), as_image(s)) for b, s in zip(blurred[:count], sharp[:count])]


class _MetricsLog:
    """Append-only CSV of losses, learning rate, speed and validation scores."""

    COLUMNS = (
        "step",
        "time",
        "lr",
        "steps_per_s",
        "content",
        "adversarial",
        "critic",
        "gp",
        "val_psnr",
        "val_ssim",
        "val_psnr_blurred",
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size == 0:
            with open(path, "w", newline="") as fh:
                csv.writer(fh).writerow(self.COLUMNS)

    def write(self, e: TrainEvent) -> None:
        v = e.validation or {}
        row = [e.step, f"{time.time():.1f}", f"{e.lr:.3g}", f"{e.steps_per_second:.3f}"]
        row += [_fmt(e.losses.get(k)) for k in ("content", "adversarial", "critic", "gp")]
        row += [_fmt(v.get(k)) for k in ("psnr", "ssim", "psnr_blurred")]
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow(row)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.5g}"
