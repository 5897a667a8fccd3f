"""Errors raised for images we refuse. Each carries the HTTP status and a stable code."""

from __future__ import annotations


class ImageError(Exception):
    """An input image we cannot or will not process. Never a server fault."""

    status: int = 400
    code: str = "bad_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EmptyImage(ImageError):
    code = "empty_file"


class UnsupportedFormat(ImageError):
    status = 415
    code = "unsupported_format"


class CorruptImage(ImageError):
    code = "corrupt_image"


class ImageTooLarge(ImageError):
    """Too many pixels: refused from the header, before any decode (a decompression bomb)."""

    status = 422
    code = "image_too_large"


class TooComplex(ImageError):
    """Too much work for its size, seen before decoding: too many frames or progressive scans."""

    status = 422
    code = "image_too_complex"


class OutputTooLarge(ImageError):
    """A step would make an image above the output limit (an upscale, a huge canvas)."""

    status = 422
    code = "output_too_large"


class OverBudget(ImageError):
    """The render's planned memory is above the per-render budget."""

    status = 422
    code = "over_budget"


class RenderTimeout(ImageError):
    """The render's deadline passed; it stopped between two stages and nothing of it is kept."""

    status = 503
    code = "timeout"
