"""Batches made ahead in worker processes equal the source's own, so runs are the same with workers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_deblurgan.gan.data.batches import SyntheticPairs
from napari_deblurgan.gan.data.photo_pairs import RealisticPairs
from napari_deblurgan.gan.data.prefetch import PrefetchedSource, default_data_workers
from napari_deblurgan.gan.training.train import TrainConfig, Trainer


def test_prefetched_batches_equal_the_sources_in_order_after_a_jump_and_per_rank() -> None:
    rng = np.random.default_rng(0)
    source = SyntheticPairs([rng.random((80, 90, 3), dtype=np.float32)], crop=24, batch_size=2, seed=5)
    ahead = PrefetchedSource(source, workers=2)
    try:
        for step, rank in [(0, 0), (1, 0), (2, 0), (7, 0), (8, 1), (3, 0)]:
            made, direct = ahead.batch(step, rank), source.batch(step, rank)
            assert all(torch.equal(a, b) for a, b in zip(made, direct)), (step, rank)
    finally:
        ahead.close()
    with pytest.raises(ValueError, match="at least one worker"):
        PrefetchedSource(source, workers=0)


def test_workers_prepare_a_rendering_source_and_this_process_renders_it() -> None:
    """The realistic engine renders on the training GPU: workers cut the canvases and draw the choices
    (no CUDA in forked workers), the training process renders; the batches equal the source's own."""
    finished_in: list[int] = []

    class Recording(RealisticPairs):
        def finish(self, prepared):  # type: ignore[no-untyped-def]
            finished_in.append(os.getpid())
            return super().finish(prepared)

    rng = np.random.default_rng(1)
    photos = [rng.integers(0, 256, (70, 90, 3), dtype=np.uint8) for _ in range(2)]
    source = Recording(photos, crop=24, batch_size=2, seed=3)
    ahead = PrefetchedSource(source, workers=2)
    try:
        for step in (0, 1, 5):
            made = ahead.batch(step)
            direct = source.batch(step)
            assert all(torch.equal(a, b) for a, b in zip(made, direct)), step
    finally:
        ahead.close()
    assert finished_in == [os.getpid()] * 6  # three prefetched and three direct, all rendered here


def test_a_run_with_data_workers_equals_one_without(tmp_path: Path) -> None:
    recipe = dict(preset="fast", generator={"ngf": 8, "n_blocks": 1}, content_loss="l1", crop=32, batch_size=2,
                  steps=4, validate_every=100, checkpoint_every=100, data="skimage")  # fmt: skip
    runs = {}
    for workers in (0, 2):
        trainer = Trainer(TrainConfig(**recipe), tmp_path / f"w{workers}", device="cpu", data_workers=workers)
        trainer.fit()
        assert trainer._batches is trainer.source  # the workers are gone once the run ends
        runs[workers] = trainer.generator.state_dict()
    assert all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_default_data_workers_only_on_cuda_leaving_a_core_free(monkeypatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_data_workers(torch.device("cpu")) == 0  # the cores train
    assert default_data_workers(torch.device("mps")) == 0  # macOS spawns: scripts would need a main guard
    assert default_data_workers(torch.device("cuda")) == 8
    assert default_data_workers(torch.device("cuda"), processes_per_node=4) == 3


KILLED_PARENT = """
import multiprocessing, os, signal, numpy as np
import os

from napari_deblurgan.gan.data.batches import SyntheticPairs
from napari_deblurgan.gan.data.photo_pairs import RealisticPairs
from napari_deblurgan.gan.data.prefetch import PrefetchedSource
source = SyntheticPairs([np.zeros((40, 40, 3), np.float32)], crop=16, batch_size=1, seed=0)
PrefetchedSource(source, workers=1).batch(0)
print(*[child.pid for child in multiprocessing.active_children()], flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no finally, no atexit: as a killed training run
"""


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\tZ" not in status.split("State:")[1].splitlines()[0]  # a zombie has exited


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_workers_stop_when_the_training_process_is_killed() -> None:
    import subprocess
    import sys
    import time

    done = subprocess.run([sys.executable, "-c", KILLED_PARENT], capture_output=True, text=True, timeout=120)
    workers = [int(pid) for pid in done.stdout.split()]
    assert workers, done.stderr[-2000:]
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_running(pid) for pid in workers)
