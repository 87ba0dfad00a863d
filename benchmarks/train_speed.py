"""Training steps per second on this machine: the paper preset at 256x256 (batch 1, as in the paper) and
the default recipe, content-only and with the WGAN-GP critic, fp32 and bf16 autocast.

``--realistic`` times the realistic-blur recipe (``recipes/realistic.json``, photos of ``data/corpus``)
instead, at batches of 8 x 256^2: the GOPRO-like engine's seconds per batch beside the whole step's.

    python benchmarks/train_speed.py [--steps 5] [--device cpu] [--data-workers 0] [--realistic]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from napari_deblurgan.gan.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "stage8.json"  # the last stage of the shipped model
REALISTIC = ROOT / "recipes" / "realistic.json"


def steps_per_second(options: dict, steps: int, device: str, data_workers: int) -> float:
    """Steps per second through :meth:`Trainer.steps` (as runs train), after one warm-up step (allocations,
    oneDNN primitives, worker start); the run is set two steps longer, so its last step (which validates
    and saves) is never reached."""
    cfg = TrainConfig.from_dict(
        {**options, "steps": steps + 2, "validate_every": 10**9, "checkpoint_every": 10**9, "log_every": 10**9}
    )
    with tempfile.TemporaryDirectory() as run:
        events = Trainer(cfg, run, device=device, data_workers=data_workers).steps()
        try:
            next(events)
            t = time.perf_counter()
            for _ in range(steps):
                next(events)
            return steps / (time.perf_counter() - t)
        finally:
            events.close()


def seconds_per_batch(options: dict, batches: int) -> float:
    """Mean seconds the recipe's data source takes to make one batch (after one warm-up batch)."""
    from napari_deblurgan.gan.train import build_source

    source = build_source(TrainConfig.from_dict(options))
    source.batch(0)
    t = time.perf_counter()
    for step in range(1, batches + 1):
        source.batch(step)
    return (time.perf_counter() - t) / batches


def realistic(args: argparse.Namespace) -> None:
    """The realistic recipe at 8 x 256^2: batch synthesis alone, and whole training steps."""
    recipe = {**json.loads(REALISTIC.read_text()), "crop": 256, "batch_size": 8, "init": None}
    recipe["data"] = str(ROOT / recipe["data"])
    if not Path(recipe["data"]).is_dir():
        raise SystemExit(f"{recipe['data']} is missing: napari-deblurgan corpus {recipe['data']}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"realistic blur engine: {seconds_per_batch(recipe, args.steps):.3f} s per batch of 8 x 256^2")
    for amp in ("off", "auto"):
        rate = steps_per_second({**recipe, "amp": amp}, args.steps, args.device, args.data_workers)
        print(f"realistic recipe, whole step ({amp}): {1 / rate:.3f} s per step ({rate:.3f} steps/s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-workers", type=int, default=0, help="processes making batches ahead")
    parser.add_argument("--realistic", action="store_true", help="time the realistic-blur recipe instead")
    args = parser.parse_args()
    if args.realistic:
        realistic(args)
        return
    recipe = json.loads(RECIPE.read_text())
    # Content loss "l1" stands in for the perceptual loss where no VGG19 weights exist (VGG to conv3_3
    # adds about 40 GFLOP per 256x256 sample on top).
    paper = {
        "preset": "paper",
        "content_loss": "l1",
        "batch_size": 1,
        "crop": 256,
        "critic_steps": 5,
        "data": "skimage",
    }
    cases = [
        ("paper, 256x256, batch 1, critic x5", {**paper, "adv_start": 0}),
        ("paper, 256x256, batch 1, content only", {**paper, "adv_weight": 0.0}),
        ("default recipe, content phase", {**recipe, "adv_start": 10**9}),
        ("default recipe, adversarial phase", {**recipe, "adv_start": 0}),
    ]
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, device {args.device}, {args.data_workers} data workers")
    print(f"{'case':<40} {'amp':>5} {'steps/s':>8} {'images/s':>9}")
    for label, options in cases:
        for amp in ("off", "auto"):
            rate = steps_per_second({**options, "amp": amp}, args.steps, args.device, args.data_workers)
            name = "fp32" if amp == "off" else "bf16" if args.device == "cpu" else "auto"
            print(f"{label:<40} {name:>5} {rate:8.3f} {rate * options.get('batch_size', 1):9.2f}", flush=True)


if __name__ == "__main__":
    main()
