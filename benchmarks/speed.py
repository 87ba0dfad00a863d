"""Seconds per megapixel and peak memory of ``deblur`` on RGB images, whole-frame vs tiled.

Each case runs in a fresh process, whose peak resident memory (VmHWM) is reported.

    python benchmarks/speed.py [--model PATH] [--sizes 1024 4096] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = """
import json, sys, time, numpy as np, torch
from napari_deblurgan import deblur, load_model
from napari_deblurgan.gan.generator import ResnetGenerator, preset
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
if args["model"] == "random-fast":
    model = ResnetGenerator(preset("fast")).eval().to(memory_format=torch.channels_last)
else:
    model = load_model(args["model"] or None, "cpu")
rng = np.random.default_rng(0)
image = rng.integers(0, 256, (args["size"], args["size"], 3), dtype=np.uint8)
deblur(image[:256, :256], model, tile_size=args["tile"], half=args["half"])  # warm-up
t = time.perf_counter()
deblur(image, model, tile_size=args["tile"], half=args["half"])
seconds = time.perf_counter() - t
hwm_kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_gib": hwm_kib / 2**20}))
"""


def run_case(size: int, tile: int | None, model: str, threads: int, half: bool) -> dict[str, float]:
    args = json.dumps({"size": size, "tile": tile, "model": model, "threads": threads, "half": half})
    done = subprocess.run([sys.executable, "-c", CASE, args], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["s_per_mp"] = result["seconds"] / (size * size / 1e6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="", help="model file (default: the shipped model; 'random-fast' for an untrained one)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--tile", type=int, default=1024, help="tile size of the tiled runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--half", action="store_true", help="bf16 autocast on the CPU")
    parser.add_argument("--skip-whole-above", type=int, default=4096, help="skip whole-frame runs above this size")
    args = parser.parse_args()
    print(
        f"deblur() on random RGB uint8 images, {args.threads} threads, model={args.model or 'shipped default'}, "
        f"{'bf16' if args.half else 'fp32'}; peak = max resident memory of the process"
    )
    print(f"{'image':>11} {'mode':>14} {'seconds':>8} {'s/MP':>6} {'peak GiB':>9}")
    cases = []
    for size in args.sizes:
        cases.append((size, args.tile, f"tiled {args.tile}"))
        if size <= args.skip_whole_above:
            cases.append((size, None, "whole frame"))
    for size, tile, label in cases:
        r = run_case(size, tile, args.model, args.threads, args.half)
        print(
            f"{size:>5}x{size:<5} {label:>14} {r['seconds']:8.2f} {r['s_per_mp']:6.2f} {r['peak_gib']:9.2f}", flush=True
        )


if __name__ == "__main__":
    main()
