from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
import torch
from safetensors.torch import load_file

from _helpers import TINY_RECIPE
from napari_deblurgan.cli import main
from napari_deblurgan.gan.io.images import write_image
from napari_deblurgan.gan.model.weights import read_metadata
from napari_deblurgan.gan.training.lineage import Lineage


def _recipe(tmp_path: Path) -> dict[str, Any]:
    """A two-stage lineage on a folder of one sharp image (made in ``tmp_path``)."""
    sharp = tmp_path / "sharp"
    sharp.mkdir(exist_ok=True)
    write_image(sharp / "a.png", skimage.data.astronaut()[:100, :100])
    return {
        "about": "two stages",
        "base": {**TINY_RECIPE, "data": str(sharp), "steps": 4, "ema": 0.5},
        "stages": [
            {"name": "first", "why": "content only", "until": 3},
            {"name": "second", "why": "lower lr", "init": "first", "set": {"lr": 1e-5, "seed": 7}},
        ],
        "ship": {"stage": "second", "weights": "raw"},
    }


def _written(tmp_path: Path, data: dict[str, Any]) -> Path:
    recipe = tmp_path / "lineage.json"
    recipe.write_text(json.dumps(data))
    return recipe


def test_the_lineage_trains_each_stage_from_the_last_and_ships_one(tmp_path: Path, capsys) -> None:
    recipe = _written(tmp_path, _recipe(tmp_path))
    out = tmp_path / "runs"
    assert main(["lineage", str(recipe), "--out", str(out), "--quiet"]) == 0
    first, second = (
        json.loads(read_metadata(out / s / "generator.safetensors")["recipe"]) for s in ("first", "second")
    )
    assert read_metadata(out / "first" / "generator.safetensors")["step"] == "3"  # until
    assert first["lr"] == TINY_RECIPE.get("lr", 1e-4) and second["lr"] == 1e-5 and second["seed"] == 7
    assert second["init"] == str(out / "first" / "generator.safetensors")
    shipped = load_file(str(out / "default.safetensors"))
    assert all(v.dtype == torch.float16 for v in shipped.values())
    assert read_metadata(out / "default.safetensors")["step"] == "4"
    capsys.readouterr()
    # run again: every stage is done, nothing trains, the same model is written
    before = {k: v.clone() for k, v in shipped.items()}
    assert main(["lineage", str(recipe), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "stage first: trained to step 3 already" in printed and "stage second: trained to step 4" in printed
    again = load_file(str(out / "default.safetensors"))
    assert all(torch.equal(before[k], again[k]) for k in before)


def test_a_stage_whose_checkpoint_cannot_be_resumed_is_named(tmp_path: Path, capsys) -> None:
    from napari_deblurgan.gan.io.checkpoint import load_checkpoint, save_checkpoint

    recipe = _written(tmp_path, _recipe(tmp_path))
    out = tmp_path / "runs"
    assert main(["lineage", str(recipe), "--out", str(out), "--stage", "first", "--quiet"]) == 0
    (out / "first" / "generator.safetensors").unlink()  # unfinished: the stage resumes from its checkpoint
    state = load_checkpoint(out / "first" / "checkpoint.pt")
    del state["config"]  # e.g. written by an older version
    save_checkpoint(state, out / "first" / "checkpoint.pt")
    capsys.readouterr()
    assert main(["lineage", str(recipe), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        "Cannot resume from" in err and "not a complete napari-deblurgan checkpoint" in err and "Traceback" not in err
    )


def test_a_stage_killed_between_its_model_and_its_checkpoint_is_trained_again(tmp_path, capsys, monkeypatch) -> None:
    """Saving writes the model, then the checkpoint: killed in between at the stage's last step, the model is
    ahead. The lineage must not take the stage for finished, or it would ship the older checkpoint's weights
    while the next stage started from the newer model."""
    from napari_deblurgan.gan.io.checkpoint import load_checkpoint
    from napari_deblurgan.gan.training import train

    recipe = _written(tmp_path, _recipe(tmp_path))
    out = tmp_path / "runs"
    save = train.save_checkpoint

    def killed_at_step_3(state: dict[str, Any], path: Path) -> Path:
        if state["step"] == 3:
            raise OSError("killed")
        return save(state, path)

    monkeypatch.setattr(train, "save_checkpoint", killed_at_step_3)
    assert main(["lineage", str(recipe), "--out", str(out), "--stage", "first", "--quiet"]) == 2
    assert read_metadata(out / "first" / "generator.safetensors")["step"] == "3"
    assert load_checkpoint(out / "first" / "checkpoint.pt")["step"] == 2
    monkeypatch.setattr(train, "save_checkpoint", save)
    capsys.readouterr()
    assert main(["lineage", str(recipe), "--out", str(out), "--quiet"]) == 0
    assert "stage first (from step 2)" in capsys.readouterr().out
    assert load_checkpoint(out / "first" / "checkpoint.pt")["step"] == 3
    second = json.loads(read_metadata(out / "second" / "generator.safetensors")["recipe"])
    assert second["init"] == str(out / "first" / "generator.safetensors")


def test_a_stage_starts_from_its_init_stage(tmp_path: Path) -> None:
    data = _recipe(tmp_path)
    data["stages"][1]["set"]["lr"] = 0.0  # a stage that cannot move: it must hold the first stage's weights
    data["stages"][1]["set"]["ema"] = 0.0
    recipe = _written(tmp_path, data)
    out = tmp_path / "runs"
    assert main(["lineage", str(recipe), "--out", str(out), "--quiet"]) == 0
    first, second = (load_file(str(out / s / "generator.safetensors")) for s in ("first", "second"))
    assert all(np.allclose(first[k].numpy(), second[k].numpy()) for k in first)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["stages"][1].update(init="later"), "must name an earlier stage"),
        (lambda d: d["stages"][0].update(until=99), '"until" must be a step from 1'),
        (lambda d: d["stages"][1].update(name="first"), "stage names are unique"),
        (lambda d: d["stages"][0].update(steps=3), "a stage is an object with keys"),
        (lambda d: d.update(ship={"stage": "third"}), '"ship" must name a stage'),
        (lambda d: d["base"].update(colour=1), "Unknown training options"),
        (lambda d: d.update(stages=[]), "non-empty list"),
    ],
)
def test_bad_lineages_say_what_is_wrong(tmp_path: Path, change: Any, message: str) -> None:
    data = _recipe(tmp_path)
    change(data)
    with pytest.raises(ValueError, match=message):
        Lineage.from_file(_written(tmp_path, data))


