"""Training steps per second on this machine: the paper preset at 256x256 (batch 1, as in the paper) and
the shipped model's lineage (``recipes/default.json``: its shipped stage content-only, and with its critic
stage's WGAN-GP critic), fp32 and bf16 autocast, plus the seconds its GOPRO-like blur engine takes per
batch (photos of ``data/corpus``: ``napari-deblurgan corpus data/corpus`` builds them).

    python benchmarks/train_speed.py [--steps 5] [--device cpu] [--data-workers 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from napari_deblurgan.gan.training.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
LINEAGE = ROOT / "recipes" / "default.json"  # the shipped model's lineage


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
    from napari_deblurgan.gan.training.train import build_source

    source = build_source(TrainConfig.from_dict(options))
    source.batch(0)
    t = time.perf_counter()
    for step in range(1, batches + 1):
        source.batch(step)
    return (time.perf_counter() - t) / batches


def lineage_options() -> tuple[dict, dict]:
    """The shipped stage's training options and those of the lineage's stage that trains with a critic."""
    from napari_deblurgan.gan.training.lineage import Lineage

    lineage = Lineage.from_file(LINEAGE)
    shipped = lineage.stage(lineage.ship_stage).config.to_dict()
    critic = next(s.config.to_dict() for s in lineage.stages if s.config.adv_weight > 0)
    for options in (shipped, critic):
        options.update(data=str(ROOT / options["data"]), init=None)
        if not Path(options["data"]).is_dir():
            raise SystemExit(f"{options['data']} is missing: napari-deblurgan corpus {options['data']}")
    return shipped, critic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-workers", type=int, default=0, help="processes making batches ahead")
    args = parser.parse_args()
    shipped, critic = lineage_options()
    print(
        f"GOPRO-like blur engine: {seconds_per_batch(shipped, args.steps):.3f} s per batch of "
        f"{shipped['batch_size']} x {shipped['crop']}^2"
    )
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
        ("default lineage, shipped stage", shipped),
        ("default lineage, critic stage", critic),
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
