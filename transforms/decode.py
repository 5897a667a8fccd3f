"""Decode uploaded bytes into normalised 8-bit pixels.

The format is detected from the content (Pillow's identification), never from a name.
Every image comes out as a numpy uint8 array shaped (H, W) for L, (H, W, 2) for LA,
(H, W, 3) for RGB or (H, W, 4) for RGBA: EXIF orientation applied, colour converted to
sRGB, 16-bit scaled to 8-bit, palettes expanded.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from transforms import jpeg
from transforms.errors import CorruptImage, EmptyImage, ImageTooLarge, TooComplex, UnsupportedFormat
from transforms.formats import MEDIA_TYPES
from transforms.frames import count_frames, jpeg_scans
from transforms.integrity import check_jpeg, check_png
from transforms.limits import Limits

# HEIC/HEIF from phones (libheif, bundled in the pillow-heif wheel) as a Pillow format; AVIF is
# Pillow's own. HEIF's rotation (irot) is applied by libheif, which then reports orientation 1, so it
# is not applied twice. JPEG XL is not read: pillow-jxl-plugin decodes every pixel when the file is
# opened, before any size check could refuse a bomb (and raises RuntimeError on a truncated file).
pillow_heif.register_heif_opener()
# A warning is not a defence: Pillow's bomb warning must stop the decode.
warnings.simplefilter("error", Image.DecompressionBombWarning)
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Formats whose frames are an animation (a TIFF's pages and an MPO's pictures are not).
ANIMATABLE = frozenset(("GIF", "WEBP", "PNG"))
# Pillow format name -> the format we report. MPO is a JPEG with extra pictures.
ACCEPTED = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "GIF": "GIF", "WEBP": "WEBP",
            "BMP": "BMP", "TIFF": "TIFF", "HEIF": "HEIF", "AVIF": "AVIF"}
_SRGB = ImageCms.createProfile("sRGB")
_ORIENTATION_TAG = 0x0112
_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "I;16N": 1, "F": 1, "LA": 2, "La": 2,
             "PA": 4, "RGBA": 4, "RGBa": 4}  # P depends on its transparency; everything else becomes RGB
_DEEP = ("I", "F")  # 16- and 32-bit modes: several bytes a pixel while they are scaled to 8 bits

# What an unidentified upload most likely is, for the 415 message.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "application/pdf"), (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"), (b"<svg", "image/svg+xml"),
    (b"<?xml", "application/xml"), (b"<!doctype html", "text/html"), (b"<html", "text/html"),
    (b"{", "application/json"), (b"[", "application/json"), (b"\x00\x00\x00", "video/mp4 or HEIF"),
)


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, after orientation: no pixels decoded."""

    format: str
    width: int
    height: int
    channels: int = 3  # of the decoded array: 1 L, 2 LA, 3 RGB, 4 RGBA
    deep: bool = False  # 16- or 32-bit samples in the file
    frames: int = 1  # an animation's frames (GIF, WebP, APNG); 1 for stills and multi-page TIFFs

    @property
    def animated(self) -> bool:
        return self.frames > 1

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


@dataclass(frozen=True)
class Decoded:
    info: ImageInfo
    pixels: np.ndarray


def sniff(data: bytes) -> str:
    """Best guess at what non-image bytes are, for error messages."""
    head = data[:64].lstrip().lower()
    for magic, kind in _SIGNATURES:
        if head.startswith(magic.lower()):
            return kind
    try:
        data[:1024].decode("utf-8")
    except UnicodeDecodeError:
        return "unknown binary data"
    return "text/plain"


