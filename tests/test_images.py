"""Reading and writing image files: what read_image returns is what photo viewers show, with every bit
kept, and image_info (from the header) predicts it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_deblurgan.gan.images import icc_profile, image_info, read_image, write_image

RNG = np.random.default_rng(0)


PNG_KINDS = [(np.uint16, (9, 11, 3)), (np.uint16, (9, 11, 4)), (np.uint16, (9, 11, 2)), (np.uint16, (9, 11))]


@pytest.mark.parametrize(("dtype", "shape"), [*PNG_KINDS, (np.uint8, (9, 11, 2))])
def test_png_round_trips_every_bit(tmp_path: Path, dtype: type, shape: tuple[int, ...]) -> None:
    image = RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    path = write_image(tmp_path / "x.png", image)
    assert image_info(path) == (shape, np.dtype(dtype))
    np.testing.assert_array_equal(read_image(path), image)


def test_exif_rotated_jpeg_is_read_upright(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :8] = 255  # a bright left edge in the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "phone.jpg")
    assert image.shape == (40, 20, 3) == image_info(tmp_path / "phone.jpg")[0]
    assert image[:8].mean() > 200 and image[-8:].mean() < 50  # the left edge is now the top


def test_exif_rotated_16_bit_png_is_read_upright(tmp_path: Path) -> None:
    stored = RNG.integers(0, 65536, (20, 40)).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees counter-clockwise to view"
    Image.fromarray(stored).save(tmp_path / "scan.png", exif=exif)  # 16-bit gray PNG with an eXIf chunk
    assert image_info(tmp_path / "scan.png") == ((40, 20), np.dtype(np.uint16))
    np.testing.assert_array_equal(read_image(tmp_path / "scan.png"), np.rot90(stored))  # every bit, upright


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize(
    ("name", "dtype"), [("x.tif", np.uint16), ("x.png", np.uint8), ("x.png", np.uint16), ("x.jpg", np.uint8)]
)
def test_colour_profiles_are_carried_to_outputs_that_fit_them(tmp_path: Path, name: str, dtype: type) -> None:
    profile = _srgb_profile()
    image = RNG.integers(0, 200, (9, 11, 3)).astype(dtype)
    path = write_image(tmp_path / name, image, icc_profile=profile)
    assert icc_profile(path) == profile
    if name != "x.jpg":
        np.testing.assert_array_equal(read_image(path), image)  # the profile changes no value
    gray = write_image(tmp_path / f"gray{path.suffix}", image[..., 0], icc_profile=profile)
    assert icc_profile(gray) is None  # an RGB profile does not describe gray values
    cmyk = profile[:16] + b"CMYK" + profile[20:]  # a CMYK JPEG's profile, once its pixels are RGB
    assert icc_profile(write_image(tmp_path / f"rgb{path.suffix}", image, icc_profile=cmyk)) is None
    gray_profile = profile[:16] + b"GRAY" + profile[20:]  # the header names the colour space
    assert (
        icc_profile(write_image(tmp_path / f"g{path.suffix}", image[..., 0], icc_profile=gray_profile)) == gray_profile
    )


def test_16_bit_png_metadata_is_read_from_chunk_headers_without_pillow_limits(tmp_path: Path, monkeypatch) -> None:
    image = RNG.integers(0, 65536, (30, 40, 3)).astype(np.uint16)
    path = write_image(tmp_path / "big.png", image, icc_profile=_srgb_profile())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would refuse this file as a decompression bomb
    assert image_info(path) == ((30, 40, 3), np.dtype(np.uint16))
    np.testing.assert_array_equal(read_image(path), image)
    assert icc_profile(path) == _srgb_profile()


def test_cmyk_jpeg_is_read_as_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    image = read_image(tmp_path / "print.jpg")
    assert image.shape == (16, 16, 3) == image_info(tmp_path / "print.jpg")[0]
    assert abs(int(image[..., 0].mean()) - 200) < 8 and image[..., 1:].mean() < 8


def test_one_bit_png_is_read_as_uint8(tmp_path: Path) -> None:
    mask = RNG.random((12, 10)) > 0.5
    Image.fromarray(mask).save(tmp_path / "mask.png")
    image = read_image(tmp_path / "mask.png")
    assert image_info(tmp_path / "mask.png") == ((12, 10), np.dtype(np.uint8))
    np.testing.assert_array_equal(image, mask.astype(np.uint8) * 255)


def test_channel_views_and_layouts_are_written_as_viewers_expect(tmp_path: Path) -> None:
    rgba16 = RNG.integers(0, 65536, (9, 11, 4)).astype(np.uint16)
    write_image(tmp_path / "view.png", rgba16[..., :3])  # a non-contiguous view
    np.testing.assert_array_equal(read_image(tmp_path / "view.png"), rgba16[..., :3])
    planar = RNG.integers(0, 256, (3, 9, 11)).astype(np.uint8)
    write_image(tmp_path / "planar.png", planar, channel_axis=0)  # PNG holds channels last
    np.testing.assert_array_equal(read_image(tmp_path / "planar.png"), np.moveaxis(planar, 0, -1))
    write_image(tmp_path / "one.png", planar[:1].transpose(1, 2, 0), channel_axis=-1)  # one channel: gray
    np.testing.assert_array_equal(read_image(tmp_path / "one.png"), planar[0])
    with pytest.raises(ValueError, match="BMP cannot hold 4 channels"):  # its alpha would not read back
        write_image(tmp_path / "x.bmp", rgba16.astype(np.uint8))


def test_one_channel_last_tiff_is_written(tmp_path: Path) -> None:
    image = RNG.integers(0, 256, (9, 11, 1)).astype(np.uint8)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "c.tif", image, channel_axis=-1)), image)
    planar = image.transpose(2, 0, 1)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "p.tif", planar, channel_axis=0)), planar)


def test_one_bit_tiff_info_matches_what_is_read(tmp_path: Path) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "mask.tif", RNG.random((12, 10)) > 0.5)
    assert image_info(tmp_path / "mask.tif") == (read_image(tmp_path / "mask.tif").shape, np.dtype(np.uint8))
