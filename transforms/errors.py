"""The one domain error: ImageError, with a stable code. Nothing here knows HTTP; the ingress maps
codes to statuses in one table (deployments.errors.STATUS)."""

from __future__ import annotations


class ImageError(Exception):
    """An image, or a request for one, that we cannot or will not serve. Never a server fault."""

    code: str = "bad_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EmptyImage(ImageError):
    code = "empty_file"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"


class CorruptImage(ImageError):
    code = "corrupt_image"


class ImageTooLarge(ImageError):
    """Too many pixels: refused from the header, before any decode (a decompression bomb)."""

    code = "image_too_large"


class TooComplex(ImageError):
    """Too much work for its size, seen before decoding: too many frames or progressive scans."""

    code = "image_too_complex"


class OutputTooLarge(ImageError):
    """A step would make an image above the output limit (an upscale, a huge canvas)."""

    code = "output_too_large"


class OverBudget(ImageError):
    """The render's planned memory is above the per-render budget."""

    code = "over_budget"


class NotFound(ImageError):
    """No stored image by that id (or it was deleted while it was read)."""

    code = "not_found"


class RenderTimeout(ImageError):
    """The render's deadline passed; it stopped between two stages and nothing of it is kept."""

    code = "timeout"


class Overloaded(ImageError):
    """No room to render now (the memory budget is held by other renders until the deadline): retry shortly."""

    code = "overloaded"


class Unavailable(ImageError):
    """A backing service (the database, a replica) is away for now: retry shortly; nothing is lost."""

    code = "unavailable"
