"""Two CPU processes (gloo) train in lockstep: both ranks end with identical weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch, torch.distributed as dist
    from napari_deblurgan.cli import _init_distributed
    from napari_deblurgan.gan.training.train import TrainConfig, Trainer

    _init_distributed("cpu")
    torch.set_num_threads(1)
    out = sys.argv[1]
    cfg = TrainConfig(preset="fast", generator={"ngf": 8, "n_blocks": 1}, critic={"ndf": 8, "n_layers": 2},
                      content_loss="l1", crop=32, batch_size=2, steps=4, adv_start=2, critic_steps=1,
                      checkpoint_every=4, validate_every=4, data="skimage")
    trainer = Trainer(cfg, out, device="cpu")
    trainer.fit()
    rank = dist.get_rank()
    torch.save({"generator": trainer.generator.state_dict(), "critic": trainer.critic.state_dict(),
                "world": dist.get_world_size()}, f"{out}/rank{rank}.pt")
    dist.barrier()
    # Both ranks are done: leave without the interpreter's teardown, where gloo's worker threads abort
    # about one run in ten here ("terminate called without an active exception", pytorch/pytorch#179291).
    os._exit(0)
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(script),
        str(tmp_path),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    for net in ("generator", "critic"):
        assert all(torch.equal(r0[net][k], r1[net][k]) for k in r0[net]), net
    assert (tmp_path / "checkpoint.pt").is_file()  # written by rank 0 only


def _backend_chosen(monkeypatch, device: str, gpus: int, per_node: int = 2) -> str:
    import torch.distributed as dist

    from napari_deblurgan.cli import _init_distributed

    chosen: list[str] = []
    monkeypatch.setenv("WORLD_SIZE", str(per_node))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(per_node))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", chosen.append)
    _init_distributed(device)
    return chosen[0]


def test_process_group_backend_follows_the_training_device(monkeypatch) -> None:
    assert _backend_chosen(monkeypatch, "cpu", gpus=2) == "gloo"  # NCCL cannot reduce CPU tensors
    assert _backend_chosen(monkeypatch, "auto", gpus=0) == "gloo"
    assert _backend_chosen(monkeypatch, "auto", gpus=2) == "nccl"
    with pytest.raises(ValueError, match="one process per GPU"):
        _backend_chosen(monkeypatch, "cuda", gpus=1)


def test_train_leaves_the_process_group_it_joined_even_when_training_fails(monkeypatch, tmp_path: Path) -> None:
    import torch.distributed as dist

    from napari_deblurgan.cli import main

    calls: list[str] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(f"init {backend}"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
    code = main(["train", str(tmp_path / "no such folder"), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert code != 0  # the data folder is missing: training fails ...
    assert calls == ["init gloo", "destroy"]  # ... and the group is left all the same
