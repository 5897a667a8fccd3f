"""Pure image operations and codecs: numpy arrays and bytes in, arrays and bytes out. No I/O."""

from transforms.decode import Decoded, ImageInfo, decode, probe, validate
from transforms.encode import EncodeOptions, encode
from transforms.errors import (
    CorruptImage,
    EmptyImage,
    ImageError,
    ImageTooLarge,
    NotFound,
    OutputTooLarge,
    OverBudget,
    Overloaded,
    RenderTimeout,
    TooComplex,
    Unavailable,
    UnsupportedFormat,
)
from transforms.grayscale import grayscale
from transforms.limits import Limits, Plan
from transforms.mirror import mirror
from transforms.operations import OPERATIONS, render
from transforms.pipeline import Pipeline, PipelineError, Rendered, Step, grammar, parse, plan, run, run_many

__all__ = [
    "OPERATIONS", "CorruptImage", "Decoded", "EmptyImage", "EncodeOptions", "ImageError", "ImageInfo",
    "ImageTooLarge", "Limits", "NotFound", "OutputTooLarge", "OverBudget", "Overloaded", "Pipeline", "PipelineError",
    "Plan", "RenderTimeout", "Rendered", "Step", "TooComplex", "Unavailable", "UnsupportedFormat", "decode", "encode",
    "grammar", "grayscale", "mirror", "parse", "plan", "probe", "render", "run", "run_many", "validate",
]
