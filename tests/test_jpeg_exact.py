"""Exact JPEG answers (transforms.jpeg_exact): the original's own coefficients, moved or cut to the luma.

Pixels are checked against independent references: the decoded original (flipped with numpy, oriented with
Pillow's exif_transpose) and its luma as libjpeg decodes it. Within 3 levels: IDCT rounding and chroma
upsampling of the moved blocks, nothing more.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from tests.images import encoded, photo, pixels_of
from transforms import EncodeOptions, ImageError, Limits, parse, run
from transforms import jpeg_exact as je
from transforms.decode import validate

LIMIT = Limits(10**8)
AUTO, ALWAYS, NEVER = (EncodeOptions(jpeg_lossless=policy) for policy in je.POLICIES)
ROUTES = {"jpeg": "", "mirror": "mirror", "grayscale": "grayscale"}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# The same colours, described as another profile: what "not sRGB" is told by.
OTHER_RGB = SRGB.replace("sRGB".encode("utf-16-be"), "Wide".encode("utf-16-be"))
LAYOUTS = {  # each as the original is stored; all q80, under the default output quality (85)
    "4:2:0": {"subsampling": "4:2:0"},
    "4:2:2": {"subsampling": "4:2:2"},
    "4:4:4": {"subsampling": "4:4:4"},
    "gray": {"mode": "L"},
    "progressive": {"progressive": True},
    "restart markers": {"restart_marker_blocks": 3},
}


def original(width: int = 320, height: int = 240, seed: int = 1, mode: str = "RGB", quality: int = 80,
             **params: object) -> bytes:
    img = Image.fromarray(photo(width, height, seed))
    return encoded(img.convert(mode), "JPEG", quality=quality, **params)


def render(data: bytes, route: str, options: EncodeOptions = AUTO, **output: str):
    return run(data, parse(ROUTES[route], "jpeg", **output), limits=LIMIT, options=options)


def stages(rendered) -> list[str]:
    return [stage for stage, _ in rendered.timings]


def luma(data: bytes) -> np.ndarray:
    """The original's Y plane as libjpeg decodes it (no colour conversion)."""
    img = Image.open(io.BytesIO(data))
    img.draft("L", img.size)
    return np.asarray(img.convert("L"))


def error(got: bytes, expected: np.ndarray) -> int:
    return int(np.abs(pixels_of(got).astype(int) - expected.astype(int)).max())


@pytest.mark.parametrize("quality", range(50, 101))
def test_estimated_quality_is_within_two(quality):
    for params in ({}, {"subsampling": "4:4:4"}, {"mode": "L"}):
        data = original(64, 48, quality=quality, **params)
        assert abs(je.estimate_quality(Image.open(io.BytesIO(data)).quantization) - quality) <= 2, params


