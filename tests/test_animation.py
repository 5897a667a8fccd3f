"""Animated GIF and WebP keep every frame, its duration and the loop count, through every operation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.test_api import upload
from transforms import EncodeOptions, Limits, parse, plan, run
from transforms.decode import animation_frames, animation_loop

DURATIONS = [40 + 10 * i for i in range(10)]


def frames(count: int = 10, size: tuple[int, int] = (80, 60)) -> list[np.ndarray]:
    """Frame i: a red column at x = 8i, a green square top left, a transparent corner bottom right."""
    width, height = size
    out = []
    for i in range(count):
        frame = np.zeros((height, width, 4), np.uint8)
        frame[..., 3] = 255
        frame[:, 8 * i:8 * i + 8] = (255, 0, 0, 255)
        frame[:10, :10] = (0, 255, 0, 255)
        frame[-10:, -10:, 3] = 0
        out.append(frame)
    return out


def animated(fmt: str, loop: int | None = 0) -> bytes:
    images = [Image.fromarray(frame) for frame in frames()]
    out = io.BytesIO()
    extra = {"loop": loop} if loop is not None else {}
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=DURATIONS,
                   **({"disposal": 2} if fmt == "GIF" else {}), **extra)
    return out.getvalue()


def played(data: bytes) -> tuple[list[np.ndarray], list[int], int | None]:
    decoded = list(animation_frames(data, Limits()))
    return [pixels for pixels, _ in decoded], [duration for _, duration in decoded], animation_loop(data, Limits())


@pytest.mark.parametrize("source", ["GIF", "WEBP"])
@pytest.mark.parametrize(("ops", "fmt", "expected_format"), [
    ("mirror", None, None), ("grayscale", None, None), ("resize:w=40", "webp", "WEBP"),
    ("rotate:deg=90", "gif", "GIF"), ("mirror", "png", "PNG"),
])
def test_every_frame_goes_through_the_steps(source, ops, fmt, expected_format):
    out = run(animated(source, loop=3), parse(ops, fmt), limits=Limits(), options=EncodeOptions())
    assert out.format == (expected_format or source)
    got, durations, loop = played(out.data)
    assert len(got) == 10 and durations == DURATIONS and loop == 3
    for i, frame in enumerate(got):
        if ops == "mirror":  # the red column moved to the mirrored place, in every frame
            column = frame[30, 80 - 8 * i - 4]
            assert column[0] > 200 and column[1] < 60, (i, column)
            assert frame[2, 2, 3] == 255 and frame[2, -3, 1] > 200  # the green square is top right
            assert frame[-3, 2, 3] == 0  # the transparent corner too: alpha kept
        elif ops == "grayscale":
            assert np.abs(frame[..., 0].astype(int) - frame[..., 1]).max() <= 2
        elif ops == "resize:w=40":
            assert frame.shape[:2] == (30, 40)
        elif ops == "rotate:deg=90":
            assert frame.shape[:2] == (80, 60)


def test_a_still_output_takes_the_first_frame():
    out = run(animated("GIF"), parse("mirror", "jpeg"), limits=Limits(), options=EncodeOptions())
    still = Image.open(io.BytesIO(out.data))
    assert still.format == "JPEG" and getattr(still, "n_frames", 1) == 1
    assert np.asarray(still)[30, 76, 0] > 200  # frame 0's red column (x 0-7), mirrored


def test_a_gif_without_a_loop_plays_once_still():
    out = run(animated("GIF", loop=None), parse("mirror"), limits=Limits(), options=EncodeOptions())
    assert played(out.data)[2] is None


def test_the_plan_holds_room_for_every_frame():
    data = animated("GIF")
    one_frame = plan(data, parse("mirror", "jpeg"), Limits())
    every_frame = plan(data, parse("mirror"), Limits())
    assert every_frame.held_bytes >= 10 * 80 * 60 * 4 and one_frame.held_bytes == 0


@pytest.mark.usefixtures("service")
def test_an_animated_gif_over_http(client):
    record = upload(client, animated("GIF"), "anim.gif")
    assert record["format"] == "GIF" and record["frames"] == 10
    mirrored = client.get(f"/{record['image_id']}/mirror")
    assert mirrored.headers["content-type"] == "image/gif"
    got, durations, loop = played(mirrored.content)
    assert len(got) == 10 and durations == DURATIONS and loop == 0
    webp = client.get(f"/{record['image_id']}/process", params={"ops": "grayscale,resize:w=40", "format": "webp"})
    assert webp.headers["content-type"] == "image/webp" and len(played(webp.content)[0]) == 10
    png = client.get(f"/{record['image_id']}/png")
    assert Image.open(io.BytesIO(png.content)).n_frames == 10  # APNG
    jpeg = client.get(f"/{record['image_id']}/jpeg")
    assert getattr(Image.open(io.BytesIO(jpeg.content)), "n_frames", 1) == 1


@pytest.mark.usefixtures("service")
def test_an_animated_gif_in_a_batch_job(client, store, broker):
    record = upload(client, animated("WEBP"), "anim.webp")
    reply = broker.reply(broker.job([record["image_id"]], ["mirror", "grayscale"], job_id="animated-job"))
    assert reply["state"] == "done", reply
    for op in ("mirror", "grayscale"):
        stored = store.find(f"{record['image_id']}/{op}")
        assert stored.content_type == "image/webp"
        got, durations, _ = played(store.read(stored))
        assert len(got) == 10 and durations == DURATIONS
