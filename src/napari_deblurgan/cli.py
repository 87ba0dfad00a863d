"""Command line: ``napari-deblurgan deblur|train|evaluate|export|synthesize|organize-gopro``.

Each sub-command is a thin front end over the Qt-free core; errors print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _collect_inputs(inputs: Sequence[str]) -> list[Path]:
    from .gan.images import is_image_file

    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if is_image_file(p))
            if not found:
                raise FileNotFoundError(f"Folder {path} holds no .png, .jpg or .tif images")
            files += found
        elif path.is_file():
            if not is_image_file(path):
                raise ValueError(f"{path} is not a .png, .jpg or .tif image")
            files.append(path)
        else:
            raise FileNotFoundError(f"Input {path} does not exist")
    return files


def _plan_outputs(files: Sequence[Path], outdir: Path, suffix: str | None, overwrite: bool) -> list[Path]:
    """Output paths, checked before any work: never an input, never two the same, existing ones only with
    --overwrite."""
    outputs = [outdir / (f.stem + (suffix or f.suffix)) for f in files]
    resolved_inputs = {f.resolve() for f in files}
    seen: dict[Path, Path] = {}
    for src, dst in zip(files, outputs):
        key = dst.resolve()
        if key in resolved_inputs:
            raise FileExistsError(f"Output {dst} would overwrite an input; choose another output folder (-o)")
        if key in seen:
            raise FileExistsError(f"{seen[key]} and {src} would both be written to {dst}; deblur them into different folders")
        seen[key] = src
        if dst.exists() and not overwrite:
            raise FileExistsError(f"Output {dst} already exists; pass --overwrite to replace it")
    return outputs


def _deblur(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .gan.images import read_image, write_image
    from .gan.inference import deblur, load_model

    files = _collect_inputs(args.inputs)
    outdir = Path(args.output)
    outputs = _plan_outputs(files, outdir, args.format and "." + args.format.lstrip("."), args.overwrite)
    model = load_model(args.model, args.device)
    outdir.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(files), unit="image", dynamic_ncols=True, disable=args.quiet) as bar:
        for src, dst in zip(files, outputs):
            image = read_image(src)
            bar.set_description(src.name)

            def tiles(done: int, total: int) -> None:
                bar.set_postfix_str(f"tile {done}/{total}")

            result = deblur(image, model, tile_size=args.tile_size or None, half=args.half, progress=tiles)
            write_image(dst, result)
            bar.update()
    if not args.quiet:
        print(f"Wrote {len(outputs)} image(s) to {outdir}")


def _add_deblur(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deblur", help="deblur image files (PNG, JPEG, TIFF; 16-bit stays 16-bit)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("-o", "--output", required=True, help="output folder (same file names as the inputs)")
    p.add_argument("--model", help="safetensors model file (default: the model shipped with the package)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--tile-size", type=int, default=1024, help="tile size in pixels; 0 for whole frames")
    p.add_argument("--half", action="store_true", help="half precision (fp16 on GPUs, bf16 on capable CPUs)")
    p.add_argument("--format", choices=["png", "jpg", "tif"], help="output format (default: the input's)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (never inputs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_deblur)


def _train(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .gan.train import TrainConfig, Trainer

    options: dict = json.loads(Path(args.config).read_text()) if args.config else {}
    options["data"] = args.data if args.data is not None else options.get("data", "skimage")
    for name in ("preset", "steps", "batch_size", "crop", "lr", "content_loss", "seed", "vgg_weights"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.adv_weight is not None:
        options["adv_weight"] = args.adv_weight
    config = TrainConfig.from_dict(options)
    trainer = Trainer(config, args.out, device=args.device, resume=args.resume)
    bar = tqdm(total=trainer.cfg.steps, initial=trainer.step, unit="step", dynamic_ncols=True, disable=args.quiet)
    try:
        for event in trainer.steps():
            bar.update(event.step - bar.n)
            post = {k: f"{v:.4g}" for k, v in event.losses.items()}
            if event.validation:
                post["val_psnr"] = f"{event.validation['psnr']:.2f}"
                tqdm.write(f"step {event.step}: validation {json.dumps({k: round(v, 4) for k, v in event.validation.items()})}")
            bar.set_postfix(post, refresh=False)
    except KeyboardInterrupt:
        trainer.request_stop()
        trainer.save()
        print(f"Interrupted at step {trainer.step}; checkpoint saved in {args.out} (resume with --resume)", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        bar.close()
    print(f"Trained to step {trainer.step}; model: {Path(args.out) / 'generator.safetensors'}")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a generator (WGAN-GP + content loss)")
    p.add_argument("data", nargs="?", default=None, help="'skimage', a folder of sharp images, an A/B or GOPRO folder")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, generator.safetensors, metrics.csv")
    p.add_argument("--config", help="JSON file of training options (a recipe); flags override it")
    p.add_argument("--preset", help="generator preset: paper or fast")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--crop", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--content-loss", help="l1, mse, charbonnier, perceptual, l1+perceptual")
    p.add_argument("--adv-weight", type=float, help="weight of the adversarial term (0: content only)")
    p.add_argument("--vgg-weights", help="ImageNet VGG19 weights file (torchvision format) for the perceptual loss")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-deblurgan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_deblur(sub)
    _add_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"napari-deblurgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