def test_a_run_trains_the_ship_stages_ancestry_and_a_branch_only_when_asked(tmp_path: Path, capsys) -> None:
    data = _recipe(tmp_path)
    data["stages"].insert(1, {"name": "branch", "why": "an ablation", "init": "first", "set": {"seed": 3}})
    data["stages"].append({"name": "next", "why": "in progress", "init": "second", "set": {"seed": 9}})
    recipe = _written(tmp_path, data)
    assert [s.name for s in Lineage.from_file(recipe).ancestry("next")] == ["first", "second", "next"]
    out = tmp_path / "runs"
    assert main(["lineage", str(recipe), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["first", "second"]
    assert (out / "default.safetensors").is_file()
    assert main(["lineage", str(recipe), "--out", str(out), "--stage", "branch", "--quiet"]) == 0
    assert (out / "branch" / "generator.safetensors").is_file() and not (out / "next").exists()
    assert "the ship stage second is not one it starts from" in capsys.readouterr().out
    assert main(["lineage", str(recipe), "--out", str(out), "--stage", "nope", "--quiet"]) == 2
    assert "No stage 'nope'" in capsys.readouterr().err


def test_a_given_stage_is_not_trained_and_the_next_starts_from_its_file(tmp_path: Path, capsys) -> None:
    data = _recipe(tmp_path)
    data["stages"][1]["set"].update(lr=0.0, ema=0.0)  # holds its init's weights
    recipe = _written(tmp_path, data)
    trained = tmp_path / "trained"
    assert main(["lineage", str(recipe), "--out", str(trained), "--stage", "first", "--quiet"]) == 0
    model = tmp_path / "first.safetensors"
    (trained / "first" / "generator.safetensors").rename(model)  # the first stage's run folder is gone
    out = tmp_path / "runs"
    assert main(["lineage", str(recipe), "--out", str(out), "--given", f"first={model}", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["second"]
    second = out / "second" / "generator.safetensors"
    assert json.loads(read_metadata(second)["recipe"])["init"] == str(model)
    first, held = load_file(str(model)), load_file(str(second))
    assert all(np.allclose(first[k].numpy(), held[k].numpy()) for k in first)
    capsys.readouterr()
    assert main(["lineage", str(recipe), "--out", str(out), "--given", f"frist={model}", "--quiet"]) == 2
    assert "No stage 'frist'" in capsys.readouterr().err
    assert main(["lineage", str(recipe), "--out", str(out), "--given", f"first={tmp_path / 'none'}", "--quiet"]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert main(["lineage", str(recipe), "--out", str(out), "--given", f"second={model}", "--quiet"]) == 2
    assert "nothing to train" in capsys.readouterr().err
