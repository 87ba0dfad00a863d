"""Reading and writing image files: what read_image returns is what photo viewers show, with every bit
kept, and image_info (from the header) predicts it."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_deblurgan.gan.io.images import icc_profile, image_info, read_image, write_image

RNG = np.random.default_rng(0)


PNG_KINDS = [(np.uint16, (9, 11, 3)), (np.uint16, (9, 11, 4)), (np.uint16, (9, 11, 2)), (np.uint16, (9, 11))]


@pytest.mark.parametrize(("dtype", "shape"), [*PNG_KINDS, (np.uint8, (9, 11, 2)), (">u2", (9, 11, 3))])
def test_png_round_trips_every_bit(tmp_path: Path, dtype: type, shape: tuple[int, ...]) -> None:
    image = RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    path = write_image(tmp_path / "x.png", image)  # big-endian (as FITS data loads) too
    assert image_info(path) == (shape, np.dtype(dtype).newbyteorder("="))
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


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tiff_is_read_upright_by_its_orientation_tag(tmp_path: Path, orientation: int) -> None:
    import tifffile
    from PIL import ImageOps

    stored = RNG.integers(0, 256, (4, 6, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "scan.tif", stored, photometric="rgb", extratags=[(274, 3, 1, orientation, True)])
    image = read_image(tmp_path / "scan.tif")
    with Image.open(tmp_path / "scan.tif") as pillow:  # as viewers show it
        np.testing.assert_array_equal(image, np.asarray(ImageOps.exif_transpose(pillow)))
    assert image_info(tmp_path / "scan.tif")[0] == image.shape
    stack = np.stack([stored, stored[::-1]])  # pages of one TIFF: each turned alike
    tifffile.imwrite(tmp_path / "pages.tif", stack, photometric="rgb", extratags=[(274, 3, 1, orientation, True)])
    np.testing.assert_array_equal(read_image(tmp_path / "pages.tif")[0], image)


def test_exif_rotated_16_bit_png_is_read_upright(tmp_path: Path) -> None:
    stored = RNG.integers(0, 65536, (20, 40)).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees counter-clockwise to view"
    Image.fromarray(stored).save(tmp_path / "scan.png", exif=exif)  # 16-bit gray PNG with an eXIf chunk
    assert image_info(tmp_path / "scan.png") == ((40, 20), np.dtype(np.uint16))
    np.testing.assert_array_equal(read_image(tmp_path / "scan.png"), np.rot90(stored))  # every bit, upright


@functools.cache
def _srgb_profile() -> bytes:
    """An sRGB ICC profile, made once: its header holds the time it was made, to the second, so two made a
    second apart differ."""
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


@pytest.mark.parametrize(
    ("name", "mode", "transparent", "channels"),
    [("gray.png", "L", 60, 2), ("rgb.png", "RGB", (60, 60, 60), 4), ("palette.png", "P", 2, 4), ("gif.gif", "P", 2, 2),
     ("gray16.png", "I;16", 2000, 2)],
)  # fmt: skip
def test_a_transparent_colour_is_read_as_alpha(tmp_path: Path, name: str, mode: str, transparent, channels) -> None:
    values = np.arange(80).reshape(8, 10) % 8
    if mode == "I;16":
        image = Image.fromarray((values * 1000).astype(np.uint16))
    else:
        image = Image.fromarray((values * 30).astype(np.uint8)).convert(mode)
    if mode == "P":
        image = Image.fromarray(values.astype(np.uint8), "L").convert("P")
    image.save(tmp_path / name, transparency=transparent)
    pixels = read_image(tmp_path / name)
    assert pixels.shape == (8, 10, channels) and image_info(tmp_path / name)[0] == pixels.shape
    opaque = np.iinfo(pixels.dtype).max
    np.testing.assert_array_equal(pixels[..., -1] == 0, values == 2)  # the transparent pixels, and only they
    assert pixels[..., -1].max() == opaque


def test_tiffs_are_read_by_their_colour_model_as_viewers_show_them(tmp_path: Path) -> None:
    """Palette TIFFs as their colours, CMYK as RGB, white-is-zero as black-is-zero; gray + alpha is told from
    two channels by its extra-sample tag, three non-RGB samples from RGB; models we do not convert are refused."""
    import tifffile

    from napari_deblurgan.gan.io.images import ImageRefusedError, probe

    indices = np.arange(20, dtype=np.uint8).reshape(4, 5) % 3
    palette = np.zeros((3, 256), np.uint16)
    palette[:, :3] = [[200 * 257, 0, 30 * 257], [30 * 257, 0, 30 * 257], [30 * 257, 255 * 257, 200 * 257]]
    tifffile.imwrite(tmp_path / "palette.tif", indices, photometric="palette", colormap=palette)
    np.testing.assert_array_equal(read_image(tmp_path / "palette.tif"), (palette[:, indices] // 257).transpose(1, 2, 0))
    assert image_info(tmp_path / "palette.tif") == ((4, 5, 3), np.uint8)
    cmyk = np.zeros((4, 5, 4), np.uint8)
    cmyk[0, 0] = [0, 255, 255, 0]  # red
    cmyk[0, 1] = [0, 0, 0, 255]  # black
    tifffile.imwrite(tmp_path / "cmyk.tif", cmyk, photometric="separated")
    rgb = read_image(tmp_path / "cmyk.tif")
    assert rgb.shape == (4, 5, 3) and list(rgb[0, 0]) == [255, 0, 0] and list(rgb[0, 1]) == [0, 0, 0]
    assert list(rgb[1, 1]) == [255, 255, 255]
    tifffile.imwrite(tmp_path / "white.tif", np.array([[0, 65535]], np.uint16), photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "white.tif"), [[65535, 0]])
    tifffile.imwrite(
        tmp_path / "ga.tif",
        np.zeros((4, 5, 2), np.uint8),
        photometric="minisblack",
        extrasamples=[2],
        planarconfig="contig",
    )
    tifffile.imwrite(
        tmp_path / "two.tif", np.zeros((4, 5, 2), np.uint8), photometric="minisblack", planarconfig="contig"
    )
    tifffile.imwrite(
        tmp_path / "three.tif", np.zeros((4, 5, 3), np.uint8), photometric="minisblack", planarconfig="contig"
    )
    assert probe(tmp_path / "ga.tif").gray_alpha and not probe(tmp_path / "two.tif").gray_alpha
    assert probe(tmp_path / "three.tif").colour is False and probe(tmp_path / "cmyk.tif").colour is True
    tifffile.imwrite(tmp_path / "lab.tif", np.zeros((4, 5, 3), np.uint8), photometric="cielab")
    with pytest.raises(ImageRefusedError, match="cielab colour model"):
        read_image(tmp_path / "lab.tif")


def test_tiff_colour_models_at_their_edges(tmp_path: Path) -> None:
    """ImageJ LUTs stay gray values; Pillow's 8-bit palettes (v x 256) stay 8-bit; white-is-zero of 4 bits is
    inverted against 15; RGB with extra samples is not taken for RGB(A)."""
    import tifffile

    from napari_deblurgan.gan.io.images import probe

    values = np.arange(20, dtype=np.uint8).reshape(4, 5)
    lut = np.zeros((3, 256), np.uint16)
    lut[1] = np.arange(256) * 257  # ImageJ's "Green"
    tifffile.imwrite(tmp_path / "ij.tif", values, imagej=True, photometric="palette", colormap=lut)
    np.testing.assert_array_equal(read_image(tmp_path / "ij.tif"), values)
    Image.fromarray(values * 10, mode="L").convert("P").save(tmp_path / "pil.tif")
    assert read_image(tmp_path / "pil.tif").dtype == np.uint8
    tifffile.imwrite(tmp_path / "w4.tif", np.array([[0, 15]], np.uint8), photometric="miniswhite", bitspersample=4)
    np.testing.assert_array_equal(read_image(tmp_path / "w4.tif"), [[15, 0]])
    tifffile.imwrite(
        tmp_path / "rgb5.tif",
        np.zeros((4, 5, 5), np.uint8),
        photometric="rgb",
        planarconfig="contig",
        extrasamples=[0, 0],
    )
    assert probe(tmp_path / "rgb5.tif").colour is False


def test_tiff_outputs_keep_channels_of_their_own_and_alpha_marks(tmp_path: Path) -> None:
    import tifffile

    write_image(tmp_path / "three.tif", np.zeros((4, 5, 3), np.uint8), channel_axis=-1, rgb=False)
    write_image(tmp_path / "ga.tif", np.zeros((4, 5, 2), np.uint8), channel_axis=-1, alpha=True)
    associated = {"extrasamples": [1]}  # premultiplied alpha stays so marked
    write_image(tmp_path / "pre.tif", np.zeros((4, 5, 2), np.uint8), channel_axis=-1, alpha=True, keep=associated)
    with tifffile.TiffFile(tmp_path / "three.tif") as three, tifffile.TiffFile(tmp_path / "ga.tif") as ga:
        assert three.pages[0].photometric.name == "MINISBLACK" and ga.pages[0].extrasamples == (2,)
    with tifffile.TiffFile(tmp_path / "pre.tif") as pre:
        assert pre.pages[0].extrasamples == (1,)
    big_exif = {"exif": b"Exif\x00\x00" + bytes(70_000)}  # from a PNG: more than a JPEG's segment holds
    write_image(tmp_path / "photo.jpg", np.zeros((8, 8, 3), np.uint8), keep=big_exif)
    assert read_image(tmp_path / "photo.jpg").shape == (8, 8, 3)


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


# -- files that hold several images, or another format than their name says ---------------------------


def _frames(shape: tuple[int, ...], dtype: type = np.uint8, count: int = 3) -> np.ndarray:
    """Frames of few levels, so that a GIF's palette holds them exactly."""
    levels = RNG.integers(0, 4, (count, *shape)) * (np.iinfo(dtype).max // 3)
    return levels.astype(dtype)


def _apng(path: Path, frames: np.ndarray) -> Path:
    import imagecodecs

    path.write_bytes(imagecodecs.apng_encode(frames))
    return path


def _gif_named_png(path: Path, frames: np.ndarray) -> Path:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:])
    return path


