"""deblur() under bad or unusual input: a correct result, or an error that names the problem and the fix.

Complements test_inference.py (which covers (0, 5), 1D, bool, complex, NaN, tiny RGB sizes and a read-only
negative-stride view). Every case also checks that the input array is left exactly as it was.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_deblurgan import deblur, load_model


@pytest.fixture(scope="module")
def tiny(tiny_model_path: Path):
    return load_model(tiny_model_path, "cpu")


@pytest.fixture(scope="module")
def identity(identity_model_path: Path):
    return load_model(identity_model_path, "cpu")


def _unchanged(image: np.ndarray):
    """Context: assert ``image`` holds the same bytes and flags after the block."""
    before, writeable = np.array(image, copy=True), image.flags.writeable

    class Check:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc: object) -> None:
            np.testing.assert_array_equal(image, before)
            assert image.flags.writeable == writeable

    return Check()


# -- errors that name the problem and the fix ------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "error", "problem", "fix"),
    [
        (np.array(3.0), ValueError, r"at least a 2D \(Y, X\) image, got shape \(\)", None),
        (np.zeros((0, 0, 3), np.uint8), ValueError, r"empty array of shape \(0, 0, 3\)", None),
        (np.zeros((3, 0, 5), np.uint16), ValueError, r"empty array of shape \(3, 0, 5\)", None),
        (np.full((4, 4), np.inf, np.float32), ValueError, "NaN or infinite", "nan_to_num"),
        (np.array([[0.5, -np.inf], [0, 1]], np.float16), ValueError, "NaN or infinite", "nan_to_num"),
        (np.ones((4, 4), dtype=object), TypeError, "got dtype object", r"astype\(np.float32\)"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "got dtype <U1", r"astype\(np.float32\)"),
        (np.zeros((4, 4), "datetime64[s]"), TypeError, r"got dtype datetime64\[s\]", "astype"),
        (np.zeros((4, 4), np.complex64), TypeError, "got dtype complex64", "astype"),
    ],
    ids=["0d", "zero-size-rgb", "zero-width-stack", "inf", "neg-inf-f16", "object", "str", "datetime", "complex64"],
)
def test_unusable_arrays_are_refused_by_name(tiny, image, error, problem, fix) -> None:
    with _unchanged(image), pytest.raises(error, match=problem) as info:
        deblur(image, tiny)
    if fix:
        assert re.search(fix, str(info.value))


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        ((20, 20), {"channel_axis": 0}, r"at least 3 dimensions \(channels, Y, X\)"),
        ((5, 20, 20), {"channel_axis": 3}, "out of range"),
        ((20, 20, 5), {"rgb": True}, r"rgb=True needs a last axis of 3 \(RGB\) or 4 \(RGBA\)"),
        ((5, 20, 20), {"channel_axis": 0, "rgb": True}, "rgb=True needs 3 or 4 channels, got 5"),
        ((20, 20), {"value_range": (1.0, 1.0)}, "high > low"),
        ((20, 20), {"tile_size": 16}, "tile_size must be an int >= 32 or None for whole frames, got 16"),
        ((20, 20), {"tile_size": 64, "tile_overlap": 40}, "tile_overlap must be at least 0 and less than half"),
        ((20, 20), {"ensemble": 3}, r"ensemble must be one of \(1, 2, 4, 8\)"),
        ((20, 20, 5), {}, "pass channel_axis=-1 to deblur each channel, or rgb=False if it is the width$"),
        ((20, 20, 2), {}, r"for gray \+ alpha, deblur image\[..., 0\] and keep the alpha"),
    ],
)
def test_bad_options_are_refused_by_name(tiny, shape, options, message) -> None:
    image = np.zeros(shape, np.uint8)
    with _unchanged(image), pytest.raises(ValueError, match=message):
        deblur(image, tiny, **options)


def test_a_tile_too_small_on_the_networks_grid_for_its_overlap_is_refused_up_front() -> None:
    image = np.zeros((100, 100), np.uint8)  # the shipped network's grid is 16 px: tiles of 40 are 32 px
    with _unchanged(image), pytest.raises(ValueError, match="tile_size 40 is 32 px on the network's 16 px grid"):
        deblur(image, tile_size=40, tile_overlap=19)
    assert deblur(image, tile_size=40, tile_overlap=7, refine=False).shape == image.shape


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tile_size": "512"}, "tile_size must be an int >= 32 or None for whole frames, got '512'"),
        ({"tile_size": 64.0}, "tile_size must be an int >= 32 or None for whole frames, got 64.0"),
        ({"tile_size": True}, "tile_size must be an int >= 32 or None for whole frames, got True"),
        ({"tile_overlap": "8"}, "tile_overlap must be an int >= 0 or None for the default, got '8'"),
        ({"batch_size": 2.5}, "batch_size must be an int >= 1 or None for the default, got 2.5"),
        ({"ensemble": "2"}, r"ensemble must be an int, one of \(1, 2, 4, 8\) \(copies averaged\), got '2'"),
        ({"ensemble": 2.0}, r"ensemble must be an int, one of \(1, 2, 4, 8\)"),
        (
            {"channel_axis": "0"},
            "channel_axis must be an int or None for grayscale or colour on the last axis, got '0'",
        ),
        ({"channel_axis": 0.0}, "channel_axis must be an int or None"),
        ({"rgb": "yes"}, "rgb must be True or False or None, got 'yes'"),
        ({"refine": "no"}, "refine must be True or False, got 'no'"),
        ({"half": 1}, "half must be True or False, got 1"),
    ],
)
def test_options_of_the_wrong_type_are_refused_in_the_apis_words(tiny, options, message) -> None:
    image = np.zeros((5, 20, 20), np.uint8)
    with _unchanged(image), pytest.raises(TypeError, match=f"^{message}"):
        deblur(image, tiny, **options)
    with pytest.raises(TypeError, match=f"^{message}"):  # dask input too, before any graph is built
        deblur(da.from_array(image), tiny, **options)


def test_numpy_integers_and_booleans_are_accepted_as_options(tiny) -> None:
    image = np.random.default_rng(0).integers(0, 256, (20, 20), np.uint8)
    numpy_options = {"tile_size": np.int64(64), "ensemble": np.int32(2), "refine": np.bool_(False)}
    expected = deblur(image, tiny, tile_size=64, ensemble=2, refine=False)
    np.testing.assert_array_equal(deblur(image, tiny, **numpy_options), expected)


# -- unusual but valid input: the right result -----------------------------------------------------------


@pytest.mark.parametrize("count", [2, 5])
def test_channels_first_with_channel_axis_are_deblurred_one_by_one(tiny, count) -> None:
    rng = np.random.default_rng(count)
    image = rng.integers(0, 256, (count, 24, 28), dtype=np.uint8)
    with _unchanged(image):
        out = deblur(image, tiny, channel_axis=0)
    assert out.shape == image.shape and out.dtype == np.uint8
    for c in range(count):
        np.testing.assert_array_equal(out[c], deblur(image[c], tiny))


@pytest.mark.parametrize("count", [2, 5])
def test_channels_last_with_channel_axis(tiny, count) -> None:
    image = np.random.default_rng(count).random((24, 28, count)).astype(np.float32)
    with _unchanged(image):
        out = deblur(image, tiny, channel_axis=-1)
    np.testing.assert_array_equal(out, np.moveaxis(deblur(np.moveaxis(image, -1, 0), tiny, channel_axis=0), 0, -1))


@pytest.mark.parametrize("count", [2, 5])
def test_channels_last_without_channel_axis_asks_for_it(tiny, count) -> None:
    image = np.random.default_rng(count).integers(0, 256, (24, 28, count), dtype=np.uint8)
    with pytest.raises(ValueError, match="channel_axis=-1"):
        deblur(image, tiny)


def test_rgb_false_keeps_a_narrow_last_axis_as_width(tiny) -> None:
    """The explicit way to say "(T, Y, X) with a narrow X" (what the napari widget passes)."""
    stack = np.random.default_rng(7).integers(0, 256, (3, 24, 2), dtype=np.uint8)
    out = deblur(stack, tiny, rgb=False)
    np.testing.assert_array_equal(out[1], deblur(stack[1], tiny))


@pytest.mark.parametrize(
    "shape", [(1, 1), (3, 3), (1, 1, 4), (3, 3, 3), (1, 5000), (5000, 1), (1, 5000, 3), (2, 5000, 1)]
)
def test_tiny_and_extreme_aspect_images(tiny, identity, shape) -> None:
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    with _unchanged(image):
        out = deblur(image, tiny, tile_size=512)
        same = deblur(image, identity, tile_size=512)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(same, image)  # no shift, ring or cast at the borders, even 1 px wide
    if shape[-1] == 4:
        np.testing.assert_array_equal(out[..., 3], image[..., 3])  # alpha passes through


def test_long_thin_image_tiles_like_the_whole_frame(tiny) -> None:
    image = np.random.default_rng(8).integers(0, 256, (3, 5000), dtype=np.uint8)
    whole = deblur(image, tiny, tile_size=None)
    tiled = deblur(image, tiny, tile_size=256, tile_overlap=32)
    assert np.abs(whole.astype(int) - tiled).max() <= 2


@pytest.mark.parametrize(
    "view",
    [
        lambda a: np.asfortranarray(a),
        lambda a: a[::2, ::3],
        lambda a: a[::-1, ::-1],
        lambda a: a[:, ::-2].T,
        lambda a: np.broadcast_to(a[:1], a.shape),  # zero stride, read-only
    ],
    ids=["fortran", "strided", "negative-stride", "negative-stride-transposed", "broadcast"],
)
def test_views_give_the_result_of_a_contiguous_copy(tiny, natural_rgb, view) -> None:
    image = view(natural_rgb[:64, :80])
    with _unchanged(image):
        out = deblur(image, tiny)
    np.testing.assert_array_equal(out, deblur(np.ascontiguousarray(image), tiny))


@pytest.mark.parametrize("mode", ["r", "r+", "c"])
def test_memory_mapped_input_works_and_its_file_is_untouched(tiny, natural_rgb, tmp_path, mode) -> None:
    path = tmp_path / "image.dat"
    np.asarray(natural_rgb[:48, :56], np.uint8).tofile(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    mapped = np.memmap(path, dtype=np.uint8, mode=mode, shape=(48, 56, 3))
    with _unchanged(mapped):
        out = deblur(mapped, tiny)
    assert type(out) is np.ndarray and not isinstance(out, np.memmap)
    np.testing.assert_array_equal(out, deblur(np.array(natural_rgb[:48, :56]), tiny))
    del mapped
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_read_only_input_is_never_written(tiny) -> None:
    image = np.random.default_rng(9).random((2, 40, 40)).astype(np.float32) * 1000
    image.flags.writeable = False
    with _unchanged(image):
        out = deblur(image, tiny)
    assert out.flags.writeable and out.shape == image.shape


@pytest.mark.parametrize("value", [-3.5, 0.0, 0.25, 1.0, 7.0, 1e6])
def test_constant_float_images_stay_finite_and_in_range(tiny, value) -> None:
    image = np.full((20, 24), value, np.float64)
    out = deblur(image, tiny)
    assert np.isfinite(out).all()
    lo, hi = (0.0, 1.0) if 0 <= value <= 1 else (value - 0.5, value + 0.5)
    assert lo <= out.min() and out.max() <= hi


def test_nested_lists_are_accepted(identity) -> None:
    out = deblur([[0.0, 0.5], [1.0, 0.25]], identity)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[0.0, 0.5], [1.0, 0.25]], atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int64])
def test_wide_integer_images_keep_their_values(identity, dtype) -> None:
    image = np.arange(0, 1000, dtype=dtype).reshape(20, 50)
    np.testing.assert_array_equal(deblur(image, identity), image)


@pytest.mark.parametrize(
    "image",
    [np.array([[3e38, -3e38], [0, 1]], np.float32), np.array([[1e300, -1e300], [0, 1]], np.float64)],
    ids=["float32-limit", "float64-huge"],
)
def test_huge_finite_floats_give_finite_output(identity, image) -> None:
    out = deblur(image, identity)
    assert np.isfinite(out).all()
    span = float(image.max()) - float(image.min())
    np.testing.assert_allclose(out.astype(np.float64), image.astype(np.float64), rtol=0, atol=1e-6 * span)


# -- hypothesis: any shape, dtype, value range and memory layout -----------------------------------------

EXACT_DTYPES = [np.uint8, np.uint16, np.int8, np.int16]
FLOAT_DTYPES = [np.float16, np.float32, np.float64]


@st.composite
def images(draw: st.DrawFn) -> tuple[np.ndarray, dict]:
    """An image, and the layout options that say how to read it (explicit, so no guess is involved)."""
    dtype = np.dtype(draw(st.sampled_from(EXACT_DTYPES + FLOAT_DTYPES)))
    lead = draw(st.lists(st.integers(1, 2), max_size=2))
    spatial = [draw(st.integers(1, 24)), draw(st.integers(1, 24))]
    channels = draw(st.sampled_from([[], [], [3], [4]]))
    shape = (*lead, *spatial, *channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        image = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    else:
        scale = draw(st.sampled_from([1e-3, 1.0, 255.0, 3e4] + ([1e9] if dtype.itemsize > 2 else [])))
        offset = draw(st.sampled_from([0.0, -0.5, 1.0])) * scale
        image = (rng.random(shape) * scale + offset).astype(dtype)
    layout = draw(st.sampled_from(["contiguous", "fortran", "reversed", "read-only"]))
    if layout == "fortran":
        image = np.asfortranarray(image)
    elif layout == "reversed":
        image = image[..., ::-1, :] if channels else image[..., ::-1]
    elif layout == "read-only":
        image.flags.writeable = False
    return image, ({"channel_axis": -1} if channels else {"rgb": False})


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(case=images())
def test_any_image_round_trips_through_the_identity_model(identity, case) -> None:
    image, layout = case
    with _unchanged(image):
        out = deblur(image, identity, tile_size=64, tile_overlap=8, **layout)
    assert out.shape == image.shape and out.dtype == image.dtype
    if image.dtype.kind in "ui":
        np.testing.assert_array_equal(out, image)
    else:
        wide = image.astype(np.float64)
        span = max(1.0, float(wide.max() - wide.min()))
        rtol = 2e-3 if image.dtype == np.float16 else 1e-6
        np.testing.assert_allclose(out.astype(np.float64), wide, rtol=rtol, atol=1e-5 * span)


@FAST
@given(case=images())
def test_any_image_gives_a_finite_result_in_the_input_range(tiny, case) -> None:
    image, layout = case
    with _unchanged(image):
        out = deblur(image, tiny, tile_size=64, tile_overlap=8, **layout)
    assert out.shape == image.shape and out.dtype == image.dtype
    if image.dtype.kind == "f":
        assert np.isfinite(out).all()
        lo, hi = float(image.min()), float(image.max())
        if lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
        assert lo - 1e-3 * abs(lo) <= float(out.min()) and float(out.max()) <= hi + 1e-3 * abs(hi)
    np.testing.assert_array_equal(
        out, deblur(np.ascontiguousarray(image), tiny, tile_size=64, tile_overlap=8, **layout)
    )
