"""deblur's options table: one default, limit and help text per option, from which deblur(), the command
line and the widget are built (the widget's controls: test_widgets.py)."""

from __future__ import annotations

import inspect

import pytest

from napari_deblurgan.cli import build_parser
from napari_deblurgan.gan.restoration.options import OPTIONS, STRENGTH, TILE_SIZE, check_options


def test_deblur_and_the_command_line_take_their_defaults_from_the_table() -> None:
    from napari_deblurgan import deblur

    signature = inspect.signature(deblur).parameters
    assert set(OPTIONS) <= set(signature)
    assert {name: signature[name].default for name in OPTIONS} == {name: o.default for name, o in OPTIONS.items()}
    parser = build_parser()
    for command in (["deblur", "in.png", "-o", "out"], ["evaluate", "data"]):
        args = vars(parser.parse_args(command))
        flags = {name: args[name] for name in OPTIONS if name in args and name != "value_range"}
        assert flags == {name: OPTIONS[name].default for name in flags}, command
        assert args["tile_size"] == TILE_SIZE.default == 1024


def test_command_line_values_are_checked_by_the_table() -> None:
    assert TILE_SIZE.from_text("0") is None  # whole frames
    assert TILE_SIZE.from_text("32") == 32
    with pytest.raises(ValueError, match=r"use 0 \(whole frames\) or at least 32 pixels"):
        TILE_SIZE.from_text("31")
    with pytest.raises(ValueError, match="not a whole number"):
        TILE_SIZE.from_text("64.5")
    assert STRENGTH.from_text("0.25") == 0.25
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        STRENGTH.from_text("nan")
    args = build_parser().parse_args(["deblur", "in.png", "-o", "out", "--tile-size", "0"])
    assert args.tile_size is None


def test_the_api_refuses_what_the_table_refuses() -> None:
    check_options(tile_size=None, tile_overlap=0, batch_size=1, channel_axis=-1, ensemble=8, rgb=None, half=False)
    with pytest.raises(ValueError, match="tile_size must be an int >= 32 or None for whole frames, got 31"):
        check_options(tile_size=31)
    with pytest.raises(ValueError, match=r"ensemble must be one of \(1, 2, 4, 8\)"):
        check_options(ensemble=3)
    with pytest.raises(ValueError, match="strength is the share of the model's correction applied, a number 0 to 1"):
        STRENGTH.check(1.5)
