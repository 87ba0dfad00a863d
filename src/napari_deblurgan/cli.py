"""Command line: napari-deblurgan deblur|train|lineage|evaluate|export|synthesize|organize-gopro|corpus|sample.

Each sub-command is a thin front end over the Qt-free core; errors print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gan.io.images import ImageHeader
    from .gan.restoration.options import Option
    from .gan.training.train import TrainConfig, Trainer

from .gan.restoration.options import DEVICE, ENSEMBLE, HALF, REFINE, STRENGTH, TILE_SIZE, VALUE_RANGE


def _collect_inputs(inputs: Sequence[str]) -> list[Path]:
    from .gan.io.images import IMAGE_SUFFIXES, READ_ONLY_SUFFIXES, is_image_file, special_file_kind

    kinds = ", ".join(IMAGE_SUFFIXES + READ_ONLY_SUFFIXES)
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if is_image_file(p, read_only=True))
            if not found:
                raise FileNotFoundError(f"Folder {path} holds no images ({kinds})")
            files += found
        elif path.is_file():
            if not is_image_file(path, read_only=True):
                raise ValueError(f"{path} is not an image file ({kinds})")
            files.append(path)
        elif path.exists():
            raise ValueError(f"Input {path} is {special_file_kind(path.stat().st_mode)}, not an image file")
        elif path.is_symlink():
            raise FileNotFoundError(f"Input {path} is a broken or looping symbolic link; pass the file it should name")
        else:
            raise FileNotFoundError(f"Input {path} does not exist")
    return files


def _plan_outputs(
    files: Sequence[Path], outdir: Path, suffix: str | None, overwrite: bool, skip_existing: bool = False
) -> list[Path]:
    """Output paths, checked before any work: never an input, never two the same, existing ones only with
    --overwrite (or left as they are with --skip-existing), and in a format that can hold the image."""
    from .gan.io.images import check_writable, is_tiff, probe

    headers = [probe(f) for f in files]
    outputs = [outdir / (f.stem + (suffix or _written_suffix(f, h))) for f, h in zip(files, headers)]
    for src, dst, header in zip(files, outputs, headers):
        if header.frames > 1 and not is_tiff(dst):
            raise ValueError(
                f"{src} is a stack of {header.frames} images and {dst.suffix} holds one ({header.stack_kind()}); "
                "write it as .tif (--format tif)"
            )
        check_writable(dst, header.dtype, header.channels)
    resolved_inputs, inputs = {f.resolve() for f in files}, {_identity(f) for f in files}
    seen: dict[str, Path] = {}
    for src, dst in zip(files, outputs):
        if dst.resolve() in resolved_inputs or (dst.exists() and _identity(dst, follow=False) in inputs):
            raise FileExistsError(f"Output {dst} would overwrite an input; choose another output folder (-o)")
        key = str(dst.resolve()).casefold()  # names that differ only in case are one file on macOS and Windows disks
        if key in seen:
            raise FileExistsError(
                f"{seen[key]} and {src} would both be written to {dst}; deblur them into different folders"
            )
        seen[key] = src
        if dst.exists() and not (overwrite or skip_existing):
            raise FileExistsError(
                f"Output {dst} already exists; pass --overwrite to replace it, or --skip-existing to keep it"
            )
    return outputs


def _written_suffix(path: Path, header: ImageHeader) -> str:
    """The output format of an input when --format is not given: its own, but PNG for a GIF or WebP image
    (TIFF for an animation), which are read and never written."""
    from .gan.io.images import READ_ONLY_SUFFIXES

    if path.suffix.lower() not in READ_ONLY_SUFFIXES:
        return path.suffix
    return ".tif" if header.frames > 1 else ".png"


def _identity(path: Path, follow: bool = True) -> tuple[int, int]:
    """The file a path names (device, inode): a case-insensitive disk gives IMG.JPG and IMG.jpg one identity.
    ``follow=False``: the entry itself, so that a symbolic link is not taken for its target."""
    info = path.stat() if follow else path.lstat()
    return info.st_dev, info.st_ino


def _deblur_image(image: Any, header: ImageHeader, model: Any, **options: Any) -> Any:
    """Deblur one image read from a file with this header: 3 or 4 channels are RGB(A) unless the file says
    they are channels of their own (a TIFF's colour model), and gray + alpha keeps its alpha."""
    from .gan.restoration.inference import deblur

    if header.gray_alpha:
        out = image.copy()
        out[..., 0] = deblur(image[..., 0], model, rgb=False, **options)
        return out
    axis = header.channel_axis
    rgb = False if axis is None else header.colour
    return deblur(image, model, channel_axis=axis, rgb=rgb, **options)


def _deblur(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .gan.io.checkpoint import remove_stale_temp_files
    from .gan.io.images import probe, read_image, write_image
    from .gan.restoration.inference import load_model

    files = _collect_inputs(args.inputs)
    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        raise NotADirectoryError(f"Output {outdir} is a file, not a folder; pass a folder with -o")
    if args.overwrite and args.skip_existing:
        raise ValueError("--overwrite and --skip-existing contradict each other; pass one of them")
    suffix = args.format and "." + args.format.lstrip(".")
    outputs = _plan_outputs(files, outdir, suffix, args.overwrite, args.skip_existing)
    if args.skip_existing:
        todo = [(src, dst) for src, dst in zip(files, outputs) if not dst.exists()]
        if not args.quiet and len(todo) < len(files):
            print(f"Skipping {len(files) - len(todo)} image(s) already in {outdir}")
        files, outputs = [src for src, _ in todo], [dst for _, dst in todo]
    model = load_model(args.model, args.device)
    outdir.mkdir(parents=True, exist_ok=True)
    with (
        tqdm(total=len(files), unit="image", dynamic_ncols=True, disable=args.quiet) as bar,
        _terminated_as_interrupt(),
    ):
        for src, dst in zip(files, outputs):
            remove_stale_temp_files(dst)  # left by a run killed while writing it
            header = probe(src)  # again: the file may have changed since the plan
            image = read_image(src, header=header)
            bar.set_description(src.name)

            def steps(done: int, total: int) -> None:  # tiles, then the PSF refinement
                bar.set_postfix_str(f"step {done}/{total}")

            value_range = None if args.value_range == "dtype" else args.value_range
            if isinstance(value_range, tuple):
                _warn_outside(src, image, header, value_range, bar)
            result = _deblur_image(
                image,
                header,
                model,
                value_range=value_range,
                tile_size=args.tile_size,
                half=args.half,
                ensemble=args.ensemble,
                refine=args.refine,
                strength=args.strength,
                progress=steps,
            )
            write_image(
                dst, result, header.channel_axis, header.icc, header.colour, header.gray_alpha, keep=header.keep
            )
            bar.update()
    if not args.quiet:
        print(f"Wrote {len(outputs)} image(s) to {outdir}")


@contextlib.contextmanager
def _terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, a cluster's scheduler) ends the batch as Ctrl-C does: the output being written
    is removed, not left half-written under a temp name (in the main thread only, where signals arrive)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, interrupt) if main_thread else None
    try:
        yield
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _warn_outside(src: Path, image: Any, header: ImageHeader, value_range: tuple[float, float], bar: Any) -> None:
    """Say when an image holds values outside the --value-range LO,HI given: they come out clipped to it."""
    from .gan.io.intensity import intensity_extremes

    if header.gray_alpha:
        image = image[..., 0]
    axis = None if header.gray_alpha else header.channel_axis
    low, high = (float(v) for v in intensity_extremes(image, axis, False if axis is None else header.colour))
    if low < value_range[0] or high > value_range[1]:
        bar.write(
            f"warning: {src.name} holds values {low:g}..{high:g}, outside --value-range {value_range[0]:g},"
            f"{value_range[1]:g}; they are clipped to it (widen the range, or use --value-range auto)",
            file=sys.stderr,
        )


def _add_deblur(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deblur", help="deblur image files (PNG, JPEG, TIFF; 16-bit stays 16-bit)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("-o", "--output", required=True, help="output folder (same file names as the inputs)")
    p.add_argument("--model", help="safetensors model file (default: the model shipped with the package)")
    _add_options(p, DEVICE, TILE_SIZE, HALF, ENSEMBLE, REFINE, STRENGTH)
    p.add_argument(
        VALUE_RANGE.flag,
        type=_value_range,
        default="dtype",
        metavar="dtype|auto|LO,HI",
        help=VALUE_RANGE.help.replace("%", "%%") + ": dtype (the default), auto, or LO,HI such as 0,4095 or -1000,3000",
    )
    p.add_argument(
        "--format",
        choices=["png", "jpg", "tif"],
        help="output format (default: the input's; PNG for GIF and WebP inputs, TIFF for animated ones)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (never inputs)")
    p.add_argument(
        "--skip-existing", action="store_true", help="leave existing outputs as they are: continue a stopped batch"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_deblur)


def _add_options(p: argparse.ArgumentParser, *options: Option) -> None:
    """Flags for ``deblur``'s options, with the defaults, limits and help of their table (gan/restoration/options.py):
    a flag for an option off by default, ``--no-...`` for one on by default; 0 for None where None is allowed."""
    for option in options:
        text = option.help.replace("%", "%%")  # argparse formats help with %
        if option.kind is bool and option.default:
            text = f"turn off {option.name} (on by default): {text}"
            p.add_argument("--no-" + option.flag[2:], dest=option.name, action="store_false", help=text)
        elif option.kind is bool:
            p.add_argument(option.flag, action="store_true", help=text)
        elif option.kind is str:
            p.add_argument(option.flag, default=option.default, help=text)
        elif option.choices is not None:
            text = f"{text} (default {option.default})"
            p.add_argument(option.flag, type=option.kind, choices=option.choices, default=option.default, help=text)
        elif option.kind is float:
            text = f"{text} ({option.minimum:g} to {option.maximum:g}, default {option.default:g})"
            p.add_argument(option.flag, type=_parsed(option), default=option.default, help=text)
        else:
            zero = f"; 0 for {option.none}" if option.none is not None else ""
            text = f"{text}{zero} (default {option.default:g})"
            p.add_argument(option.flag, type=_parsed(option), default=option.default, help=text)


def _parsed(option: Option) -> Any:
    """An argparse type for ``option``: :meth:`Option.from_text`, its errors in argparse's form."""

    def parse(text: str) -> Any:
        try:
            return option.from_text(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.name
    return parse


def _value_range(text: str) -> str | tuple[float, float]:
    if text in ("dtype", "auto"):
        return text
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use dtype, auto or LO,HI such as 0,4095") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise argparse.ArgumentTypeError(f"{text!r}: LO and HI must be finite numbers")
    if not high > low:
        raise argparse.ArgumentTypeError(f"{text!r}: HI must be larger than LO")
    return low, high


def _workers(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: the number of data workers is 0 or more")
    return value


def _given(text: str) -> tuple[str, str]:
    stage, sep, path = text.partition("=")
    if not sep or not stage or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: give STAGE=FILE, e.g. deep=models/default.safetensors")
    return stage, path


def _read_recipe(path: str) -> dict:
    from .gan.io.json_files import read_json_file

    options = read_json_file(path, "The recipe")
    if not isinstance(options, dict):
        raise ValueError(f"The recipe {path} must hold a JSON object of training options, not {type(options).__name__}")
    return options


def _init_distributed(device: str = "auto") -> bool:
    """Join the process group torchrun set up: NCCL when training on GPUs, gloo on the CPU (``--device
    cpu`` on a GPU machine too: NCCL cannot reduce CPU tensors); no-op for one process. True when this
    call joined it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    from .gan.model.device import resolve_device

    if dist.is_initialized():
        return False
    backend = "gloo"
    if resolve_device(device).type == "cuda":
        gpus, per_node = torch.cuda.device_count(), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if per_node > gpus:
            raise ValueError(
                f"torchrun started {per_node} processes on this machine but it has {gpus} GPU(s): one "
                f"process per GPU (--nproc_per_node={gpus}), or --device cpu"
            )
        backend = "nccl"
    dist.init_process_group(backend)
    return True


@contextlib.contextmanager
def _process_group(device: str) -> Iterator[None]:
    """The torchrun process group for the block (:func:`_init_distributed`), left again however it ends,
    so NCCL/gloo shut down before the interpreter does."""
    joined = _init_distributed(device)
    try:
        yield
    finally:
        if joined:
            import torch.distributed as dist

            dist.destroy_process_group()


#: TrainConfig fields that have a flag of their own (--batch-size for batch_size); --set reaches all of them
_TRAIN_FLAGS = (
    "preset",
    "steps",
    "batch_size",
    "crop",
    "lr",
    "content_loss",
    "adv_weight",
    "seed",
    "vgg_weights",
    "init",
    "ema",
)


def _train(args: argparse.Namespace) -> None:
    """``napari-deblurgan train``, inside torchrun's process group when torchrun started it."""
    with _process_group(args.device):
        _train_in_group(args)


def _train_in_group(args: argparse.Namespace) -> None:
    from .gan.io.checkpoint import remove_stale_temp_files
    from .gan.training.train import CHECKPOINT_NAME, MODEL_NAME, TrainConfig

    rank = int(os.environ.get("RANK", "0"))
    options: dict = _read_recipe(args.config) if args.config else {}
    options["data"] = args.data if args.data is not None else options.get("data", "skimage")
    flags = {name: getattr(args, name) for name in _TRAIN_FLAGS if getattr(args, name) is not None}
    settings: dict[str, Any] = {}
    for text in args.settings or ():
        name, value = TrainConfig.parse_setting(text)
        if name in settings or name in flags or (name == "data" and args.data is not None):
            raise ValueError(f"{name} is given twice (--set {text} and an earlier flag or --set); give it once")
        settings[name] = value
    options.update(flags)
    options.update(settings)
    given = (*flags, *settings)
    config = TrainConfig.from_dict(options)
    if args.until is not None and args.until < 1:
        raise ValueError(f"--until must be a positive step, got {args.until}")
    checkpoint = Path(args.out) / CHECKPOINT_NAME
    if args.resume and rank == 0:  # temp files of a run that was killed while saving
        for path in (checkpoint, Path(args.out) / MODEL_NAME):
            remove_stale_temp_files(path)
    trainer = _trainer(
        config,
        Path(args.out),
        device=args.device,
        resume=args.resume,
        resume_overrides=tuple({"steps", *given} if "steps" in options else given),
        data_workers=args.data_workers,
    )
    if args.resume and trainer.step == 0 and rank == 0:
        print(f"--resume: {checkpoint} does not exist, so training starts at step 0", file=sys.stderr)
    _run_trainer(trainer, Path(args.out), args.until, args.quiet, rank)


def _trainer(config: TrainConfig, out: Path, resume: bool, **options: Any) -> Trainer:
    """A :class:`Trainer` for ``out``; a checkpoint there that cannot be resumed (incomplete, or from an
    incompatible version) is refused in plain words rather than with a KeyError's traceback."""
    from .gan.training.train import CHECKPOINT_NAME, Trainer

    checkpoint = out / CHECKPOINT_NAME
    try:
        return Trainer(config, out, resume=resume, **options)
    except (KeyError, RuntimeError) as exc:
        if not (resume and checkpoint.is_file()) or (isinstance(exc, RuntimeError) and "state_dict" not in str(exc)):
            raise
        from .gan.training.export import summary

        raise ValueError(
            f"Cannot resume from {checkpoint}: it is not a complete napari-deblurgan checkpoint ({summary(exc)})"
        ) from exc


def _run_trainer(trainer: Trainer, out: Path, until: int | None, quiet: bool, rank: int) -> None:
    """Train with a progress bar until the schedule ends or step ``until``; the first Ctrl-C stops after
    the current step with a checkpoint (exit status 130), a second one quits at once."""
    from tqdm import tqdm

    from .gan.training.train import CHECKPOINT_NAME, MODEL_NAME

    checkpoint = out / CHECKPOINT_NAME
    if until is not None and trainer.step >= until:  # resumed at or past it: not one step more
        if rank == 0:
            print(f"Already at step {trainer.step} (--until {until}): nothing to train; model: {out / MODEL_NAME}")
        return
    bar = tqdm(
        total=trainer.cfg.steps, initial=trainer.step, unit="step", dynamic_ncols=True, disable=quiet or rank > 0
    )
    interrupted = False

    def stop_after_this_step(signum: int, frame: Any) -> None:
        """First Ctrl-C: finish the step, save, exit. A checkpoint taken mid-step would not resume exactly."""
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        trainer.request_stop()
        print("Stopping after this step with a checkpoint (Ctrl-C again quits without one)", file=sys.stderr)

    main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGINT, stop_after_this_step) if main_thread else None
    try:
        for event in trainer.steps():
            bar.update(event.step - bar.n)
            post = {k: f"{v:.4g}" for k, v in event.losses.items()}
            if event.validation and rank == 0:
                post["val_psnr"] = f"{event.validation['psnr']:.2f}"
                tqdm.write(
                    f"step {event.step}: validation {json.dumps({k: round(v, 4) for k, v in event.validation.items()})}"
                )
            bar.set_postfix(post, refresh=False)
            if until is not None and event.step >= until:
                trainer.request_stop()
    except KeyboardInterrupt:
        kept = "keeps its last checkpoint (resume with --resume)" if checkpoint.is_file() else "has no checkpoint yet"
        print(f"Quit without saving; {out} {kept}", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        bar.close()
    if interrupted:
        message = f"Interrupted at step {trainer.step}; checkpoint saved in {out} (resume with --resume)"
        print(message, file=sys.stderr)
        raise SystemExit(130)
    if rank == 0:
        print(f"Trained to step {trainer.step}; model: {out / MODEL_NAME}")


def _saved_step(run: Path) -> int | None:
    """The step a run folder's checkpoint and model were both saved at; None if its model is missing or of
    another step (a run killed between writing the two: the model is then ahead, and the export and
    later stages would not agree)."""
    from .gan.io.checkpoint import load_checkpoint
    from .gan.model.weights import read_metadata
    from .gan.training.train import CHECKPOINT_NAME, MODEL_NAME

    step = int(load_checkpoint(run / CHECKPOINT_NAME, mmap=True).get("step", -1))
    model = run / MODEL_NAME
    return step if model.is_file() and read_metadata(model).get("step") == str(step) else None


def _lineage(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from .gan.io.checkpoint import remove_stale_temp_files
    from .gan.training.export import export_checkpoint
    from .gan.training.lineage import Lineage
    from .gan.training.train import CHECKPOINT_NAME, MODEL_NAME

    lineage = Lineage.from_file(args.recipe)
    out = Path(args.out)
    given = dict(args.given or [])
    for stage, path in given.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"--given {stage}={path}: no such model file")
    chain = lineage.ancestry(args.stage or lineage.ship_stage, given)
    for stage in chain:
        run = stage.run_dir(out)
        for path in (run / CHECKPOINT_NAME, run / MODEL_NAME):  # left by a run killed while saving
            remove_stale_temp_files(path)
        resume = (run / CHECKPOINT_NAME).is_file()
        done = _saved_step(run) if resume else None
        if done is not None and done >= stage.until:  # no trainer (photos, networks) for a finished stage
            print(f"stage {stage.name}: trained to step {done} already")
            continue
        config = replace(stage.config, init=lineage.init_path(stage, out, given))
        trainer = _trainer(config, run, device=args.device, resume=resume, data_workers=args.data_workers)
        print(f"stage {stage.name} ({'from step ' + str(trainer.step) if resume else 'new'}): {stage.why}")
        if trainer.step >= stage.until:  # its model is missing or of another step than its checkpoint
            trainer.save()
        _run_trainer(trainer, run, stage.until, args.quiet, 0)
        del trainer
    if lineage.ship_stage not in {stage.name for stage in chain}:
        print(f"Stage {args.stage} trained; the ship stage {lineage.ship_stage} is not one it starts from: no model")
        return
    model = out / "default.safetensors"
    which, step = export_checkpoint(
        lineage.stage(lineage.ship_stage).run_dir(out), model, lineage.ship_weights, half=True, overwrite=True
    )
    print(f"Model: {model} (the {which} of stage {lineage.ship_stage} at step {step}, float16)")


#: TrainConfig's defaults of the flags `train --help` shows (here so that help needs no torch; a test checks them)
TRAIN_FLAG_DEFAULTS: dict[str, Any] = {
    "preset": "paper",
    "steps": 1000,
    "batch_size": 1,
    "crop": 256,
    "lr": 1e-4,
    "content_loss": "charbonnier",
    "adv_weight": 1.0,
    "seed": 0,
    "ema": 0.0,
}


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a generator (WGAN-GP + content loss)",
        description="Train a generator. Training options start from their defaults (TrainConfig), then the recipe "
        "(--config FILE), then DATA, the flags and --set, each overriding those before; with --resume, the flags "
        "and --set override the run's saved recipe.",
    )
    p.add_argument("data", nargs="?", default=None, help="'skimage', a folder of sharp images, an A/B or GOPRO folder")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, generator.safetensors, metrics.csv")
    p.add_argument("--config", help="JSON file of training options (a recipe); DATA, flags and --set override it")
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        metavar="KEY=VALUE",
        help="set any training option (a recipe's key), e.g. --set max_noise=0.01 --set betas=[0.9,0.99]; "
        "repeatable. VALUE: true/false, a number, a word, null (no file), or JSON for objects and lists. "
        "An option given twice (by its flag and --set) is an error",
    )
    d = TRAIN_FLAG_DEFAULTS
    p.add_argument("--preset", help=f"generator preset: paper or fast (default {d['preset']})")
    p.add_argument("--steps", type=int, help=f"steps to train to (default {d['steps']})")
    p.add_argument("--batch-size", type=int, help=f"crops per step (default {d['batch_size']})")
    p.add_argument("--crop", type=int, help=f"crop side in pixels (default {d['crop']})")
    p.add_argument("--lr", type=float, help=f"generator learning rate (default {d['lr']:g})")
    p.add_argument(
        "--content-loss",
        help=f"l1, mse, charbonnier, charbonnier+fft, perceptual, l1+perceptual (default {d['content_loss']})",
    )
    p.add_argument(
        "--adv-weight",
        type=float,
        help=f"weight of the adversarial term (0: content only; default {d['adv_weight']:g})",
    )
    p.add_argument("--vgg-weights", help="ImageNet VGG19 weights file (torchvision format) for the perceptual loss")
    p.add_argument("--seed", type=int, help=f"random seed of the run (default {d['seed']})")
    p.add_argument(
        "--ema",
        type=float,
        help=f"decay of the weight average that is validated and exported (e.g. 0.999; default {d['ema']:g}: off)",
    )
    p.add_argument("--init", help="model file (.safetensors) to start the generator from, e.g. a previous stage")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--data-workers",
        type=_workers,
        metavar="N",
        help="processes that make batches ahead (default: none on the CPU, up to 8 on GPUs); the run is the same",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, with its saved recipe; flags given here override it",
    )
    p.add_argument(
        "--until", type=int, metavar="STEP", help="stop with a checkpoint after STEP (the schedule still spans --steps)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "lineage",
        help="train a model's lineage (a recipe of stages, e.g. recipes/default.json), resuming where it stopped",
    )
    p.add_argument("recipe", help="lineage recipe: a base of training options and stages that override it")
    p.add_argument(
        "--out",
        default="runs/default-model",
        help="folder of the stages' runs and the final model (default runs/default-model)",
    )
    p.add_argument(
        "--stage", help="train this stage and those it starts from (default: the ship stage; then export the model)"
    )
    p.add_argument(
        "--given",
        type=_given,
        action="append",
        metavar="STAGE=FILE",
        help="take STAGE as trained, its model being FILE (e.g. deep=src/napari_deblurgan/models/default.safetensors): "
        "the stages after it start from FILE, those before it are not trained; repeatable",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--data-workers", type=_workers, metavar="N", help="processes that make batches ahead")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_lineage)


def _evaluate(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .gan.data.pairs import find_pairs
    from .gan.restoration.inference import load_model
    from .gan.training.evaluate import evaluate_pairs, write_scores
    from .gan.training.metrics import SSIM_DESCRIPTION

    csv_path = Path(args.csv)
    if csv_path.is_dir():  # checked before the work: it could not be replaced after it
        raise IsADirectoryError(f"--csv {csv_path} is a folder; name a file, e.g. {csv_path / 'evaluation.csv'}")
    if csv_path.exists() and not args.overwrite:
        raise FileExistsError(f"{csv_path} already exists; pass --overwrite to replace it, or choose another --csv")
    pairs = find_pairs(args.data, args.gopro_blur)
    if csv_path.resolve() in {f.resolve() for pair in pairs for f in pair}:
        raise FileExistsError(f"--csv {csv_path} is one of the images evaluated; write the scores elsewhere")
    model = load_model(args.model, args.device)
    with tqdm(total=len(pairs), unit="image", dynamic_ncols=True, disable=args.quiet) as bar:
        scores = evaluate_pairs(pairs, model, args.tile_size, args.refine, on_pair=lambda _: bar.update())
    write_scores(scores, csv_path)
    mean = {
        k: sum(getattr(s, k) for s in scores) / len(scores) for k in ("psnr_blurred", "ssim_blurred", "psnr", "ssim")
    }
    print(f"{len(scores)} pairs at full resolution, RGB; SSIM is {SSIM_DESCRIPTION}.")
    print(f"blurred input: PSNR {mean['psnr_blurred']:.2f} dB, SSIM {mean['ssim_blurred']:.4f}")
    print(f"deblurred:     PSNR {mean['psnr']:.2f} dB, SSIM {mean['ssim']:.4f}")
    print(f"per-image scores: {csv_path}")


def _export(args: argparse.Namespace) -> None:
    from .gan.training.export import export_checkpoint

    which, step = export_checkpoint(args.checkpoint, args.output, args.weights, args.half, args.overwrite)
    print(f"Exported the {which} at step {step} to {args.output}")


def _synthesize(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .gan.data.prepare import synthesize_pairs
    from .gan.data.realistic import RealisticBlur

    realistic = None
    if args.realistic:
        kinds = args.kinds.split(",") if args.kinds else None
        mix = {k: 1.0 for k in kinds} if kinds else RealisticBlur().mix
        realistic = RealisticBlur(mix=mix, extent=(args.min_length, args.max_length), sharp=0.0)
    with tqdm(unit="image", dynamic_ncols=True, disable=args.quiet) as bar:
        n = synthesize_pairs(
            args.sharp_dir,
            args.out_dir,
            args.seed,
            (args.min_length, args.max_length),
            args.noise,
            bar.update,
            realistic,
        )
    print(f"Wrote {n} blurred/sharp pairs to {args.out_dir}/A and {args.out_dir}/B")


def _corpus(args: argparse.Namespace) -> None:
    from .gan.data.corpus import build_corpus, read_manifest, write_pack

    manifest = build_corpus(args.folder, args.cache, progress=(lambda _: None) if args.quiet else print)
    rows = read_manifest(args.folder)
    kept = [r for r in rows if r["status"] == "keep"]
    splits = {s: sum(r["split"] == s for r in kept) for s in ("train", "val", "test")}
    print(f"{len(kept)} sharp photos ({', '.join(f'{n} {s}' for s, n in splits.items())}); manifest: {manifest}")
    if args.pack:
        pack = write_pack(args.folder, args.pack)
        size = sum(f.stat().st_size for f in pack.iterdir())
        print(f"Training pack: {pack} ({size / 2**20:.1f} MiB)")


def _organize(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .gan.data.prepare import organize_gopro

    with tqdm(unit="pair", dynamic_ncols=True, disable=args.quiet) as bar:
        n = organize_gopro(args.gopro_root, args.out, args.blur, args.copy, bar.update)
    print(f"Wrote {n} pairs to {args.out}/A (blurred) and {args.out}/B (sharp)")


def _sample(args: argparse.Namespace) -> None:
    from ._sample_data import blurred_clock, blurred_coffee
    from .gan.io.images import write_image

    out = Path(args.out)
    layers = blurred_coffee() + blurred_clock()
    targets = {
        "coffee blurred": out / "coffee_blurred.png",
        "coffee sharp": out / "ground_truth" / "coffee_blurred.png",
        "clock": out / "clock_motion.png",
    }
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:  # all checked before any is written: no half-written set
        raise FileExistsError(f"{', '.join(existing)} already exist(s); choose another folder")
    for data, meta, _ in layers:
        path = targets[meta["name"]]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, data)
    print(f"Wrote blurred samples to {out} (ground truth in {out / 'ground_truth'})")


def _add_others(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="write sample blurred images (synthetic with ground truth, and real)")
    p.add_argument("out", help="folder to write them to")
    p.set_defaults(func=_sample)

    p = sub.add_parser("evaluate", help="mean PSNR/SSIM of a model on an A/B or GOPRO folder, per-image CSV")
    p.add_argument("data", help="A/B folder or GOPRO_Large root/split/scene")
    p.add_argument("--model", help="safetensors model file (default: the shipped model)")
    p.add_argument("--gopro-blur", default="blur", choices=["blur", "blur_gamma"])
    p.add_argument("--csv", default="evaluation.csv", help="per-image CSV to write (default: ./evaluation.csv)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    _add_options(p, DEVICE, TILE_SIZE, REFINE)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("export", help="export a training checkpoint's generator as a safetensors model")
    p.add_argument("checkpoint", help="run folder or checkpoint.pt")
    p.add_argument("output", help="model file to write (.safetensors)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--half", action="store_true", help="store float16 weights: half the file size")
    p.add_argument(
        "--weights",
        choices=("average", "raw"),
        default="average",
        help="average: the run's weight average (ema), as validation scored it and the run's own model file "
        "holds, where it kept one (default); raw: the optimised weights",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser("synthesize", help="write blurred/sharp A/B pairs from a folder of sharp images")
    p.add_argument("sharp_dir")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-length", type=float, default=5.0, help="shortest motion path (px)")
    p.add_argument("--max-length", type=float, default=30.0, help="longest motion path (px)")
    p.add_argument("--noise", type=float, default=0.01, help="gaussian noise sigma (fraction of full range)")
    p.add_argument(
        "--realistic",
        action="store_true",
        help="GOPRO-like blur (camera rotation, moving objects, zoom, one kernel; noise, tone, JPEG) "
        "with extents from --min-length to --max-length; B holds the target it aligns with",
    )
    p.add_argument("--kinds", help="with --realistic: comma-separated kinds (camera,object,zoom,kernel); default all")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_synthesize)

    p = sub.add_parser(
        "corpus",
        help="build the corpus of sharp photos (train/val/test + manifest.csv) from Debian packages, offline",
    )
    p.add_argument("folder", help="folder to build it in (e.g. data/corpus)")
    p.add_argument("--cache", help="where the downloaded packages are kept (default: FOLDER/.debs)")
    p.add_argument("--pack", help="also write the training photos as JPEGs (<= 40 MiB) into this folder")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_corpus)

    p = sub.add_parser("organize-gopro", help="turn GOPRO_Large into A/B folders (links or copies)")
    p.add_argument("gopro_root")
    p.add_argument("out")
    p.add_argument("--blur", default="blur", choices=["blur", "blur_gamma"])
    p.add_argument("--copy", action="store_true", help="copy files instead of linking them")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_organize)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-deblurgan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_deblur(sub)
    _add_train(sub)
    _add_others(sub)
    return parser


def _joined_negative_ranges(argv: list[str]) -> list[str]:
    """``--value-range -1000,3000`` as ``--value-range=-1000,3000``: argparse takes a value that starts with
    '-' and is not a plain number for an option (signed data, e.g. CT, has negative ranges)."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] == VALUE_RANGE.flag and arg[:1] == "-" and arg[1:2].isdigit():
            joined[-1] += "=" + arg
        else:
            joined.append(arg)
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_joined_negative_ranges(sys.argv[1:] if argv is None else list(argv)))
    try:
        args.func(args)
    except (ValueError, TypeError, OSError, MemoryError, FloatingPointError) as exc:
        message = " ".join(str(exc).split()) or exc.__class__.__name__  # always one line
        print(f"napari-deblurgan {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: outputs are written whole or not at all, so one line says it all
        print(f"napari-deblurgan {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
