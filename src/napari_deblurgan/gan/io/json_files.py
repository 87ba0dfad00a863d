"""JSON from files and metadata, read safely: a size limit, no special files, no deep nesting."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

#: Recipes, lineages and stored configs are a few kB; anything larger than this is not one.
MAX_JSON_BYTES = 1 << 20


def parse_json(text: str, what: str) -> Any:
    """``text`` parsed, or ValueError naming ``what`` (invalid JSON, or nested too deeply to parse)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} nests its JSON too deeply to be a napari-deblurgan file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from exc


def read_json_file(path: str | Path, what: str) -> Any:
    """The JSON in the regular file ``path`` (at most :data:`MAX_JSON_BYTES`), or a clear error."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{what} {path} is a folder; pass a .json file")
    if not stat.S_ISREG(mode):
        raise ValueError(f"{what} {path} is a special file (a pipe or a device), not a .json file")
    with path.open("rb") as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{what} {path} is over {MAX_JSON_BYTES >> 20} MiB: not a recipe")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text ({exc.reason})") from None
    return parse_json(text, f"{what} {path}")
