"""A model's lineage: one recipe file whose stages are overrides of a shared base, run in order.

The file is JSON::

    {"about": "...", "base": {training options}, "ship": {"stage": "tune", "weights": "average"},
     "stages": [{"name": "content", "why": "...", "set": {options}, "until": 3000},
                {"name": "tune", "why": "...", "init": "content", "set": {options}}]}

Each stage trains ``base`` updated with its ``set`` in its own run folder ``OUT/<name>``, starting from
``init`` (an earlier stage's exported model, or a model file) and stopping after step ``until`` (its
schedule still spans ``steps``). ``ship`` names the stage whose weights become the model file. A run
trains one stage and the stages it starts from (:meth:`Lineage.ancestry`): by default the ship stage,
so ablation branches and stages still in progress stay out of the shipped model's reproduction.
A stage *given* as a model file (``--given deep=model.safetensors``, e.g. the shipped model when its
run folders are gone) counts as trained: the stages after it start from that file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io.json_files import read_json_file
from .train import TrainConfig

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_STAGE_KEYS = {"name", "why", "set", "init", "until"}


@dataclass(frozen=True)
class Stage:
    name: str
    why: str
    config: TrainConfig
    init_stage: str | None  # an earlier stage whose exported model starts this one
    until: int  # last step of this stage's run

    def run_dir(self, out: str | Path) -> Path:
        return Path(out) / self.name


@dataclass(frozen=True)
class Lineage:
    about: str
    stages: tuple[Stage, ...]
    ship_stage: str
    ship_weights: str  # "average" or "raw", as ``napari-deblurgan export --weights``

    @classmethod
    def from_file(cls, path: str | Path) -> Lineage:
        data = read_json_file(path, "The lineage recipe")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path} is not a valid lineage recipe: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Any) -> Lineage:
        if not isinstance(data, dict) or set(data) - {"about", "base", "stages", "ship"}:
            raise ValueError('expected an object with "about", "base", "stages" and "ship"')
        base, raw_stages, ship = data.get("base", {}), data.get("stages"), data.get("ship")
        if not isinstance(base, dict) or not isinstance(raw_stages, list) or not raw_stages:
            raise ValueError('"base" must be an object of training options and "stages" a non-empty list')
        stages: list[Stage] = []
        for raw in raw_stages:
            stages.append(_stage(raw, base, [s.name for s in stages]))
        if not isinstance(ship, dict) or ship.get("stage") not in {s.name for s in stages}:
            raise ValueError('"ship" must name a stage: {"stage": NAME, "weights": "average" or "raw"}')
        weights = ship.get("weights", "average")
        if weights not in ("average", "raw") or set(ship) - {"stage", "weights"}:
            raise ValueError(f'"ship" takes "stage" and "weights" ("average" or "raw"), got {ship}')
        return cls(str(data.get("about", "")), tuple(stages), ship["stage"], weights)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise ValueError(f"No stage {name!r}; the stages are {[s.name for s in self.stages]}")

    def ancestry(self, name: str, given: Mapping[str, str] = {}) -> list[Stage]:
        """Stage ``name`` and the stages it starts from (its ``init`` chain), in training order, back to
        (not including) the first stage ``given`` as a model file."""
        for stage in given:
            self.stage(stage)  # a misspelt stage is an error, not a silent retraining
        if name in given:
            raise ValueError(f"stage {name} is given as {given[name]}: there is nothing to train")
        chain = [self.stage(name)]
        while chain[0].init_stage is not None and chain[0].init_stage not in given:
            chain.insert(0, self.stage(chain[0].init_stage))
        return chain

    def init_path(self, stage: Stage, out: str | Path, given: Mapping[str, str] = {}) -> str | None:
        """The model file that starts ``stage``: its ``init`` stage's (given file, else export), else its
        recipe's ``init``."""
        if stage.init_stage in given:
            return given[stage.init_stage]
        if stage.init_stage is not None:
            return str(self.stage(stage.init_stage).run_dir(out) / "generator.safetensors")
        return stage.config.init


def _stage(raw: Any, base: dict[str, Any], earlier: list[str]) -> Stage:
    if not isinstance(raw, dict) or set(raw) - _STAGE_KEYS:
        raise ValueError(f"a stage is an object with keys from {sorted(_STAGE_KEYS)}, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in earlier:
        raise ValueError(f"stage names are unique, lower-case letters, digits, - and _; got {name!r}")
    overrides = raw.get("set", {})
    if not isinstance(overrides, dict):
        raise ValueError(f'stage {name}: "set" must be an object of training options')
    init = raw.get("init")
    if init is not None and init not in earlier:
        raise ValueError(f'stage {name}: "init" must name an earlier stage ({earlier}), got {init!r}')
    if "init" in overrides and init is not None:
        raise ValueError(f'stage {name}: give "init" (a stage) or set.init (a file), not both')
    config = TrainConfig.from_dict({**base, **overrides})
    until = raw.get("until", config.steps)
    if type(until) is not int or not 1 <= until <= config.steps:
        raise ValueError(f'stage {name}: "until" must be a step from 1 to its steps ({config.steps}), got {until!r}')
    return Stage(name, str(raw.get("why", "")), config, init, until)