@pytest.mark.parametrize("layout", LAYOUTS)
def test_exact_answers_are_the_originals_pixels_moved(layout):
    data = original(**LAYOUTS[layout])
    pixels = pixels_of(data)
    expected = {"jpeg": pixels, "mirror": pixels[:, ::-1], "grayscale": luma(data)}
    for route, reference in expected.items():
        out = render(data, route)
        assert stages(out) == ["exact"], route  # no decode, no encode
        assert error(out.data, reference) <= 3, route
        assert out.size == (320, 240) and out.format == "JPEG"
    mirrored = render(data, "mirror").data
    assert np.array_equal(pixels_of(render(mirrored, "mirror").data), pixels)  # twice is the original, exactly
    assert render(data, "jpeg").data == data  # nothing here to strip: the original's very bytes
    gray = Image.open(io.BytesIO(render(data, "grayscale").data))
    assert gray.mode == "L"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_a_lossless_move(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS
    data = original(320, 240, seed=orientation, exif=exif.tobytes())
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    for route, reference in {"jpeg": shown, "mirror": shown[:, ::-1], "grayscale": None}.items():
        out = render(data, route)
        assert stages(out) == ["exact"], route
        img = Image.open(io.BytesIO(out.data))
        assert img.size == out.size == (shown.shape[1], shown.shape[0]), route
        assert not img.getexif() and "exif" not in img.info, route  # no orientation left to apply twice, no GPS
        if reference is not None:
            assert error(out.data, reference) <= 3, route


def test_an_imperfect_move_falls_back_to_the_re_encode_paths_bytes():
    odd = original(321, 240)  # not whole 16-pixel MCUs across: a perfect flip can't move the edge blocks
    out = render(odd, "mirror")
    assert stages(out) == ["decode", "encode"] and out.data == render(odd, "mirror", NEVER).data
    exif = Image.Exif()
    exif[0x0112] = 6  # a quarter turn moves rows: 244 is not whole MCUs down
    turned = original(320, 244, exif=exif.tobytes())
    assert stages(render(turned, "jpeg")) == ["decode", "encode"]
    assert render(turned, "jpeg").data == render(turned, "jpeg", NEVER).data
    assert stages(render(odd, "jpeg")) == ["exact"]  # nothing moves: any size is exact
    assert stages(render(odd, "grayscale")) == ["exact"]


def test_policy_quality_and_colour_models_choose_the_path():
    fine = original(quality=92)
    assert stages(render(fine, "mirror")) == ["decode", "encode"]  # above the output's 85: a re-encode is smaller
    assert stages(render(fine, "mirror", ALWAYS)) == ["exact"]
    assert stages(render(fine, "mirror", **{"quality": "95"})) == ["exact"]  # the pipeline's quality counts
    assert stages(render(original(), "mirror", NEVER)) == ["decode", "encode"]
    cmyk = original(quality=70, mode="CMYK")
    assert stages(render(cmyk, "mirror", ALWAYS)) == ["decode", "encode"]
    for asked in ({"strip": "0"}, {"max_bytes": "100000"}):
        assert stages(render(original(), "mirror", **asked)) == ["decode", "encode"], asked
    assert stages(run(original(), parse("mirror,grayscale", "jpeg"), limits=LIMIT, options=AUTO))[0] == "decode"
    assert stages(run(original(), parse("mirror", "png"), limits=LIMIT, options=AUTO))[0] == "decode"


def test_an_rgb_coded_jpeg_has_no_luma_to_keep():
    data = original(keep_rgb=True)  # Adobe transform 0: the channels are R, G, B, not Y, Cb, Cr
    out = render(data, "grayscale")
    assert stages(out)[0] == "decode"  # the library would have kept all three: decoded instead
    assert Image.open(io.BytesIO(out.data)).mode == "L"
    assert stages(render(data, "mirror")) == ["exact"]


def test_metadata_leaves_nothing_but_the_profile_its_pixels_are_in():
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    data = original(exif=exif.tobytes(), icc_profile=SRGB, comment=b"taken at home", xmp=xmp)
    assert {"exif", "icc_profile", "comment", "xmp"} <= set(Image.open(io.BytesIO(data)).info)
    for route in ROUTES:
        out = render(data, route)
        assert stages(out) == ["exact"], route
        info = Image.open(io.BytesIO(out.data)).info
        assert not {"exif", "comment", "xmp"} & set(info), route
        assert b"Exif" not in out.data and b"taken at home" not in out.data and b"xmpmeta" not in out.data
        assert info.get("icc_profile") == (None if route == "grayscale" else SRGB), route
    other = original(icc_profile=OTHER_RGB)
    assert Image.open(io.BytesIO(render(other, "mirror").data)).info["icc_profile"] == OTHER_RGB
    assert stages(render(other, "grayscale"))[0] == "decode"  # a gray JPEG can't carry an RGB profile


def test_an_mpos_other_pictures_are_left_out():
    first, second = original(seed=3), original(seed=4, exif=b"Exif\x00\x00secret")
    out = render(first + second, "jpeg")  # what follows the first picture's EOI, as in an MPO
    assert stages(out) == ["exact"] and b"secret" not in out.data and len(out.data) <= len(first)


def test_progressive_output_on_request_and_the_same_bytes_whatever_came_before():
    data = original()
    plain = render(data, "mirror").data
    progressive = render(data, "mirror", progressive="1").data
    assert Image.open(io.BytesIO(progressive)).info.get("progressive")
    assert not Image.open(io.BytesIO(plain)).info.get("progressive")
    assert error(progressive, pixels_of(plain)) == 0  # the same coefficients, in other scans
    assert render(data, "mirror").data == plain  # a progressive transform before leaves no state behind
    as_is = render(data, "jpeg", progressive="1")
    assert stages(as_is) == ["exact"] and Image.open(io.BytesIO(as_is.data)).info.get("progressive")


def test_damaged_jpegs_are_refused_or_answered_never_crash():
    """Truncations and bit flips: what upload validation lets in is answered with a JPEG that decodes; the
    exact path never raises anything but an ImageError, even on what validation would have refused."""
    rng = random.Random(7)
    sources = [original(96, 64, seed=s, **params) for s, params in enumerate(LAYOUTS.values())]
    answered = refused = 0
    for n in range(300):
        data = bytearray(rng.choice(sources))
        if n % 2:
            del data[rng.randrange(2, len(data)):]
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(2, len(data))] = rng.randrange(256)
        try:
            out = render(bytes(data), rng.choice(list(ROUTES)), ALWAYS)
            validate(bytes(data), LIMIT)
        except ImageError:
            refused += 1
            continue
        Image.open(io.BytesIO(out.data)).load()
        answered += 1
    assert answered and refused


def test_the_op_table_composes_orientation_and_mirror():
    probe = np.arange(12).reshape(3, 4)
    assert {je.OPS[o, False] for o in range(1, 9)} == set(range(8))  # each orientation its own move
    for orientation in range(1, 9):
        assert je.OPS[orientation, True] != je.OPS[orientation, False]
    assert je.OPS[6, False] == je.ROT90 and je.OPS[2, True] == je.NONE and je.OPS[1, True] == je.HFLIP
    assert np.array_equal(np.rot90(probe, -1)[:, ::-1], probe.T)  # orientation 6, then mirrored: a transpose
    assert je.OPS[6, True] == je.TRANSPOSE