def _open(data: bytes, limits: Limits) -> tuple[Image.Image, str, int]:
    """Identify the image and check its size, frames and scans from headers, before any pixel is decoded."""
    if not data:
        raise EmptyImage("the file is empty")
    # Pillow's own bomb check stays as a second line behind ours; only raise it, for a larger limit.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limits.max_pixels)
    try:
        img = Image.open(io.BytesIO(data))
        fmt = ACCEPTED.get(img.format or "")
        if fmt is None:
            raise UnsupportedFormat(f"unsupported image format {img.format}; accepted: "
                                    "JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF, AVIF")
        frames = _check_frames(img, data, limits)
        scans = jpeg_scans(data) if fmt == "JPEG" else 1
        if scans > limits.max_scans:
            raise TooComplex(f"the JPEG has {scans} scans; the limit is {limits.max_scans}")
    except UnidentifiedImageError:
        raise UnsupportedFormat(f"not a supported image: content looks like {sniff(data)}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"decompression bomb refused: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise CorruptImage(f"unreadable image header: {exc}") from None
    return img, fmt, frames if fmt in ANIMATABLE else 1


def _check_frames(img: Image.Image, data: bytes, limits: Limits) -> int:
    """The canvas and every frame's claimed extent within max_pixels; the number of frames, and frames x
    canvas, within their limits. Counted from headers: no frame is decoded. Returns the frames."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"invalid dimensions {width}x{height}")
    canvas = width * height
    frames, width, height = count_frames(img, data, limits.max_frames)  # any frame may claim more than its canvas
    for _, extent, *_ in img.tile or ():  # and so may the first frame's tiles
        width, height = max(width, extent[2]), max(height, extent[3])
    if width * height > limits.max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}")
    if frames > limits.max_frames:
        raise TooComplex(f"more than {limits.max_frames} frames; the limit is {limits.max_frames}")
    if frames * canvas > limits.max_animation_pixels:
        raise TooComplex(f"{frames} frames of {canvas} pixels = {frames * canvas} pixels; the limit for all "
                         f"frames together is {limits.max_animation_pixels}")
    return frames


def orientation(img: Image.Image) -> int:
    """EXIF orientation (1-8) from what is already parsed: for PNG, Pillow's getexif() would decode the
    whole image to look for an eXIf chunk after the pixels, so read only one that came before."""
    try:
        if img.format == "PNG":
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
            return int(exif.get(_ORIENTATION_TAG, 1))
        return int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # broken EXIF is common in the wild; ignore it rather than refuse the image
        return 1


Header = tuple[Image.Image, str, int]  # an opened image (not decoded), its format and its frames


def probe(data: bytes, limits: Limits) -> ImageInfo:
    """Identify format, oriented size and the decoded array's channels from the header alone."""
    return probe_header(data, limits)[0]


def probe_header(data: bytes, limits: Limits) -> tuple[ImageInfo, Header]:
    """probe(), and the opened header, for one decode to start from (decode(header=)): parsed once."""
    header = _open(data, limits)
    img, fmt, frames = header
    width, height = img.size
    if orientation(img) in (5, 6, 7, 8):
        width, height = height, width
    channels = 4 if img.mode == "P" and "transparency" in img.info else _CHANNELS.get(img.mode, 3)
    return ImageInfo(fmt, width, height, channels, img.mode.startswith(_DEEP), frames), header


def _plain(img: Image.Image) -> bool:
    return (img.mode in ("RGB", "L") and not img.info.get("icc_profile")
            and orientation(img) == 1)


def decode(data: bytes, limits: Limits, shrink_to: tuple[int, int] | None = None, luma: bool = False,
           header: Header | None = None) -> Decoded:
    """Fully decode the first frame. Truncated or corrupt streams raise CorruptImage.

    shrink_to (width, height, after orientation): the caller will only shrink to this size, so a
    JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling), never below it.
    luma: the caller wants grayscale next, so a plain JPEG may return its own Y plane (H, W): no chroma
    upsampling, no colour conversion (the luma of the stored YCbCr; see transforms.grayscale).
    header: this data's, from probe_header, when not used by another decode (decoding consumes it). It
    spares a plain JPEG a second parse; other images are opened afresh, since Pillow loads their pixels into
    the opened image, which the caller's header would keep alive beyond this decode.
    """
    plain = header is not None and header[0].format == "JPEG" and _plain(header[0])
    img, fmt, frames = header if plain else _open(data, limits)  # type: ignore[misc]
    full_width = img.size[0]
    try:
        if shrink_to and fmt == "JPEG":
            width, height = shrink_to
            if orientation(img) in (5, 6, 7, 8):
                width, height = height, width
            img.draft(img.mode, (width, height))
        # A plain JPEG (its pixels already what we serve; not an MPO) skips Pillow: see transforms.jpeg.
        pixels = jpeg.decompress(data, full_width, *img.size, gray=luma or img.mode == "L") \
            if img.format == "JPEG" and _plain(img) else None
        if pixels is None:
            img.load()
            pixels = _normalise(_orient(img))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"decompression bomb refused: {exc}") from None
    except MemoryError:
        raise ImageTooLarge("image needs more memory than allowed to decode") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, ImageCms.PyCMSError) as exc:
        raise CorruptImage(f"corrupt or truncated {fmt} data: {exc}") from None
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return Decoded(ImageInfo(fmt, pixels.shape[1], pixels.shape[0], channels, frames=frames), pixels)


