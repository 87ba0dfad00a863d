"""Image files (reading, writing, limits) and plane shapes, shared by the data pipeline, the CLI and the reader.

Value ranges and dtype conversions live in :mod:`.intensity`."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .intensity import dtype_range, to_float01  # noqa: F401  (moved to .intensity; still importable from here)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: Read for deblurring but never written: GIF holds 256 colours, and WebP is lossy by default.
READ_ONLY_SUFFIXES = (".gif", ".webp")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Environment variables that raise the limits on what one image file may hold (:func:`probe`).
MAX_PIXELS_VARIABLE = "NAPARI_DEBLURGAN_MAX_PIXELS"
MAX_METADATA_VARIABLE = "NAPARI_DEBLURGAN_MAX_METADATA_BYTES"


def is_image_file(path: Path, read_only: bool = False) -> bool:
    """A visible image file by its name; ``read_only``: GIF and WebP too (inputs to deblur, not training data)."""
    suffixes = IMAGE_SUFFIXES + READ_ONLY_SUFFIXES * read_only
    return path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith(".")


class ImageRefusedError(ValueError):
    """A file refused from its header for what it holds (over a limit, images that cannot be stacked);
    the message names the file and what to do."""


def max_pixels() -> int:
    """The most pixel values (width x height x frames x channels) one file may decode to:
    $NAPARI_DEBLURGAN_MAX_PIXELS, else 2**30 (1 GiB as 8-bit data)."""
    return _limit(MAX_PIXELS_VARIABLE, 1 << 30)


def max_metadata_bytes() -> int:
    """The most bytes one metadata block (an ICC profile; a PNG text or EXIF chunk) may hold, once
    inflated: $NAPARI_DEBLURGAN_MAX_METADATA_BYTES, else 16 MiB (colour profiles take a few kB to 1 MB)."""
    return _limit(MAX_METADATA_VARIABLE, 16 << 20)


def _limit(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except (ValueError, OverflowError):
        raise ValueError(f"{variable}={text!r} is not a number") from None
    if value < 1:
        raise ValueError(f"{variable} must be a positive number, got {text}")
    return value


@dataclass(frozen=True)
class ImageHeader:
    """What an image file holds, from its header (no pixel decoded): the shape and dtype of
    :func:`read_image`'s result, and the file's format as its bytes say (whatever its name says)."""

    format: str  # "PNG", "APNG", "TIFF", or Pillow's name ("JPEG", "GIF", "BMP", ...)
    shape: tuple[int, ...]  # upright (EXIF orientation applied); a stack's frames first
    dtype: np.dtype
    axes: str  # a letter per axis of ``shape``: "S" channels, "Y" and "X" the plane, any other a stack
    icc: bytes | None = None  # the embedded ICC colour profile (None: the values are sRGB)
    orientation: int = 1  # EXIF orientation of the stored pixels (1: upright)
    mode: str = ""  # Pillow's mode, for the files Pillow decodes
    transparency: bool = False  # a transparent colour (PNG tRNS, GIF) that decodes as an alpha channel
    photometric: str = ""  # a TIFF's colour model as stored ("rgb", "minisblack", "palette", ...); "" for others
    extrasamples: tuple[int, ...] = ()  # a TIFF's extra samples: 1 associated alpha, 2 unassociated, 0 other
    #: what :func:`write_image` carries to an output of the same kind (``keep``): a TIFF's resolution,
    #: lossless compression and ImageJ axes and calibration; a JPEG's or PNG's EXIF (upright) and DPI
    keep: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def frames(self) -> int:
        """How many images the file stacks (animation frames, TIFF pages or slices); 1 for one image."""
        return math.prod(n for axis, n in zip(self.axes, self.shape) if axis not in "YXS")

    @property
    def channels(self) -> int:
        return self.shape[self.axes.index("S")] if "S" in self.axes else 1

    @property
    def gray_alpha(self) -> bool:
        """Gray + alpha (PNG, WebP, GIF with a transparent colour; a TIFF whose second sample is marked as
        alpha); two samples of another TIFF are two channels."""
        if self.channel_axis != -1 or self.channels != 2:
            return False
        return self.format != "TIFF" or (self.colour is False and self.extrasamples[:1] in ((1,), (2,)))

    @property
    def colour(self) -> bool | None:
        """Whether a TIFF's channels are colours (RGB(A); palette and CMYK files are read as RGB) or channels
        of their own (gray, or a microscope's stains); None for other formats, where 3 or 4 are colours."""
        if self.format != "TIFF":
            return None
        return self.photometric in ("rgb", "ycbcr", "palette", "separated") and self.channels in (3, 4)

    @property
    def channel_axis(self) -> int | None:
        """The (negative) axis of colour channels (TIFF samples), or None for grayscale; a multi-page
        grayscale TIFF (Z, Y, X) is not taken for channels, whatever its last axis's length."""
        return self.axes.index("S") - len(self.axes) if "S" in self.axes else None

    def stack_kind(self) -> str:
        kinds = {"APNG": "an animated PNG", "GIF": "an animated GIF", "TIFF": "a multi-page TIFF"}
        return kinds.get(self.format, f"a {self.format} file of several frames")


def probe(path: str | Path, single: bool = False) -> ImageHeader:
    """The header of an image file, checked against :func:`max_pixels` and :func:`max_metadata_bytes`
    before any pixel is decoded (:class:`ImageRefusedError` names the file, the limit and how to raise it).

    ``single``: refuse a file that stacks several images, for uses that take one image per file.
    Pipes, devices, folders, empty and unreadable files are errors naming the file.
    """
    path = Path(path)
    _check_regular(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
        if magic == PNG_SIGNATURE:
            header = _png_header(path)
        elif magic[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # TIFF, BigTIFF
            header = _tiff_header(path)
        else:
            header = _pillow_header(path)
    except ImageRefusedError:
        raise
    except Exception as exc:  # decoders raise many types; the user needs the file name and the reason
        raise ValueError(f"Cannot read image {path}: {_reason(exc)}. Check that the file is a complete image.") from exc
    if single and header.frames > 1:
        raise ImageRefusedError(
            f"{path} is {header.stack_kind()} of {header.frames} images, and one image per file is needed "
            "here; save the image you mean as a file of its own"
        )
    return header


def read_image(path: str | Path, single: bool = False, header: ImageHeader | None = None) -> NDArray:
    """Read an image file as (H, W) or (H, W, C), keeping its dtype (8- and 16-bit stay as they are);
    a file of several images (animated PNG or GIF, multi-page TIFF) as their stack, frames first.

    The format is the one the bytes hold, not the one the name says. JPEGs, PNGs and TIFFs are turned
    upright by their EXIF or TIFF orientation and CMYK JPEGs converted to RGB, as photo viewers show them;
    1-bit images become uint8 0/255. The header is checked first: :func:`probe`, to which ``single`` is passed
    (``header``: what :func:`probe` just gave for this file, not read again).
    """
    return _read(Path(path), header if header is not None else probe(path, single))


def _read(path: Path, header: ImageHeader) -> NDArray:
    """The pixels of a file whose :func:`probe` gave ``header``, checked against it."""
    try:
        image = _decode(path, header)
    except Exception as exc:
        raise ValueError(f"Cannot read image {path}: {_reason(exc)}. Check that the file is a complete image.") from exc
    image = image.astype(np.uint8) * 255 if image.dtype == bool else image
    if image.shape != header.shape:  # e.g. an animation with fewer frames than its header counts
        raise ValueError(
            f"Cannot read image {path}: its header describes {header.shape} but it holds {image.shape}. "
            "Check that the file is a complete image."
        )
    return image


def image_info(path: str | Path, single: bool = False) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of :func:`read_image`'s result for a file, read from its header."""
    header = probe(path, single)
    return header.shape, header.dtype


def icc_profile(path: str | Path) -> bytes | None:
    """The ICC colour profile embedded in an image file (a phone's Display P3, a camera's Adobe RGB), or
    None: the values are then sRGB. :func:`write_image` embeds it again so that colours do not shift."""
    return probe(path).icc


def channel_axis_of(path: str | Path) -> int | None:
    """The axis of ``read_image(path)`` that holds colour channels, or None (:attr:`ImageHeader.channel_axis`)."""
    return probe(path).channel_axis


def special_file_kind(mode: int) -> str:
    """A file that is neither a regular file nor a folder, in words, from its ``st_mode``."""
    kinds = [(stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device")]
    kinds += [(stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for is_kind, name in kinds if is_kind(mode)), "a special file")


def _check_regular(path: Path) -> None:
    """A clear error for what cannot be an image file: missing, a folder, a pipe or device, empty."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"Image {path} does not exist") from None
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(f"{path} is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is {special_file_kind(info.st_mode)}, not an image file")
    if info.st_size == 0:
        raise ValueError(
            f"Cannot read image {path}: the file is empty (0 bytes). Check that the file is a complete image."
        )


def _check_pixels(path: Path, shape: tuple[int, ...], kind: str) -> None:
    values, limit = math.prod(shape), max_pixels()
    if values > limit:
        raise ImageRefusedError(
            f"{path} is a {kind} image of {' x '.join(map(str, shape))} = {values:,} pixel values, over the "
            f"limit of {limit:,} (a decompression bomb, or a very large image); if you trust the file, raise "
            f"the limit with the environment variable {MAX_PIXELS_VARIABLE}={values}"
        )


def _check_metadata(path: Path, size: int, what: str) -> None:
    limit = max_metadata_bytes()
    if size > limit:
        raise ImageRefusedError(
            f"{path} holds {what} of more than {limit:,} bytes, over the limit for metadata; if you trust the "
            f"file, raise the limit with the environment variable {MAX_METADATA_VARIABLE}"
        )


#: PNG colour type -> channels decoded (gray, RGB, palette (RGB or RGBA), gray+alpha, RGBA: at most 4).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}
_PNG_METADATA = {b"iCCP", b"eXIf", b"tEXt", b"zTXt", b"iTXt"}


def _png_header(path: Path) -> ImageHeader:
    """A PNG's or APNG's header from its chunks, found by seeking from chunk header to chunk header
    (this costs the same for any image size); Pillow gives the shape of 8-bit ones once they pass."""
    chunks: dict[bytes, bytes] = {}
    control_seen, hidden_default = False, None  # an APNG's image data before any frame control: an extra image
    transparency = False
    with open(path, "rb") as f:
        f.seek(len(PNG_SIGNATURE))
        while len(head := f.read(8)) == 8 and head[4:] != b"IEND":
            length, kind = int.from_bytes(head[:4], "big"), head[4:]
            if kind in _PNG_METADATA:
                _check_metadata(path, length, f"a {kind.decode('latin-1')} chunk")
            transparency |= kind == b"tRNS"
            if kind == b"IDAT" and hidden_default is None:
                hidden_default = not control_seen
            control_seen |= kind == b"fcTL"
            if kind in (b"IHDR", b"acTL", b"iCCP", b"eXIf") and kind not in chunks:
                chunks[kind] = f.read(length)
                f.seek(4, 1)  # CRC
            else:
                f.seek(length + 4, 1)
    ihdr = chunks.get(b"IHDR", b"")
    if len(ihdr) != 13:
        raise ValueError("it has no PNG header chunk (IHDR)")
    width, height, depth, colour = int.from_bytes(ihdr[:4], "big"), int.from_bytes(ihdr[4:8], "big"), ihdr[8], ihdr[9]
    animation = chunks.get(b"acTL")
    kind = "APNG" if animation else "PNG"
    frames = int.from_bytes(animation[:4], "big") + bool(hidden_default) if animation else 1
    channels = _PNG_CHANNELS.get(colour, 4) + (transparency and colour in (0, 2))  # tRNS decodes as alpha
    _check_pixels(path, (frames,) * (frames > 1) + (height, width, channels), kind)
    icc = _inflate_profile(path, chunks[b"iCCP"]) if b"iCCP" in chunks else None
    if depth != 16:
        return replace(_pillow_header(path), format=kind, icc=icc)
    orientation = _exif_orientation(chunks.get(b"eXIf", b""))
    if orientation in (5, 6, 7, 8):  # EXIF: rotated by 90 degrees
        width, height = height, width
    shape = (frames,) * (frames > 1) + (height, width) + (channels,) * (channels > 1)
    axes = "T" * (frames > 1) + "YX" + "S" * (channels > 1)
    return ImageHeader(kind, shape, np.dtype(np.uint16), axes, icc, orientation, transparency=transparency)


def _inflate_profile(path: Path, chunk: bytes) -> bytes | None:
    """The ICC profile of an iCCP chunk (name, NUL, compression method, zlib data), inflated no further
    than the metadata limit; None if it is damaged (only metadata: the pixels can still be read)."""
    import zlib

    limit = max_metadata_bytes()
    inflater = zlib.decompressobj()
    try:
        profile = inflater.decompress(chunk[chunk.index(b"\0") + 2 :], limit + 1)
    except (ValueError, zlib.error):
        return None
    _check_metadata(path, len(profile), "an ICC profile")
    return profile or None


def _exif_orientation(data: bytes) -> int:
    """The orientation in an EXIF block; 1 (upright) when there is none or it cannot be read."""
    from PIL import Image

    if not data:
        return 1
    try:
        exif = Image.Exif()
        exif.load(data)
        return int(exif.get(0x0112, 1))
    except Exception:  # only metadata: the pixels can be read, a damaged EXIF block must not stop that
        return 1


def _tiff_header(path: Path) -> ImageHeader:
    """A TIFF's header: its images (series) stacked when there are several of one shape and type, as
    when pages were written one at a time; refused when they differ."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = _image_series(tif)
        first = series[0]
        page = first.keyframe
        photometric = page.photometric.name.lower() if page.photometric is not None else ""
        if any((s.shape, s.dtype) != (first.shape, first.dtype) for s in series):
            found = ", ".join(f"{s.shape} {s.dtype}" for s in series[:3]) + (", ..." if len(series) > 3 else "")
            raise ImageRefusedError(
                f"{path} holds {len(series)} images of different sizes or types ({found}), which make no "
                "stack; save them as separate files"
            )
        shape = tuple(first.shape) if len(series) == 1 else (len(series), *first.shape)
        axes = first.axes if len(series) == 1 else "I" + first.axes
        if len(shape) == 3 and shape[-1] == 1:  # (Y, X, 1): one channel
            axes = axes[:-1] + "S"
        dtype = np.dtype(np.uint8) if first.dtype.kind == "b" else np.dtype(first.dtype)
        shape, axes, dtype = _read_as_rgb_or_gray(path, page, photometric, shape, axes, dtype, tif.is_imagej)
        _check_pixels(path, shape, "TIFF")
        orientation = int(tif.pages[0].tags.valueof(274, 1)) if {"Y", "X"} <= set(axes) else 1  # Orientation
        if orientation in (5, 6, 7, 8):  # stored turned by 90 degrees
            y, x = axes.index("Y"), axes.index("X")
            shape = tuple(shape[x] if i == y else shape[y] if i == x else n for i, n in enumerate(shape))
        tag = tif.pages[0].tags.get(34675)  # InterColorProfile
        if tag is not None:
            _check_metadata(path, tag.valuebytecount, "an ICC profile")
        icc = bytes(tag.value) if tag is not None else None
        extrasamples = tuple(int(e) for e in page.extrasamples)
        keep = _tiff_keep(tif, page, axes if len(series) == 1 else "", orientation)
    return ImageHeader(
        "TIFF",
        shape,
        dtype,
        axes,
        icc or None,
        orientation,
        photometric=photometric,
        extrasamples=extrasamples,
        keep=keep,
    )


#: TIFF compressions written again as they were (the lossy ones, such as JPEG, as zlib)
_LOSSLESS = {"ADOBE_DEFLATE": "zlib", "DEFLATE": "zlib", "LZW": "lzw", "ZSTD": "zstd", "LZMA": "lzma"}


def _in_order(axes: str, order: str) -> bool:
    """Whether every letter of ``axes`` is in ``order``, in that order (each once)."""
    positions = [order.find(a) for a in axes]
    return -1 not in positions and positions == sorted(set(positions))


def _tiff_keep(tif: Any, page: Any, axes: str, orientation: int) -> dict[str, Any]:
    """What an output TIFF keeps of this one: resolution (a microscope's pixel size), lossless compression,
    and an ImageJ file's axes and calibration (its Z spacing, unit, frame interval)."""
    keep: dict[str, Any] = {}
    if page.tags.get(282) is not None and page.tags.get(283) is not None:
        x, y = page.resolution
        keep["resolution"] = (y, x) if orientation in (5, 6, 7, 8) else (x, y)
        keep["resolutionunit"] = int(page.resolutionunit)
    if page.compression.name != "NONE":
        keep["compression"] = _LOSSLESS.get(page.compression.name, "zlib")
    if page.extrasamples:
        keep["extrasamples"] = [int(e) for e in page.extrasamples]
    if tif.is_imagej and axes and _in_order(axes, "TZCYXS"):  # else tifffile could not write it as ImageJ
        calibration = tif.imagej_metadata or {}
        keep["imagej"] = {"axes": axes} | {
            k: calibration[k] for k in ("spacing", "unit", "finterval") if k in calibration
        }
    return keep


def _read_as_rgb_or_gray(
    path: Path, page: Any, photometric: str, shape: tuple[int, ...], axes: str, dtype: np.dtype, imagej: bool
) -> tuple[tuple[int, ...], str, np.dtype]:
    """Shape, axes and dtype of a TIFF read as photo viewers show it: a palette's colours (RGB; 8-bit
    where the palette is), CMYK as RGB, white-is-zero gray as black-is-zero; other colour models refused.
    An ImageJ file's palette is a display LUT ("Green", "Fire") over measured values: they stay gray."""
    if photometric == "palette" and imagej:
        return shape, axes, dtype
    if photometric == "palette" and "S" not in axes:
        eight_bit = _eight_bit_palette(page.colormap)
        return (*shape, 3), axes + "S", np.dtype(np.uint8 if eight_bit else np.uint16)
    if photometric == "separated" and page.tags.valueof(332, 1) == 1 and "S" in axes and shape[axes.index("S")] == 4:
        if dtype not in (np.uint8, np.uint16):
            raise ImageRefusedError(f"{path} is a CMYK TIFF of {dtype} values; save it as 8- or 16-bit RGB")
        return tuple(3 if a == "S" else n for a, n in zip(axes, shape)), axes, dtype
    if photometric == "miniswhite" and dtype.kind == "u":
        return shape, axes, dtype
    if photometric in ("minisblack", "rgb", "ycbcr", "mask", ""):
        return shape, axes, dtype
    raise ImageRefusedError(
        f"{path} stores {dtype} values in the {photometric} colour model, which napari-deblurgan does not convert; "
        "save it as gray or RGB"
    )


def _image_series(tif: Any) -> list[Any]:
    """A TIFF's images: its series but reduced-resolution ones (thumbnails, previews)."""
    return [s for s in tif.series if not s.keyframe.is_reduced] or tif.series[:1]


def _pillow_header(path: Path) -> ImageHeader:
    """The header of a file Pillow decodes (JPEG, 8-bit PNG, GIF, BMP, ...): Pillow reads only headers
    until pixels are asked for. An MPO (a JPEG with previews or depth maps) is the photo viewers show."""
    import imageio.v3 as iio
    from PIL import Image

    _pillow_within_our_limits()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # ours is checked below
            im = Image.open(path)
    except Image.DecompressionBombError as exc:  # twice our limit: Pillow's is raised to ours
        raise ImageRefusedError(
            f"{path} is over the limit of {max_pixels():,} pixel values ({exc}); if you trust the file, raise "
            f"the limit with the environment variable {MAX_PIXELS_VARIABLE}"
        ) from None
    with im:
        frames = 1 if im.format == "MPO" else int(getattr(im, "n_frames", 1))
        channels = 4 if im.mode in ("P", "PA") else len(im.getbands())
        _check_pixels(path, (frames,) * (frames > 1) + (im.height, im.width, channels), str(im.format))
        icc, orientation = im.info.get("icc_profile") or None, int(im.getexif().get(0x0112, 1))
        mode, kind = im.mode, str(im.format)
        transparency = "transparency" in im.info and mode in _WITH_ALPHA
        keep = _photo_keep(im)
    if icc:
        _check_metadata(path, len(icc), "an ICC profile")
    props = iio.improps(path, plugin="pillow", index=0)
    frame, dtype = list(props.shape), np.dtype(props.dtype)
    if mode == "CMYK":
        frame[-1] = 3
    if transparency:
        frame = [*frame[:2], len(_WITH_ALPHA[mode])]
    if orientation in (5, 6, 7, 8):  # EXIF: rotated by 90 degrees
        frame[0], frame[1] = frame[1], frame[0]
    shape = (frames,) * (frames > 1) + tuple(frame)
    axes = "T" * (frames > 1) + "YX" + "S" * (len(frame) == 3)
    dtype = np.dtype(np.uint8) if dtype.kind == "b" else dtype
    return ImageHeader(kind, shape, dtype, axes, icc, orientation, mode, transparency, keep=keep)


def _photo_keep(im: Any) -> dict[str, Any]:
    """What an output JPEG or PNG keeps of this photo: its EXIF (camera, date taken; marked upright, as the
    pixels are written) and DPI."""
    keep: dict[str, Any] = {}
    if im.info.get("dpi"):
        keep["dpi"] = tuple(float(v) for v in im.info["dpi"])
    exif = im.getexif()
    if len(exif):
        exif[0x0112] = 1  # Orientation: the pixels are read and written upright
        with contextlib.suppress(Exception):  # only metadata: a damaged block is left out
            keep["exif"] = exif.tobytes()
    return keep


#: Pillow modes whose transparent colour (``info["transparency"]``) is decoded as an alpha channel, and the
#: mode they are decoded in: the transparency is kept, as in files with an alpha channel.
_WITH_ALPHA = {"P": "RGBA", "RGB": "RGBA", "L": "LA"}


def _pillow_within_our_limits() -> None:
    """Pillow's own limits raised to ours (checked before Pillow decodes), so that raising ours works."""
    from PIL import Image, PngImagePlugin

    if Image.MAX_IMAGE_PIXELS is not None:
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, max_pixels())
    PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, max_metadata_bytes())


def _decode(path: Path, header: ImageHeader) -> NDArray:
    """The pixels of a file whose :func:`probe` gave ``header``."""
    if header.format == "TIFF":
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = _image_series(tif)
            image = series[0].asarray() if len(series) == 1 else np.stack([s.asarray() for s in series])
            image = _as_rgb_or_gray(image, header, series[0].keyframe)
        if header.orientation == 1:  # also for series without Y and X axes
            return image
        return _orient(image, header.orientation, header.axes.index("Y"), header.axes.index("X"))
    if header.dtype == np.uint16 and header.format in ("PNG", "APNG"):  # Pillow decodes these to 8 bits
        import imagecodecs

        if header.format == "PNG":
            return _orient(np.asarray(imagecodecs.png_decode(path.read_bytes())), header.orientation)
        frames = [_orient(frame, header.orientation) for frame in imagecodecs.apng_decode(path.read_bytes())]
        return np.stack(frames) if len(frames) > 1 else frames[0]
    import imageio.v3 as iio

    _pillow_within_our_limits()
    index = ... if header.frames > 1 else 0
    mode = "RGB" if header.mode == "CMYK" else _WITH_ALPHA[header.mode] if header.transparency else None
    return np.asarray(iio.imread(path, plugin="pillow", index=index, rotate=True, mode=mode))


def _eight_bit_palette(palette: NDArray | None) -> bool:
    """Whether a TIFF palette's 16-bit entries hold 8-bit colours (v x 257, or Pillow's v x 256)."""
    return palette is not None and (not (palette % 257).any() or not (palette & 0xFF).any())


def _as_rgb_or_gray(image: NDArray, header: ImageHeader, page: Any) -> NDArray:
    """A TIFF's decoded values as :func:`_read_as_rgb_or_gray` describes them."""
    if header.photometric == "miniswhite":  # white is the largest value its bits hold (4-bit: 15)
        return ~image if image.dtype == bool else ((1 << int(page.bitspersample)) - 1 - image).astype(image.dtype)
    if header.photometric == "palette" and image.ndim < len(header.shape):
        palette = page.colormap >> 8 if header.dtype == np.uint8 else page.colormap
        return np.moveaxis(palette.astype(header.dtype)[:, image], 0, -1)
    if header.photometric == "separated":  # naive CMYK -> RGB (no profile), as Pillow converts CMYK JPEGs
        top = int(np.iinfo(image.dtype).max)
        c, m, y, k = (plane.astype(np.uint32) for plane in np.moveaxis(image, header.axes.index("S"), 0))
        white = top - k
        rgb = [((top - v) * white + top // 2) // top for v in (c, m, y)]
        return np.stack(rgb, axis=header.axes.index("S")).astype(image.dtype)
    return image


#: EXIF orientation -> (transpose Y and X, then flip Y, flip X) that turns the stored pixels upright.
_ORIENTATIONS = {2: (False, False, True), 3: (False, True, True), 4: (False, True, False), 5: (True, False, False)}
_ORIENTATIONS |= {6: (True, False, True), 7: (True, True, True), 8: (True, True, False)}


def _orient(image: NDArray, orientation: int, y: int = 0, x: int = 1) -> NDArray:
    """Stored pixels turned upright by their EXIF/TIFF ``orientation`` (1: already upright); ``y`` and ``x``
    are the axes of the plane ((H, W[, C]) by default)."""
    transpose, flip_y, flip_x = _ORIENTATIONS.get(orientation, (False, False, False))
    if transpose:
        image = image.swapaxes(y, x)
    flips = [slice(None)] * image.ndim
    flips[y], flips[x] = slice(None, None, -1 if flip_y else 1), slice(None, None, -1 if flip_x else 1)
    return np.ascontiguousarray(image[tuple(flips)])


def _reason(exc: BaseException) -> str:
    """The first line of a decoder's message (some span many lines), or the exception's type."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else exc.__class__.__name__


def _profile_fits(profile: bytes, channels: int) -> bool:
    """Whether an ICC profile's colour space (named in its header) is that of images with ``channels``:
    an RGB profile for RGB(A), a gray one for gray(+alpha); a CMYK JPEG's profile fits no output."""
    return profile[16:20] == (b"RGB " if channels in (3, 4) else b"GRAY" if channels in (1, 2) else b"")


def _png_with_profile(png: bytes, profile: bytes) -> bytes:
    """A PNG with an iCCP chunk (name, compression 0, zlib data) right after its header chunk (IHDR)."""
    import zlib

    body = b"iCCP" + b"ICC profile\0\0" + zlib.compress(profile)
    chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    end_of_ihdr = 8 + 4 + 4 + 13 + 4  # signature, IHDR length, type, data, CRC
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def is_tiff(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


def write_image(
    path: str | Path,
    image: NDArray,
    channel_axis: int | Literal["auto"] | None = "auto",
    icc_profile: bytes | None = None,
    rgb: bool | None = None,
    alpha: bool = False,
    keep: dict[str, Any] | None = None,
) -> Path:
    """Write an image atomically (temp file + rename) in the format its suffix names; 16-bit stays 16-bit.

    ``channel_axis`` names the axis of colour channels (TIFF samples) whatever their count, None for none
    (a TIFF of grayscale pages); "auto": the last axis of a 3D image if it is 3 or 4 long. A TIFF keeps
    the channels where they are: interleaved when last, planar when right before Y and X.
    ``icc_profile`` (from :func:`icc_profile`) is embedded in TIFF, PNG and JPEG files when its colour
    space fits the channels written (BMP holds none). A TIFF's 3 or 4 channels are written as RGB(A) unless
    ``rgb`` is False (channels of their own), and its second of 2 is marked as alpha when ``alpha``
    (:attr:`ImageHeader.colour` and :attr:`ImageHeader.gray_alpha` of the input). ``keep``
    (:attr:`ImageHeader.keep` of the input) carries its resolution, compression and ImageJ calibration to a
    TIFF, its EXIF and DPI to a JPEG or 8-bit PNG. A full disk is an OSError naming ``path``.
    """
    from .checkpoint import atomic_write

    path = Path(path)
    suffix = path.suffix.lower()
    if not is_tiff(path) and channel_axis not in ("auto", None) and image.ndim == 3:
        image = np.moveaxis(image, channel_axis, -1)  # PNG/JPEG/BMP hold channels last, one channel as gray
        image, channel_axis = (image[..., 0], None) if image.shape[-1] == 1 else (image, -1)
    if not is_tiff(path):  # PNG/JPEG writers take native byte order (TIFF records its own)
        image = image.astype(image.dtype.newbyteorder("="), copy=False)
    check_writable(path, image)
    if channel_axis == "auto":
        channel_axis = -1 if image.ndim == 3 and image.shape[-1] in (3, 4) else None
    axis = None if channel_axis is None else channel_axis % image.ndim
    channels = 1 if axis is None else image.shape[axis]
    profile = icc_profile if icc_profile and _profile_fits(icc_profile, channels) else None

    tiff_keep = {k: v for k, v in (keep or {}).items() if k in ("resolution", "resolutionunit", "compression")}
    imagej = (keep or {}).get("imagej") if image.dtype in (np.uint8, np.uint16, np.float32) else None
    photo_keep = {k: v for k, v in (keep or {}).items() if k in ("exif", "dpi")}

    def write(tmp: Path) -> None:
        if is_tiff(path) and imagej and len(imagej["axes"]) == image.ndim:
            import tifffile

            tifffile.imwrite(tmp, image, imagej=True, metadata=imagej, iccprofile=profile, **tiff_keep)
        elif is_tiff(path):
            import tifffile

            if axis is None or image.shape[axis] == 1:  # tifffile takes one sample per pixel as no channel axis
                tifffile.imwrite(tmp, image, photometric="minisblack", iccprofile=profile, **tiff_keep)
                return
            planar = axis == image.ndim - 3 and image.ndim >= 3
            data = image if planar or axis == image.ndim - 1 else np.moveaxis(image, axis, -1)
            colour = image.shape[axis] in (3, 4) if rgb is None else rgb
            kind = (keep or {}).get("extrasamples", [2])[:1]  # associated (1) or unassociated (2) alpha
            extra = {"extrasamples": kind} if alpha and not colour and image.shape[axis] == 2 else {}
            tifffile.imwrite(
                tmp,
                data,
                photometric="rgb" if colour else "minisblack",
                planarconfig="separate" if planar else "contig",
                iccprofile=profile,
                **extra,
                **tiff_keep,
            )
        elif suffix == ".png" and image.dtype == np.uint16:  # imageio (Pillow) writes 16 bits for gray only
            import imagecodecs

            png = imagecodecs.png_encode(np.ascontiguousarray(image))
            tmp.write_bytes(_png_with_profile(png, profile) if profile else png)
        else:
            import imageio.v3 as iio

            extra: dict[str, object] = {"quality": 95} if suffix in (".jpg", ".jpeg") else {}
            if profile and suffix != ".bmp":
                extra["icc_profile"] = profile
            if suffix != ".bmp":
                extra |= photo_keep
            if suffix in (".jpg", ".jpeg") and len(photo_keep.get("exif", b"")) > 65533:
                del extra["exif"]  # a JPEG's EXIF segment holds 64 kB (a PNG's may hold more)
            iio.imwrite(tmp, image, extension=suffix, **extra)

    try:
        return atomic_write(path, write)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        full = OSError(f"Cannot write {path}: the disk is full ({exc.strerror or exc}); free some space and run again")
        full.errno = exc.errno
        raise full from exc


#: What the non-TIFF formats hold: name, integer dtypes, channel counts.
_LIMITED_FORMATS: dict[str, tuple[str, tuple[type, ...], tuple[int, ...]]] = {
    ".jpg": ("JPEG", (np.uint8,), (1, 3)),
    ".jpeg": ("JPEG", (np.uint8,), (1, 3)),
    ".png": ("PNG", (np.uint8, np.uint16), (1, 2, 3, 4)),
    ".bmp": ("BMP", (np.uint8,), (1, 3)),  # Pillow reads a 32-bit BMP back without its alpha
}


def check_writable(path: Path, image_or_dtype: NDArray | np.dtype, channels: int | None = None) -> None:
    """Raise ValueError if ``path``'s format cannot hold such an image (say which format can)."""
    suffix = path.suffix.lower()
    if suffix in READ_ONLY_SUFFIXES:
        raise ValueError(f"Cannot write {path}: {suffix} is read, not written; choose --format png, jpg or tif")
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"Cannot write {path}: unknown image format {suffix!r}; use .png, .jpg or .tif")
    dtype = np.dtype(getattr(image_or_dtype, "dtype", image_or_dtype))
    if channels is None and isinstance(image_or_dtype, np.ndarray):
        channels = image_or_dtype.shape[-1] if image_or_dtype.ndim == 3 else 1
    if suffix in _LIMITED_FORMATS:
        name, dtypes, counts = _LIMITED_FORMATS[suffix]
        if dtype not in dtypes:
            bits = "/".join(f"{np.dtype(d).itemsize * 8}" for d in dtypes)
            raise ValueError(f"{name} holds only {bits}-bit integers; write {dtype} data as .tif instead ({path})")
        if channels is not None and channels not in counts:
            raise ValueError(f"{name} cannot hold {channels} channels; write them as .tif instead ({path})")


def read_opaque(path: str | Path, single: bool = False) -> NDArray:
    """:func:`read_image`, gray + alpha as its gray plane (training data: the alpha is not image content;
    :func:`as_rgb` drops an RGBA image's)."""
    header = probe(path, single)
    image = _read(Path(path), header)
    return image[..., 0] if header.gray_alpha else image


def as_rgb(image: NDArray) -> NDArray:
    """(H, W) or (H, W, 1|3|4) as (H, W, 3): gray replicated, alpha dropped."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[:, :, :3]
    raise ValueError(f"Expected a grayscale or RGB(A) image, got shape {image.shape}")


def centre_crop(image: NDArray, size: int) -> NDArray:
    """The central ``size`` x ``size`` part of an image (each side only as far as it reaches)."""
    y, x = max(0, (image.shape[0] - size) // 2), max(0, (image.shape[1] - size) // 2)
    return image[y : y + size, x : x + size]
