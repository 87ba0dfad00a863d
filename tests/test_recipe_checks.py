from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_deblurgan.gan.training.recipe_checks import CHOICES, INTEGERS, NUMBERS
from napari_deblurgan.gan.training.train import TrainConfig

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.json"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_passes(path: Path) -> None:
    data = json.loads(path.read_text())
    TrainConfig.from_dict(data.get("base", data) if "stages" in data else data)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("checkpoint_every", 0),  # was a ZeroDivisionError in the loop
        ("critic_steps", 0),  # was an UnboundLocalError with adv_weight > 0
        ("crop", 0),  # was a torch error
        ("steps", 0),  # claimed a model it never wrote
        ("lr", math.nan),  # trained nothing, exit 0
        ("max_noise", math.nan),
        ("content_weight", math.inf),
        ("amp", "fp8"),
        ("schedule", "step"),
        ("blur_start", -3.0),
        ("blur_end", -1),
        ("batch_size", 2.0),
        ("seed", True),
        ("scale_min", 0),
        ("ema", 1.0),
        ("betas", [0.9]),
        ("generator", [16]),
        ("init", 3),
        ("data", ""),
        ("channels_last", "false"),  # a string: it was taken for True
        ("small_blur", 0.85),  # with defocus 0.1: failed only once a stage's data was built, hours in
    ],
)
def test_a_bad_value_is_refused_naming_its_option(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        TrainConfig.from_dict({name: value})


def test_a_recipe_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        TrainConfig.from_dict([1, 2])  # type: ignore[arg-type]


_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted({*CHOICES, *INTEGERS, *NUMBERS})), value=_any_value)
def test_any_value_is_either_valid_or_refused_naming_its_option(name: str, value: Any) -> None:
    try:
        cfg = TrainConfig.from_dict({name: value})
    except ValueError as exc:
        assert str(exc).startswith(f"{name} must be")
        return
    accepted = getattr(cfg, name)
    if name in CHOICES:
        assert accepted in CHOICES[name]
    elif name in INTEGERS:
        assert type(accepted) is int and INTEGERS[name][0] <= accepted <= INTEGERS[name][1]
    else:
        assert math.isfinite(accepted) and NUMBERS[name][0] <= accepted <= NUMBERS[name][1]


def test_deep_json_anywhere_is_a_clear_error(tmp_path: Path, capsys) -> None:
    from safetensors.torch import save_file

    from napari_deblurgan.cli import main
    from napari_deblurgan.gan.model.weights import FORMAT, load_generator
    from napari_deblurgan.gan.training.lineage import Lineage

    deep = "[" * 100_000 + "]" * 100_000
    recipe = tmp_path / "deep.json"
    recipe.write_text(deep)
    assert main(["train", "--config", str(recipe), "--out", str(tmp_path / "run")]) == 2
    assert "nests its JSON too deeply" in capsys.readouterr().err
    with pytest.raises(ValueError, match="too deeply"):
        Lineage.from_file(recipe)
    model = tmp_path / "deep.safetensors"
    save_file({"w": torch.zeros(1)}, str(model), metadata={"format": FORMAT, "config": deep})
    with pytest.raises(ValueError, match="too deeply"):
        load_generator(model)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_special_and_huge_recipe_files_are_refused_without_reading_them_whole(tmp_path: Path, capsys) -> None:
    import os

    from napari_deblurgan.cli import main

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it would block until a writer came
    for path in ("/dev/zero", str(fifo)):
        assert main(["train", "--config", path, "--out", str(tmp_path / "run")]) == 2
        assert "special file" in capsys.readouterr().err
    huge = tmp_path / "huge.json"
    huge.write_text('{"lr": 0.001, "pad": "' + "x" * (2 << 20) + '"}')
    assert main(["train", "--config", str(huge), "--out", str(tmp_path / "run")]) == 2
    assert "over 1 MiB" in capsys.readouterr().err


def test_absurd_networks_are_refused_before_allocating(tmp_path: Path, capsys) -> None:
    """A recipe, or the recipe saved in a checkpoint, asking for a network of absurd size is refused on
    load, in well under a second, with nothing allocated."""
    import time

    from napari_deblurgan.cli import main
    from napari_deblurgan.gan.io.checkpoint import load_checkpoint, save_checkpoint
    from napari_deblurgan.gan.training.train import Trainer

    start = time.perf_counter()
    for options, message in (
        ({"generator": {"ngf": 10**6}}, "refused before allocating"),
        ({"generator": {"n_blocks": 10**7}}, "refused before allocating"),
        ({"generator": {"ngf": 10**5, "n_blocks": 0}}, "refused before allocating"),  # its up/downsamplings
        ({"critic": {"ndf": 10**6}}, "critic.ndf must be an integer from 1 to 256"),
        ({"critic": {"layers": 3}}, "critic options are an object with keys"),
    ):
        with pytest.raises(ValueError, match=message):
            TrainConfig.from_dict({"preset": "fast", **options})
    assert time.perf_counter() - start < 1
    recipe = tmp_path / "huge.json"
    recipe.write_text(json.dumps({"preset": "fast", "generator": {"ngf": 10**6}}))
    assert main(["train", "--config", str(recipe), "--out", str(tmp_path / "run")]) == 2
    assert "refused before allocating" in capsys.readouterr().err
    small = {"preset": "fast", "generator": {"ngf": 4, "n_blocks": 1}, "steps": 1, "crop": 32, "batch_size": 1}
    run = tmp_path / "small"
    Trainer(TrainConfig.from_dict({**small, "adv_weight": 0.0}), run).fit()
    state = load_checkpoint(run / "checkpoint.pt")
    state["config"] = json.dumps({**json.loads(state["config"]), "generator": {"ngf": 10**6}})
    save_checkpoint(state, run / "checkpoint.pt")
    with pytest.raises(ValueError, match="refused before allocating"):
        Trainer(TrainConfig.from_dict({**small, "adv_weight": 0.0}), run, resume=True)
