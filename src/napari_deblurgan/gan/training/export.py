"""Write a training checkpoint's generator (or its weight average) as a safetensors model file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from ..io.checkpoint import load_checkpoint
from ..io.json_files import parse_json
from ..model.networks import build_generator
from ..model.weights import save_generator
from .train import CHECKPOINT_NAME, METRICS_NAME, TrainConfig


def summary(exc: BaseException, lines: int = 2) -> str:
    """An exception as ``Type: first lines`` (load_state_dict lists every mismatching tensor)."""
    text = [line.strip() for line in str(exc).splitlines() if line.strip()]
    more = f" (and {len(text) - lines} more)" if len(text) > lines else ""
    return f"{exc.__class__.__name__}: {' '.join(text[:lines])}{more}"


def export_checkpoint(
    source: str | Path,
    output: str | Path,
    weights: Literal["average", "raw"] = "average",
    half: bool = False,
    overwrite: bool = False,
) -> tuple[str, int]:
    """Export the checkpoint ``source`` (a file, or a run folder holding one) to ``output``.

    ``weights`` "average" writes the run's weight average where it kept one (else the generator), "raw"
    the optimised weights. Returns what was written ("weight average" or "generator") and its step.
    """
    source = Path(source)
    source = source / CHECKPOINT_NAME if source.is_dir() else source
    state = load_checkpoint(source)
    try:
        config = TrainConfig.from_dict(parse_json(state["config"], f"The recipe in {source}"))
        model = build_generator(config.generator_config())
        average = state.get("ema") or {}
        if weights == "average" and average:  # AveragedModel's state: "module.<name>" and a counter
            model.load_state_dict({k.removeprefix("module."): v for k, v in average.items() if k != "n_averaged"})
        else:
            model.load_state_dict(state["generator"])
        step = int(state["step"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{source} is not a complete napari-deblurgan checkpoint ({summary(exc)})") from exc
    out = Path(output)
    run_files = {(source.parent / name).resolve() for name in (source.name, METRICS_NAME)}
    if out.resolve() in run_files:
        raise ValueError(
            f"{out} is the run's own {out.name}; export to another file (e.g. {source.parent}/model.safetensors)"
        )
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    with torch.no_grad():
        save_generator(model, out, {"step": str(step), "recipe": state["config"]}, half=half)
    return ("weight average" if weights == "average" and average else "generator"), step
