"""Image reading and value-range conversion shared by the data pipeline, the CLI and the reader."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image(path: str | Path) -> NDArray:
    """Read an image file as (H, W) or (H, W, C), keeping its dtype (8- and 16-bit stay as they are).

    JPEGs and PNGs are turned upright by their EXIF orientation and CMYK JPEGs converted to RGB, as photo
    viewers show them; 1-bit images become uint8 0/255.
    """
    path = Path(path)
    _check_not_empty(path)
    try:
        if is_tiff(path):
            import tifffile

            image = np.asarray(tifffile.imread(path))
        elif _png16_shape(path):  # Pillow decodes 16-bit colour PNGs to 8 bits
            import imagecodecs

            image = _orient(np.asarray(imagecodecs.png_decode(path.read_bytes())), _png_orientation(path))
        else:
            import imageio.v3 as iio

            cmyk = _pillow_facts(path)[0] == "CMYK"
            image = np.asarray(iio.imread(path, rotate=True, mode="RGB" if cmyk else None))
    except Exception as exc:  # decoders raise many types; the user needs the file name and the reason
        raise ValueError(f"Cannot read image {path}: {_reason(exc)}. Check that the file is a complete image.") from exc
    return image.astype(np.uint8) * 255 if image.dtype == bool else image


def _png16_shape(path: Path) -> tuple[int, ...] | None:
    """The array shape of a 16-bit PNG from its header (IHDR); None for other files."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR" or head[24] != 16:
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(head[25], 1)  # colour type: gray, RGB, gray+alpha, RGBA
    return (height, width) if channels == 1 else (height, width, channels)


#: EXIF orientation -> (transpose Y and X, then flip Y, flip X) that turns the stored pixels upright.
_ORIENTATIONS = {2: (False, False, True), 3: (False, True, True), 4: (False, True, False), 5: (True, False, False)}
_ORIENTATIONS |= {6: (True, False, True), 7: (True, True, True), 8: (True, True, False)}


def _orient(image: NDArray, orientation: int) -> NDArray:
    """Stored pixels (H, W[, C]) turned upright by their EXIF ``orientation`` (1: already upright)."""
    transpose, flip_y, flip_x = _ORIENTATIONS.get(orientation, (False, False, False))
    if transpose:
        image = image.swapaxes(0, 1)
    return np.ascontiguousarray(image[:: -1 if flip_y else 1, :: -1 if flip_x else 1])


def _png_chunks(path: Path, types: set[bytes]) -> dict[bytes, bytes] | None:
    """The data of a PNG's chunks of the given ``types``, found by seeking from chunk header to chunk header
    (nothing is decoded, so this costs the same for any image size); None if the file is not a PNG."""
    found = {}
    with open(path, "rb") as f:
        if f.read(8) != PNG_SIGNATURE:
            return None
        while len(head := f.read(8)) == 8 and head[4:] != b"IEND":
            length = int.from_bytes(head[:4], "big")
            if head[4:] in types:
                found[head[4:]] = f.read(length)
                f.seek(4, 1)  # CRC
            else:
                f.seek(length + 4, 1)
    return found


def _png_orientation(path: Path) -> int:
    """The EXIF orientation of a PNG (its eXIf chunk); 1 (upright) when it has none or it cannot be read."""
    from PIL import Image

    data = (_png_chunks(path, {b"eXIf"}) or {}).get(b"eXIf")
    if not data:
        return 1
    try:
        exif = Image.Exif()
        exif.load(data)
        return int(exif.get(0x0112, 1))
    except Exception:  # only metadata: the pixels can be read, a damaged EXIF block must not stop that
        return 1


def _pillow_facts(path: Path) -> tuple[str, int]:
    """Pillow's mode of an image file and its EXIF orientation (1: upright)."""
    from PIL import Image

    with Image.open(path) as im:
        return im.mode, int(im.getexif().get(0x0112, 1))


def _check_not_empty(path: Path) -> None:
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(
            f"Cannot read image {path}: the file is empty (0 bytes). Check that the file is a complete image."
        )


def _reason(exc: BaseException) -> str:
    """The first line of a decoder's message (some span many lines), or the exception's type."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else exc.__class__.__name__


def image_info(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of :func:`read_image`'s result for a file, read from its header."""
    path = Path(path)
    _check_not_empty(path)
    try:
        if is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                dtype = np.dtype(series.dtype)
                return tuple(series.shape), np.dtype(np.uint8) if dtype.kind == "b" else dtype
        png16 = _png16_shape(path)
        if png16:
            mode, orientation = "", _png_orientation(path)
            shape, dtype = list(png16), np.dtype(np.uint16)
        else:
            import imageio.v3 as iio

            props = iio.improps(path)
            shape, dtype = list(props.shape), np.dtype(props.dtype)
            mode, orientation = _pillow_facts(path)
        if mode == "CMYK":
            shape[-1] = 3
        if orientation in (5, 6, 7, 8):  # EXIF: rotated by 90 degrees
            shape[0], shape[1] = shape[1], shape[0]
        return tuple(shape), np.dtype(np.uint8) if dtype.kind == "b" else dtype
    except Exception as exc:
        raise ValueError(f"Cannot read image {path}: {_reason(exc)}. Check that the file is a complete image.") from exc


