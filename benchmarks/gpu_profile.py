"""Where the time goes on a GPU: the bare network, ``deblur`` on a 720p stack (warm), and one training step
of recipes/realistic_gpu.json split into making the batch and the step itself, each with torch.profiler's
top operators. Prints figures; a lent GPU runs it in about a minute:

    PYTHONPATH=src python3 benchmarks/gpu_profile.py --device cuda [--steps 5]

(``--device cpu --small`` checks the plumbing here.)
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from napari_deblurgan import deblur, load_model
from napari_deblurgan.gan.data.prefetch import default_data_workers
from napari_deblurgan.gan.training.train import TrainConfig, Trainer
from speed import natural_image
from train_speed import steps_per_second


def seconds(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Best wall time of ``repeat`` calls after one warm-up call, synchronising the device."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def top_operators(fn: Callable[[], object], device: torch.device, rows: int = 15) -> None:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    table = prof.key_averages()
    print(table.table(sort_by="self_cpu_time_total", row_limit=rows))
    if device.type == "cuda":
        print(table.table(sort_by="self_device_time_total", row_limit=rows))
        launches = sum(e.count for e in table if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx"))
        print(f"kernel launches: {launches}")


def network(device: torch.device, size: tuple[int, int], batches: tuple[int, ...]) -> None:
    model = load_model(device=device).eval()
    print(f"\nbare network, {size[0]}x{size[1]}: ms per frame")
    for batch in batches:
        x = torch.rand(batch, 3, *size, device=device)
        for dtype in (torch.float32, torch.float16 if device.type == "cuda" else torch.bfloat16):
            m, xs = model.to(dtype), x.to(dtype)
            for layout in (torch.contiguous_format, torch.channels_last):
                m, xs = m.to(memory_format=layout), xs.contiguous(memory_format=layout)
                with torch.inference_mode():
                    t = seconds(lambda m=m, xs=xs: m(xs), device, 3)
                name = "channels_last" if layout is torch.channels_last else "contiguous"
                print(f"batch {batch} {str(dtype)[6:]:>8} {name:>13}: {1e3 * t / batch:8.2f}", flush=True)
    model.float().to(memory_format=torch.contiguous_format)


def pipeline(device: torch.device, size: tuple[int, int], frames: int) -> None:
    frame = natural_image(size[0], blur=9, width=size[1])
    stack = np.stack([np.roll(frame, 5 * t, axis=1) for t in range(frames)])
    model = load_model(device=device)
    print(f"\ndeblur, a warm {frames}-frame stack of {size[0]}x{size[1]}: ms per frame")
    # the default tiles (a 720p frame is two: frames one at a time), or whole frames batched through the
    # network and the refinement, 4 (the default) or 16 at a time
    for tile, batch in ((1024, None), (None, None), (None, 16)):
        for refine in (False, True):
            for half in (False, True):
                run = partial(deblur, stack, model, half=half, refine=refine, tile_size=tile, batch_size=batch)
                t = seconds(run, device, 2)
                label = f"tile {tile!s:>5} batch {batch!s:>4} refine {refine!s:>5} half {half!s:>5}"
                print(f"{label}: {1e3 * t / frames:8.1f}", flush=True)
    print("\nPython's view of deblur (fp32, not refined, default tiles), by own time:")
    profiler = cProfile.Profile()
    profiler.runcall(deblur, stack, model, refine=False)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    print("\nprofile of deblur (fp32, refined):")
    top_operators(lambda: deblur(stack, model), device)


def training(device: torch.device, steps: int, small: bool) -> None:
    with open("recipes/realistic_gpu.json") as fh:
        recipe = json.load(fh)
    recipe.update(validate_every=10**9, checkpoint_every=10**9)
    if small:
        recipe.update(batch_size=2, crop=64)
    trainer = Trainer(TrainConfig.from_dict(recipe), tempfile.mkdtemp(), device=str(device), data_workers=0)
    source = trainer.source
    print(f"\ntraining, batch {recipe['batch_size']} of {recipe['crop']}^2, amp {trainer.amp_dtype}: s per step")
    made = seconds(lambda: source.batch(0), device, steps)
    print(f"making a batch ({type(source).__name__}, on {getattr(source, 'device', 'cpu')}): {made:.3f}")
    fixed = source.batch(0)

    class Fixed:
        def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
            return fixed

    trainer._batches = Fixed()
    for benchmark in (False, True):
        torch.backends.cudnn.benchmark = benchmark
        step = seconds(trainer.train_step, device, steps)
        print(f"the step on a ready batch, cudnn.benchmark {benchmark}: {step:.3f}; with the batch: {made + step:.3f}")
    workers = default_data_workers(device)
    rate = steps_per_second(recipe, 4 * steps, str(device), workers)  # its last, saving step never reached
    print(f"training with {workers} data workers: {rate:.2f} steps/s")
    print("\nprofile of making a batch:")
    top_operators(lambda: source.batch(1), device)
    print("\nprofile of the step:")
    top_operators(trainer.train_step, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--small", action="store_true", help="small sizes, to check the plumbing on a CPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    size = (64, 96) if args.small else (720, 1280)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}")
    training(device, args.steps, args.small)
    network(device, size, (1, 4))
    pipeline(device, size, 2 if args.small else 8)


if __name__ == "__main__":
    main()
