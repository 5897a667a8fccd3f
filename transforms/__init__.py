"""Pure image operations and codecs: numpy arrays and bytes in, arrays and bytes out. No I/O."""

from transforms.decode import Decoded, ImageInfo, decode, probe
from transforms.encode import EncodeOptions, encode
from transforms.errors import CorruptImage, EmptyImage, ImageError, ImageTooLarge, UnsupportedFormat
from transforms.grayscale import grayscale
from transforms.mirror import mirror
from transforms.operations import OPERATIONS, Operation, Rendered, render

__all__ = [
    "OPERATIONS", "CorruptImage", "Decoded", "EmptyImage", "EncodeOptions", "ImageError", "ImageInfo",
    "ImageTooLarge", "Operation", "Rendered", "UnsupportedFormat", "decode", "encode", "grayscale",
    "mirror", "probe", "render",
]
