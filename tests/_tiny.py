"""The smallest training recipe the tests run (imported by test modules; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from typing import Any

TINY_RECIPE: dict[str, Any] = {
    "preset": "fast",
    "generator": {"ngf": 8, "n_blocks": 1},
    "content_loss": "l1",
    "adv_weight": 0,
    "crop": 32,
    "batch_size": 2,
    "checkpoint_every": 2,
    "validate_every": 1000,
}
