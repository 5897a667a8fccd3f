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
