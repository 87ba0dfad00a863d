"""Training batches made ahead in worker processes, so a GPU does not wait for the CPU's blur synthesis.

Every batch is a function of (seed, step, rank), so a batch made ahead in a worker equals the one the
source would make in turn: runs, resumes and checkpoints are the same with or without workers.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import torch

from .batches import BatchSource, PairedCrops

_SOURCE: BatchSource | None = None  # the source, in a worker process


def default_data_workers(device: torch.device, processes_per_node: int = 1) -> int:
    """Up to 8 per training process on CUDA, leaving one core free; 0 elsewhere: on the CPU the workers
    would take the cores training uses, and MPS means macOS, where workers are spawned, which scripts
    without an ``if __name__ == "__main__":`` guard cannot do."""
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(8, (cores - 1) // max(1, processes_per_node)))


def _install(source: BatchSource, workers: int) -> None:
    global _SOURCE
    torch.set_num_threads(1)  # many workers side by side: one core each
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the training process's: it stops after a step
    if isinstance(source, PairedCrops):  # each worker keeps its own cache of decoded pairs
        source.cache_bytes //= workers
    _SOURCE = source
    threading.Thread(target=_exit_with_parent, daemon=True).start()


def _exit_with_parent() -> None:
    """A training process killed outright (SIGKILL, SIGTERM) cannot stop its workers: they stop themselves."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)


def _make(step: int, rank: int) -> Any:
    assert _SOURCE is not None
    return _SOURCE.prepare(step, rank) if _renders_in_parent(_SOURCE) else _SOURCE.batch(step, rank)


def _renders_in_parent(source: BatchSource) -> bool:
    """A source that splits its batches into a CPU part (``prepare``) and a render on its device (``finish``,
    e.g. :class:`.photo_pairs.RealisticPairs` on a GPU): the workers prepare, the training process renders."""
    return hasattr(source, "prepare") and hasattr(source, "finish")


class PrefetchedSource:
    """A :class:`BatchSource` whose next ``ahead`` batches are made by ``workers`` processes (or, for a source
    that renders on its device, prepared by them and rendered here: workers never touch CUDA)."""

    def __init__(self, source: BatchSource, workers: int, ahead: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"PrefetchedSource needs at least one worker, got {workers}")
        # as torch's DataLoader: fork on Linux (fast, and scripts need no ``if __name__ == "__main__"``;
        # workers never touch CUDA), spawn where fork is unsafe or missing (macOS, Windows)
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self._pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_install, initargs=(source, workers))
        self._ahead = ahead or 2 * workers
        self._pending: dict[tuple[int, int], Future[Any]] = {}
        self._finish = source.finish if _renders_in_parent(source) else None  # type: ignore[attr-defined]

    def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        for key in [k for k in self._pending if k[0] < step or k[1] != rank]:
            self._pending.pop(key).cancel()
        for ahead in range(step, step + self._ahead):
            if (ahead, rank) not in self._pending:
                self._pending[(ahead, rank)] = self._pool.submit(_make, ahead, rank)
        made = self._pending.pop((step, rank)).result()
        return self._finish(made) if self._finish is not None else made

    def close(self) -> None:
        """Stop the workers; batches still queued are dropped."""
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