def validate(data: bytes, limits: Limits) -> Decoded:
    """What an upload must pass to be stored: a full decode, and (JPEG, PNG) every row the header
    promises present in the data (see transforms.integrity). Returns the decode."""
    decoded = decode(data, limits)
    if decoded.info.format == "PNG":
        check_png(data)
    elif decoded.info.format == "JPEG":
        check_jpeg(data, cmyk=Image.open(io.BytesIO(data)).mode == "CMYK")
    return decoded


def _orient(img: Image.Image) -> Image.Image:
    # In place: without it Pillow returns a full copy even when there is nothing to rotate.
    # A malformed EXIF block must not cost the user their image.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(img, in_place=True)
    return img


def _normalise(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _scale_16bit(np.asarray(img))
    if mode == "F":
        return np.clip(np.asarray(img), 0, 255).round().astype(np.uint8)
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"))
    if mode in ("LA", "La", "PA", "P"):
        has_alpha = mode != "P" or "transparency" in img.info
        if mode == "LA" or mode == "La":
            return np.asarray(img.convert("LA"))
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
    icc = img.info.get("icc_profile")
    if icc and mode in ("RGB", "RGBA", "CMYK"):
        return np.asarray(_to_srgb(img, icc))
    if mode == "LAB":
        lab = ImageCms.createProfile("LAB")
        return np.asarray(ImageCms.profileToProfile(img, lab, _SRGB, outputMode="RGB"))
    if mode in ("RGB", "RGBA"):
        return np.asarray(img)
    if mode in ("RGBa",):
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))  # CMYK without profile, YCbCr, RGBX, HSV


def _to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError):
        return img.convert(out_mode)  # unreadable profile: fall back to the plain conversion
    return ImageCms.profileToProfile(img, src, _SRGB, outputMode=out_mode) or img


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Map 0..65535 to 0..255 with rounding (v * 255 / 65535); Pillow's convert('L') clips."""
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def animation_frames(data: bytes, limits: Limits) -> Iterator[tuple[np.ndarray, int]]:
    """An animation's frames one at a time, each composited onto the canvas as RGBA, with its duration
    in ms. Limits were checked from the headers before the first frame is decoded."""
    img, fmt, frames = _open(data, limits)
    try:
        for index in range(frames):
            img.seek(index)
            yield np.asarray(img.convert("RGBA")), int(img.info.get("duration") or 0)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise CorruptImage(f"corrupt or truncated {fmt} frame: {exc}") from None


def animation_loop(data: bytes, limits: Limits) -> int | None:
    """How often the animation repeats (0: forever), or None when the file says nothing (play once)."""
    img, _, _ = _open(data, limits)
    loop = img.info.get("loop")
    return None if loop is None else int(loop)
