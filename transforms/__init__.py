"""Pure image operations and codecs: numpy arrays and bytes in, arrays and bytes out. No I/O."""

from transforms.decode import Decoded, ImageInfo, decode, probe
from transforms.encode import EncodeOptions, encode
from transforms.errors import CorruptImage, EmptyImage, ImageError, ImageTooLarge, UnsupportedFormat
from transforms.grayscale import grayscale
from transforms.mirror import mirror
from transforms.operations import OPERATIONS, render
from transforms.pipeline import Pipeline, PipelineError, Rendered, Step, parse, run

__all__ = [
    "OPERATIONS", "CorruptImage", "Decoded", "EmptyImage", "EncodeOptions", "ImageError", "ImageInfo",
    "ImageTooLarge", "Pipeline", "PipelineError", "Rendered", "Step", "UnsupportedFormat", "decode", "encode",
    "grayscale", "mirror", "parse", "probe", "render", "run",
]