def _tiff_pages_appended(path: Path, frames: np.ndarray) -> Path:
    import tifffile

    for i, frame in enumerate(frames):
        tifffile.imwrite(path, frame, append=i > 0)  # one series per page: tifffile.imread sees only the first
    return path


def _tiff_series(path: Path, frames: np.ndarray) -> Path:
    import tifffile

    tifffile.imwrite(path, frames, photometric="minisblack", metadata={"axes": "TYX"})
    return path


STACKS = {
    "apng-8-bit-rgb": (_apng, (20, 30, 3), np.uint8, "a.png", "an animated PNG"),
    "apng-16-bit-gray": (_apng, (20, 30), np.uint16, "a.png", "an animated PNG"),
    "apng-16-bit-rgba": (_apng, (20, 30, 4), np.uint16, "a.png", "an animated PNG"),
    "gif-named-png": (_gif_named_png, (20, 30, 3), np.uint8, "g.png", "an animated GIF"),
    "tiff-pages-appended": (_tiff_pages_appended, (20, 30), np.uint16, "p.tif", "a multi-page TIFF"),
    "tiff-one-series": (_tiff_series, (20, 30), np.uint8, "s.tif", "a multi-page TIFF"),
}


@pytest.mark.parametrize("case", STACKS)
def test_every_frame_or_page_is_read_and_single_image_uses_refuse_them(tmp_path: Path, case: str) -> None:
    from napari_deblurgan.gan.io.images import ImageRefusedError, probe

    make, shape, dtype, name, kind = STACKS[case]
    frames = _frames(shape, dtype)
    path = make(tmp_path / name, frames)
    header = probe(path)
    assert header.frames == 3 and header.channel_axis == (-1 if len(shape) == 3 else None)
    assert image_info(path) == (frames.shape, np.dtype(dtype))
    np.testing.assert_array_equal(read_image(path), frames)
    for refuse in (read_image, image_info):  # pairs, training photos, the reader: one image per file
        with pytest.raises(ImageRefusedError, match=f"{name} is {kind} of 3 images, and one image per file"):
            refuse(path, single=True)


