"""Faults during training: kill -9 of a real training run, then --resume; out of memory in a training step.
(How the command line reports them: test_cli.py.)"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _helpers import TINY_RECIPE, fail_train_step_at
from napari_deblurgan.gan.io.checkpoint import load_checkpoint
from napari_deblurgan.gan.model.device import is_out_of_memory
from napari_deblurgan.gan.model.weights import load_generator, read_metadata
from napari_deblurgan.gan.training.train import TrainConfig, Trainer, TrainingOutOfMemory

EVERY = 2
RECIPE = {
    **TINY_RECIPE,
    "checkpoint_every": EVERY,
    "log_every": 1,
    "steps": 100_000,  # never reached: the run is killed
    "decay_start": 1.0,  # a constant learning rate, so runs of different lengths are comparable
}
RUN_FILES = {"checkpoint.pt", "generator.safetensors", "metrics.csv"}


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(RECIPE))
    return path


def _logged_steps(metrics: Path) -> list[int]:
    """Steps of metrics.csv's rows (a row torn by the kill is skipped)."""
    steps = []
    with open(metrics, newline="") as fh:
        for row in csv.DictReader(fh):
            with contextlib.suppress(TypeError, ValueError):
                steps.append(int(row["step"]))
    return steps


def _train_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_deblurgan", "train", *args, "--device", "cpu", "--quiet"]


def test_kill_9_mid_run_leaves_loadable_files_and_resume_continues(tmp_path, sharp, recipe) -> None:
    run = tmp_path / "run"
    ckpt, model, metrics = run / "checkpoint.pt", run / "generator.safetensors", run / "metrics.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:  # a file, not a pipe: a full pipe would stall the child
        proc = subprocess.Popen(
            _train_cli(str(sharp), "--out", str(run), "--config", str(recipe)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    reads = 0
    try:
        deadline = time.monotonic() + 60
        first = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            if ckpt.is_file() and model.is_file():  # the model is exported just before the checkpoint
                # read while the trainer keeps replacing it: the rename makes every read see a whole file
                step = load_checkpoint(ckpt)["step"]
                load_generator(model)
                reads += 1
                first = step if first is None else first
                progressed = metrics.is_file() and max(_logged_steps(metrics), default=0) >= first + 3 * EVERY
                if progressed and reads >= 30:
                    break
            time.sleep(0.01)
        else:
            pytest.fail("the training run made no progress in 60 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    state = load_checkpoint(ckpt)  # loads (weights_only), whatever moment the kill hit
    saved = int(state["step"])
    logged = _logged_steps(metrics)
    last = max(logged)
    # a step is logged after its checkpoint is saved: at most one interval is lost
    assert saved % EVERY == 0 and (0 <= last - saved < EVERY or saved == last + 1), (saved, last)
    assert int(read_metadata(model)["step"]) in (saved, saved + EVERY)  # exported just before the checkpoint
    load_generator(model)
    leftovers = {p.name for p in run.iterdir()} - RUN_FILES
    assert all(name.startswith(".") and name.endswith(".tmp") for name in leftovers), leftovers

    end = saved + 3
    done = subprocess.run(
        _train_cli(str(sharp), "--out", str(run), "--config", str(recipe), "--resume", "--steps", str(end)),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"Trained to step {end}" in done.stdout
    after = _logged_steps(metrics)  # the rows after the checkpoint are dropped, then logged again
    assert after == [s for s in logged if s <= saved] + list(range(saved + 1, end + 1))
    assert load_checkpoint(ckpt)["step"] == end and read_metadata(model)["step"] == str(end)
    assert {p.name for p in run.iterdir()} == RUN_FILES  # stale temp files were cleaned up on resume

    # the resumed weights are exactly those of a straight run (same data and RNG per step; one thread each)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        straight = Trainer(TrainConfig(**{**RECIPE, "data": str(sharp), "steps": end}), tmp_path / "straight", "cpu")
        straight.fit()
    finally:
        torch.set_num_threads(threads)
    got = load_generator(model).state_dict()
    for key, value in straight.generator.state_dict().items():
        assert torch.equal(value, got[key]), key


def test_rows_logged_after_the_checkpoint_are_logged_once_on_resume(tmp_path, sharp) -> None:
    config = TrainConfig(**{**RECIPE, "data": str(sharp), "steps": 6, "checkpoint_every": 4})
    run = tmp_path / "run"
    trainer = Trainer(config, run, "cpu")
    for event in trainer.steps():
        if event.step == 5:  # checkpoint at step 4, rows up to 5: then killed
            break
    del trainer
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 4 and _logged_steps(run / "metrics.csv")[-1] == 5
    Trainer(config, run, "cpu", resume=True).fit()
    assert _logged_steps(run / "metrics.csv") == [1, 2, 3, 4, 5, 6]


# -- out of memory --------------------------------------------------------------------------------------


def _tiny_trainer(run: Path, sharp: Path, **overrides: object) -> Trainer:
    cfg = TrainConfig(**{**RECIPE, "data": str(sharp), "steps": 10, "checkpoint_every": 1000, **overrides})
    return Trainer(cfg, run, device="cpu")


def test_oom_in_a_step_saves_the_last_good_state_and_says_what_to_change(tmp_path, sharp, monkeypatch) -> None:
    fail_train_step_at(monkeypatch, 3, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    trainer = _tiny_trainer(tmp_path / "run", sharp, crop=64)
    with pytest.raises(TrainingOutOfMemory) as info:
        trainer.fit()
    message = str(info.value)
    assert "out of memory at step 3" in message and "batch size 2 and crop 64" in message
    assert "(e.g. batch size 1 or crop 32; --batch-size / --crop on the command line)" in message
    assert "Tried to allocate" in message
    assert isinstance(info.value, MemoryError)  # the CLI prints MemoryErrors as one line
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # checkpoint_every is 1000: written by the OOM
    assert state["step"] == 2 and "step 2" in message
    model = load_generator(tmp_path / "run" / "generator.safetensors")
    for key, value in trainer.generator.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
    ],
)
def test_out_of_memory_runtime_errors_are_recognised(tmp_path, sharp, monkeypatch, error) -> None:
    assert is_out_of_memory(error)
    fail_train_step_at(monkeypatch, 2, error)
    with pytest.raises(TrainingOutOfMemory, match="smaller batch size or crop"):
        _tiny_trainer(tmp_path / "run", sharp).fit()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 1


def test_other_errors_pass_through_unchanged(tmp_path, sharp, monkeypatch) -> None:
    error = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    assert not is_out_of_memory(error)
    fail_train_step_at(monkeypatch, 2, error)
    with pytest.raises(RuntimeError) as info:
        _tiny_trainer(tmp_path / "run", sharp).fit()
    assert info.value is error and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_oom_on_the_first_step_writes_nothing_so_a_smaller_run_can_start(tmp_path, sharp, monkeypatch) -> None:
    calls = fail_train_step_at(monkeypatch, 1, torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(TrainingOutOfMemory, match="no new checkpoint"):
        _tiny_trainer(tmp_path / "run", sharp).fit()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    _tiny_trainer(tmp_path / "run", sharp, batch_size=1, steps=2).fit()  # the same folder, no --resume needed
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2 and len(calls) == 3
