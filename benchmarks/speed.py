"""Speed and memory of ``deblur``: seconds per megapixel, achieved GFLOP/s against the machine's dense
matmul ceiling, tiled vs whole-frame, peak memory on 1024^2 and 4096^2 RGB, stack throughput, bf16
(where PyTorch's oneDNN supports bfloat16 on the CPU).

    python benchmarks/speed.py [--threads 2] [--quick] [--device cpu|cuda]

"before" rows run the same ``deblur`` with the trained graph as is (nearest upsampling, pad, conv at
full resolution), "after" rows the :class:`InferenceGenerator` it now uses. GFLOP/s counts the trained
graph's FLOPs in both; those rows and the tiling rows time the network alone (``refine=False``). The
"default pipeline" rows, the stack and the peak-memory cases run ``deblur`` as users do, with its PSF
refinement, on a natural image with a 9 px motion blur (so the refinement has a blur to act on). Peak
memory is measured in a fresh process per case (VmHWM: peak resident set). The "stacks" rows give
milliseconds per frame of 720p and 1080p stacks through the default pipeline, split into the network
(``refine=False``), the PSF refinement (the rest) and the host-device copies of a frame (two round trips:
to the network and back, to the refinement and back; 0 on the CPU). ``--stacks`` runs only those
(``benchmarks/gpu_check.sh`` does, on a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from napari_deblurgan import deblur, load_model
from napari_deblurgan.gan.model.device import bf16_supported
from napari_deblurgan.gan.model.generator import ResnetGenerator, preset
from napari_deblurgan.gan.restoration.options import default_overlap

PEAK_CASE = """
import json, sys, time, numpy as np, torch
from napari_deblurgan import deblur, load_model
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
model = load_model(None, "cpu")
sys.path.insert(0, args["here"])
from speed import natural_image
image = natural_image(args["size"], blur=9)
deblur(natural_image(128, blur=9), model)  # warm-up: first-call set-up is not the pipeline's time
t = time.perf_counter()
deblur(image, model, tile_size=args["tile"], half=args["half"])
seconds = time.perf_counter() - t
hwm_kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_gib": hwm_kib / 2**20}))
"""


def timed(fn, repeat: int = 2) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(dtype: torch.dtype, device: str, n: int = 4096) -> float:
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)

    def mm() -> None:
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * n**3 / timed(mm, 3) / 1e9


def forward_flops(model: ResnetGenerator, size: int) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


@contextlib.contextmanager
def unfused() -> Iterator[None]:
    """``deblur`` as before the inference rearrangement: the trained graph runs as is."""
    with mock.patch("napari_deblurgan.gan.restoration.plane_runner.for_inference", lambda generator: generator):
        yield


def natural_image(size: int, blur: int = 0, width: int | None = None) -> np.ndarray:
    """scikit-image's astronaut at ``size`` x ``size`` (or ``width``), with a horizontal ``blur``-px motion
    blur if given."""
    import skimage.data
    from scipy import ndimage
    from skimage.transform import resize

    image = resize(skimage.data.astronaut(), (size, width or size), order=3)
    if blur:
        image = ndimage.uniform_filter1d(image, blur, axis=1)
    return (image * 255).round().astype(np.uint8)


def peak(size: int, tile: int | None, threads: int, half: bool) -> dict[str, float]:
    args = json.dumps(
        {"size": size, "tile": tile, "threads": threads, "half": half, "here": str(Path(__file__).parent)}
    )
    done = subprocess.run([sys.executable, "-c", PEAK_CASE, args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def transfer_seconds(frame: np.ndarray, device: str) -> float:
    """One frame's float32 RGB to the device (page-locked, as ``deblur`` copies it) and back."""
    x = torch.from_numpy(frame.astype(np.float32) / 255)

    def round_trip() -> None:
        x.pin_memory().to(device, non_blocking=True).cpu()

    return timed(round_trip, 3)