def test_files_are_read_by_what_their_bytes_hold_not_their_name(tmp_path: Path) -> None:
    (frame,) = _frames((20, 30, 3), count=1)
    gif = _gif_named_png(tmp_path / "one.png", frame[None])  # one GIF frame: an image, not a stack of one
    assert image_info(gif) == ((20, 30, 3), np.dtype(np.uint8))
    np.testing.assert_array_equal(read_image(gif), frame)
    png = tmp_path / "png.tif"
    png.write_bytes(write_image(tmp_path / "x.png", frame).read_bytes())
    np.testing.assert_array_equal(read_image(png), frame)


def test_tiff_pages_of_different_sizes_are_refused_by_name(tmp_path: Path) -> None:
    import tifffile

    from napari_deblurgan.gan.io.images import ImageRefusedError

    tifffile.imwrite(tmp_path / "mixed.tif", np.zeros((20, 30), np.uint8))
    tifffile.imwrite(tmp_path / "mixed.tif", np.zeros((10, 30), np.uint8), append=True)
    with pytest.raises(ImageRefusedError, match=r"mixed.tif holds 2 images of different sizes.*separate files"):
        read_image(tmp_path / "mixed.tif")


# -- decompression bombs: refused from the header, before anything large is allocated ----------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _png_claiming(path: Path, width: int, height: int, depth: int, colour: int, extra: bytes = b"") -> Path:
    """A PNG of a few dozen bytes whose header claims ``width`` x ``height`` pixels."""
    import zlib

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, colour, 0, 0, 0])
    idat = zlib.compress(bytes(1000))
    path.write_bytes(PNG + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


PNG = b"\x89PNG\r\n\x1a\n"


def _tiled_tiff_claiming(path: Path, size: int) -> Path:
    """A zlib-compressed tiled 16-bit TIFF of a few hundred bytes whose header claims ``size`` squared pixels."""
    import io
    import struct

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((256, 256), np.uint16), tile=(256, 256), compression="zlib", metadata=None)
    data = bytearray(buffer.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        for name in ("ImageWidth", "ImageLength"):
            tag = tif.pages[0].tags[name]
            struct.pack_into("<I" if tag.dtype == 4 else "<H", data, tag.valueoffset, size)
    path.write_bytes(bytes(data))
    return path


def _bmp_claiming(path: Path, size: int) -> Path:
    import struct

    Image.new("RGB", (1, 1)).save(path, format="BMP")
    data = bytearray(path.read_bytes())
    struct.pack_into("<ii", data, 18, size, size)  # BITMAPINFOHEADER width, height
    path.write_bytes(bytes(data))
    return path


BOMBS = {
    "png-8-bit": lambda p: _png_claiming(p / "b.png", 100_000, 100_000, 8, 2),
    "png-16-bit": lambda p: _png_claiming(p / "b.png", 100_000, 100_000, 16, 6),
    "apng-frames": lambda p: _png_claiming(
        p / "b.png", 500, 500, 8, 2, _chunk(b"acTL", (10**6).to_bytes(4, "big") * 2)
    ),
    "tiff-tiled-zlib": lambda p: _tiled_tiff_claiming(p / "b.tif", 60_000),
    "bmp-over-ours": lambda p: _bmp_claiming(p / "b.bmp", 40_000),  # over our limit, under twice it (Pillow's)
    "bmp-over-pillows": lambda p: _bmp_claiming(p / "b.bmp", 65_000),
}


@pytest.mark.parametrize("case", BOMBS)
def test_images_claiming_billions_of_pixels_are_refused_from_their_header(tmp_path: Path, case: str) -> None:
    import tracemalloc

    from napari_deblurgan.gan.io.images import ImageRefusedError

    path = BOMBS[case](tmp_path)
    assert path.stat().st_size < 2000
    tracemalloc.start()
    try:
        for read in (read_image, image_info, icc_profile):
            with pytest.raises(ImageRefusedError, match=rf"{path.name} .*over the limit of 1,073,741,824"):
                read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # nothing the size of the image (gigabytes) was ever allocated
    with pytest.raises(ImageRefusedError, match="raise the limit with the environment variable NAPARI_DEBLURGAN_MAX"):
        read_image(path)


def test_the_pixel_limit_is_raised_and_lowered_by_its_environment_variable(tmp_path: Path, monkeypatch) -> None:
    from napari_deblurgan.gan.io.images import ImageRefusedError

    image = RNG.integers(0, 256, (30, 40, 3)).astype(np.uint8)
    path = write_image(tmp_path / "x.jpg", image)
    monkeypatch.setenv("NAPARI_DEBLURGAN_MAX_PIXELS", "3599")
    with pytest.raises(ImageRefusedError, match=r"x.jpg is a JPEG image of 30 x 40 x 3 = 3,600 pixel values.*3,599"):
        read_image(path)
    monkeypatch.setenv("NAPARI_DEBLURGAN_MAX_PIXELS", "3600")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own limit follows ours up
    assert read_image(path).shape == (30, 40, 3)
    monkeypatch.setenv("NAPARI_DEBLURGAN_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="NAPARI_DEBLURGAN_MAX_PIXELS='lots' is not a number"):
        read_image(path)


def _zlib_bomb(size: int) -> bytes:
    """``size`` zero bytes deflated (about a thousandth of it), made a MiB at a time."""
    import zlib

    deflate = zlib.compressobj(9)
    block = bytes(1 << 20)
    return b"".join(deflate.compress(block) for _ in range(size >> 20)) + deflate.flush()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_an_icc_profile_that_inflates_past_the_limit_is_refused_without_inflating_it(
    tmp_path: Path, dtype: type
) -> None:
    import tracemalloc

    from napari_deblurgan.gan.io.images import ImageRefusedError

    bomb = _zlib_bomb(256 << 20)  # 256 MiB of profile in 250 kB
    png = write_image(tmp_path / "x.png", RNG.integers(0, 200, (9, 11, 3)).astype(dtype)).read_bytes()
    end_of_ihdr = 8 + 8 + 13 + 4
    path = tmp_path / "icc.png"
    path.write_bytes(png[:end_of_ihdr] + _chunk(b"iCCP", b"ICC profile\0\0" + bomb) + png[end_of_ihdr:])
    tracemalloc.start()
    try:
        for read in (read_image, image_info, icc_profile):
            with pytest.raises(ImageRefusedError, match=r"icc.png holds an ICC profile of more than 16,777,216 bytes"):
                read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20  # inflated up to the limit (16 MiB) and no further


def test_the_metadata_limit_covers_tiff_profiles_and_is_raised_by_its_variable(tmp_path: Path, monkeypatch) -> None:
    from napari_deblurgan.gan.io.images import ImageRefusedError

    profile = _srgb_profile()
    path = write_image(tmp_path / "x.tif", RNG.integers(0, 200, (9, 11, 3)).astype(np.uint8), icc_profile=profile)
    monkeypatch.setenv("NAPARI_DEBLURGAN_MAX_METADATA_BYTES", str(len(profile) - 1))
    with pytest.raises(ImageRefusedError, match="x.tif holds an ICC profile of more than .*MAX_METADATA_BYTES"):
        read_image(path)
    monkeypatch.setenv("NAPARI_DEBLURGAN_MAX_METADATA_BYTES", str(len(profile)))
    assert icc_profile(path) == profile


def test_pipes_and_devices_are_named_as_such(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ValueError, match=r"pipe.png is a named pipe \(FIFO\), not an image file"):
        read_image(tmp_path / "pipe.png")  # does not block waiting for a writer
    with pytest.raises(ValueError, match="/dev/zero is a character device, not an image file"):
        image_info("/dev/zero")
