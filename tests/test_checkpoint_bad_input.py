"""Untrusted checkpoint files: refused by name, never executed (model files: test_weights_bad_input.py)."""

from __future__ import annotations

import pickle

import pytest
import torch

from _helpers import PicklePayload
from napari_deblurgan.gan.io.checkpoint import load_checkpoint, save_checkpoint


def test_a_pickle_checkpoint_is_refused_and_never_run(tmp_path) -> None:
    PicklePayload.marker = str(tmp_path / "pwned")
    for i, dump in enumerate(
        (lambda p: torch.save({"x": PicklePayload()}, p), lambda p: p.write_bytes(pickle.dumps(PicklePayload())))
    ):
        path = tmp_path / f"c{i}.pt"
        dump(path)
        with pytest.raises(ValueError, match="nothing in it was executed"):
            load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_checkpoints_that_are_not_dicts_or_missing_are_named(tmp_path) -> None:
    save_checkpoint([1, 2, 3], tmp_path / "list.pt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="holds a list, not a napari-deblurgan checkpoint"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "list.pt").read_bytes()[:50])
    with pytest.raises(ValueError, match="truncated, corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