def stacks(model: torch.nn.Module, device: str, halves: tuple[bool, ...], frames: int) -> None:
    print(f"\nstacks of {frames} frames, default pipeline, natural RGB uint8 with a 9 px motion blur: ms per frame")
    columns = ("network", "refinement", "transfers", "total", "frames/s")
    print(f"{'frame':<6} {'precision':>9} " + " ".join(f"{c:>10}" for c in columns))
    for h, w in ((720, 1280), (1080, 1920)):
        frame = natural_image(h, blur=9, width=w)
        stack = np.stack([np.roll(frame, 5 * t, axis=1) for t in range(frames)])
        copies = 0.0 if device == "cpu" else 2 * transfer_seconds(frame, device)
        for half in halves:
            network = timed(lambda s=stack, x=half: deblur(s, model, half=x, refine=False), 1) / frames
            total = timed(lambda s=stack, x=half: deblur(s, model, half=x), 1) / frames
            label = ("bf16" if device == "cpu" else "fp16") if half else "fp32"
            print(
                f"{f'{h}p':<6} {label:>9} {1e3 * network:10.1f} {1e3 * (total - network):10.1f} "
                f"{1e3 * copies:10.2f} {1e3 * total:10.1f} {1 / total:10.2f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="skip the 4096^2 whole-frame case (about 3 GiB)")
    parser.add_argument("--stacks", action="store_true", help="only the 720p and 1080p stack rows")
    parser.add_argument("--frames", type=int, help="frames per stack (default: 2 on the CPU, 16 on GPUs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device
    low = torch.bfloat16 if dev == "cpu" else torch.float16
    print(f"torch {torch.__version__}, device {dev}, {torch.get_num_threads()} threads")
    # half=True runs float32 where oneDNN lacks bfloat16 (there a bf16 matmul would take minutes)
    halves = (False, True) if dev != "cpu" or bf16_supported(torch.device(dev)) else (False,)
    ceiling = {d: matmul_gflops(d, dev) for d in (torch.float32, low)[: len(halves)]}
    print("dense matmul 4096^2: " + ", ".join(f"{str(d)[6:]} {g:.0f} GFLOP/s" for d, g in ceiling.items()))
    if len(halves) == 1:
        print("no bfloat16 in oneDNN on this CPU: half=True runs in float32, its rows are skipped")

    default = load_model(None, dev)
    frames = args.frames or (2 if dev == "cpu" else 16)
    if args.stacks:
        stacks(default, dev, halves, frames)
        return
    image = natural_image(1024)
    mp = image.shape[0] * image.shape[1] / 1e6
    paper = ResnetGenerator(preset("paper")).eval().to(dev)
    if dev == "cpu":
        paper = paper.to(memory_format=torch.channels_last)
    rows = [
        ("default, before", default, unfused),
        ("default (shipped)", default, contextlib.nullcontext),
        ("paper preset, before", paper, unfused),
        ("paper preset (untrained)", paper, contextlib.nullcontext),
    ]

    print("\nwhole frame, 1024x1024 RGB (border padding included in the FLOPs)")
    print(f"{'model':<26} {'precision':>9} {'s/MP':>6} {'GFLOP/s':>8} {'% of matmul':>11} {'PSNR vs fp32':>12}")
    reference = {}
    for name, model, mode in rows:
        flops = forward_flops(model.cpu(), 1024 + 32).__float__()
        model.to(dev)
        for half in halves:
            out: dict[str, np.ndarray] = {}

            def run(m=model, h=half, o=out) -> None:
                o["y"] = deblur(image, m, tile_size=None, half=h, refine=False)

            with mode():
                seconds = timed(run)
            if not half:
                reference[name] = out["y"]
                agreement = "-"
            else:
                from skimage.metrics import peak_signal_noise_ratio

                agreement = f"{peak_signal_noise_ratio(reference[name], out['y']):.1f} dB"
            ceil = ceiling[low if half else torch.float32]
            label = str(low)[6:] if half else "fp32"
            print(
                f"{name:<26} {label:>9} {seconds / mp:6.2f} {flops / seconds / 1e9:8.0f} "
                f"{100 * flops / seconds / 1e9 / ceil:10.0f}% {agreement:>12}",
                flush=True,
            )

    blurred = natural_image(1024, blur=9)
    print("\ndefault pipeline, 1024x1024 RGB with a 9 px motion blur, default model (generator + PSF refinement)")
    for half in halves:
        network = timed(lambda h=half: deblur(blurred, default, half=h, refine=False))  # default tiling
        pipeline = timed(lambda h=half: deblur(blurred, default, half=h))
        print(
            f"{'bf16' if half else 'fp32'}: {pipeline / mp:.2f} s/MP ({network / mp:.2f} network + "
            f"{(pipeline - network) / mp:.2f} refinement)",
            flush=True,
        )

    print("\ntiling, default model, 1024x1024 RGB, fp32, network only")
    for label, mode in (("before", unfused), ("after", contextlib.nullcontext)):
        with mode():
            whole = timed(lambda: deblur(image, default, tile_size=None, refine=False))
            for tile in (512, 768):  # tiles of 1024 px: one frame, as whole
                overlap = default_overlap(tile)
                t = timed(
                    lambda tile=tile, overlap=overlap: deblur(
                        image, default, tile_size=tile, tile_overlap=overlap, refine=False
                    )
                )
                print(
                    f"{label:>6}: tiles of {tile} (overlap {overlap}): {t:.2f} s vs whole frame {whole:.2f} s: "
                    f"{100 * (t / whole - 1):+.0f} %",
                    flush=True,
                )

    stacks(default, dev, halves, frames)

    if dev == "cpu":
        print(
            "\npeak resident memory, default pipeline, blurred natural RGB uint8 (fresh process each; "
            "time: one run after a 128 px warm-up)"
        )
        cases = [(1024, None), (1024, 512), (4096, 1024), (4096, 512)] + ([] if args.quick else [(4096, None)])
        for size, tile in cases:
            r = peak(size, tile, args.threads, False)
            mode = f"tiles <= {tile}" if tile else "whole frame"
            print(
                f"{size}x{size} {mode:>13}: {r['seconds']:6.1f} s ({r['seconds'] / (size * size / 1e6):.2f} s/MP), "
                f"peak {r['peak_gib']:.2f} GiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