def icc_profile(path: str | Path) -> bytes | None:
    """The ICC colour profile embedded in an image file (a phone's Display P3, a camera's Adobe RGB), or
    None: the values are then sRGB. :func:`write_image` embeds it again so that colours do not shift."""
    path = Path(path)
    try:
        if is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                tag = tif.pages[0].tags.get(34675)  # InterColorProfile
                return bytes(tag.value) if tag is not None else None
        if (chunks := _png_chunks(path, {b"iCCP"})) is not None:
            import zlib

            chunk = chunks.get(b"iCCP")  # name, NUL, compression method, zlib data
            return zlib.decompress(chunk[chunk.index(b"\0") + 2 :]) if chunk else None
        from PIL import Image

        with Image.open(path) as im:
            return im.info.get("icc_profile") or None
    except Exception:  # only metadata: the pixels were read, a damaged profile must not stop the job
        return None


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


def tiff_layout(path: str | Path) -> tuple[int, int]:
    """(images, channels) of a TIFF from its header: how many 2D planes it stacks (pages, slices, frames)
    and how many samples each pixel has."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        sizes = dict(zip(series.axes, series.shape))
        planes = int(np.prod([n for axis, n in sizes.items() if axis not in "YXS"], dtype=np.int64))
        return planes, sizes.get("S", 1)


def channel_axis_of(path: str | Path, image: NDArray) -> int | None:
    """The axis of ``read_image(path)`` that holds colour channels (samples), or None for grayscale.

    PNG/JPEG/BMP: the last axis of a 3D image. TIFF: the axis its metadata calls samples ('S'), so a
    multi-page grayscale stack (Z, Y, X) is not taken for channels.
    """
    path = Path(path)
    if not is_tiff(path):
        return -1 if image.ndim == 3 else None
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes
    except Exception:  # the image was read, so this is only the metadata: fall back to the shape
        axes = ""
    if image.ndim == 3 and image.shape[-1] == 1:
        return -1
    if len(axes) == image.ndim and "S" in axes:
        return axes.index("S") - image.ndim
    return -1 if image.ndim == 3 and image.shape[-1] in (3, 4) and len(axes) != image.ndim else None


def write_image(
    path: str | Path,
    image: NDArray,
    channel_axis: int | Literal["auto"] | None = "auto",
    icc_profile: bytes | None = None,
) -> Path:
    """Write an image atomically (temp file + rename) in the format its suffix names; 16-bit stays 16-bit.

    ``channel_axis`` names the axis of colour channels (TIFF samples) whatever their count, None for none
    (a TIFF of grayscale pages); "auto": the last axis of a 3D image if it is 3 or 4 long. A TIFF keeps
    the channels where they are: interleaved when last, planar when right before Y and X.
    ``icc_profile`` (from :func:`icc_profile`) is embedded in TIFF, PNG and JPEG files when its colour
    space fits the channels written (BMP holds none).
    """
    from .checkpoint import atomic_write

    path = Path(path)
    suffix = path.suffix.lower()
    if not is_tiff(path) and channel_axis not in ("auto", None) and image.ndim == 3:
        image = np.moveaxis(image, channel_axis, -1)  # PNG/JPEG/BMP hold channels last, one channel as gray
        image, channel_axis = (image[..., 0], None) if image.shape[-1] == 1 else (image, -1)
    check_writable(path, image)
    if channel_axis == "auto":
        channel_axis = -1 if image.ndim == 3 and image.shape[-1] in (3, 4) else None
    axis = None if channel_axis is None else channel_axis % image.ndim
    channels = 1 if axis is None else image.shape[axis]
    profile = icc_profile if icc_profile and _profile_fits(icc_profile, channels) else None

    def write(tmp: Path) -> None:
        if is_tiff(path):
            import tifffile

            if axis is None or image.shape[axis] == 1:  # tifffile takes one sample per pixel as no channel axis
                tifffile.imwrite(tmp, image, photometric="minisblack", iccprofile=profile)
                return
            planar = axis == image.ndim - 3 and image.ndim >= 3
            data = image if planar or axis == image.ndim - 1 else np.moveaxis(image, axis, -1)
            photometric = "rgb" if image.shape[axis] in (3, 4) else "minisblack"
            planarconfig = "separate" if planar else "contig"
            tifffile.imwrite(tmp, data, photometric=photometric, planarconfig=planarconfig, iccprofile=profile)
        elif suffix == ".png" and image.dtype == np.uint16:  # imageio (Pillow) writes 16 bits for gray only
            import imagecodecs

            png = imagecodecs.png_encode(np.ascontiguousarray(image))
            tmp.write_bytes(_png_with_profile(png, profile) if profile else png)
        else:
            import imageio.v3 as iio

            extra: dict[str, object] = {"quality": 95} if suffix in (".jpg", ".jpeg") else {}
            if profile and suffix != ".bmp":
                extra["icc_profile"] = profile
            iio.imwrite(tmp, image, extension=suffix, **extra)

    return atomic_write(path, write)


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


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """The value range an integer dtype maps to [0, 1] by; floats are taken as [0, 1]."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def to_float01(image: NDArray) -> NDArray[np.float32]:
    """Integer images scaled by their dtype range, floats clipped to [0, 1]; float32 output."""
    lo, hi = dtype_range(image.dtype)
    out = (image.astype(np.float32) - lo) / (hi - lo) if np.issubdtype(image.dtype, np.integer) else image
    return np.clip(out, 0.0, 1.0).astype(np.float32)


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
