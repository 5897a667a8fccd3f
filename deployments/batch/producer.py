"""`prog-image batch submit`: publish jobs with publisher confirms, optionally wait for the results."""

from __future__ import annotations

import json
import mimetypes
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
from tqdm import tqdm

from deployments.batch import amqp
from deployments.batch.messages import derived_job_id, parse_operations
from storage.keys import is_image_id


@dataclass
class Submission:
    """What was published, and (with --wait) what came back, by correlation id."""

    sent: dict[str, str] = field(default_factory=dict)  # correlation id -> what it was (file or "N ids")
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def submit(sources: list[str], operations: str, *, amqp_url: str, queue: str, wait: bool,
           timeout_s: float = 600.0) -> Submission:
    ops = parse_operations(operations)
    ids = [s for s in sources if is_image_id(s)]
    files = [f for s in sources if not is_image_id(s) for f in _files(Path(s))]
    connection = pika.BlockingConnection(amqp.connection_parameters(amqp_url, "prog-image-producer"))
    channel = connection.channel()
    amqp.declare(channel, queue)
    channel.confirm_delivery()  # basic_publish raises if the broker does not take the message
    reply_to = channel.queue_declare("", exclusive=True).method.queue if wait else None
    done = Submission()
    try:
        for path in files:
            body = path.read_bytes()
            _publish(channel, queue, body, done, str(path), reply_to,
                     content_type=mimetypes.guess_type(path.name)[0] or "image/octet-stream",
                     headers={"x-operations": ",".join(ops)},
                     message_id=derived_job_id(None, body, ",".join(ops)))
        if ids:
            body = json.dumps({"items": [{"image_id": i} for i in ids], "operations": ops}).encode()
            _publish(channel, queue, body, done, f"{len(ids)} image ids", reply_to,
                     content_type="application/json", headers={}, message_id=derived_job_id(None, body))
        if wait and reply_to:
            _collect(connection, channel, reply_to, done, timeout_s)
    finally:
        connection.close()
    return done


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if path.is_file():
        return [path]
    raise SystemExit(f"{path}: not a file, a directory or an image id")


def _publish(channel: Any, queue: str, body: bytes, done: Submission, label: str, reply_to: str | None,
             *, content_type: str, headers: dict[str, str], message_id: str) -> None:
    correlation_id = uuid.uuid4().hex
    channel.basic_publish("", queue, body, pika.BasicProperties(
        content_type=content_type, headers=headers, message_id=message_id, correlation_id=correlation_id,
        reply_to=reply_to, delivery_mode=pika.DeliveryMode.Persistent), mandatory=True)
    done.sent[correlation_id] = label


def _collect(connection: Any, channel: Any, reply_to: str, done: Submission, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with tqdm(total=len(done.sent), unit="job", file=sys.stderr) as bar:
        for method, properties, body in channel.consume(reply_to, inactivity_timeout=1):
            if method is not None and properties.correlation_id in done.sent:
                done.results[properties.correlation_id] = json.loads(body)
                channel.basic_ack(method.delivery_tag)
                bar.update(1)
            if len(done.results) == len(done.sent) or time.monotonic() > deadline:
                break
        channel.cancel()


def summary(done: Submission) -> str:
    rows = [("source", "job", "state", "ok", "failed")]
    for correlation_id, label in done.sent.items():
        result = done.results.get(correlation_id, {})
        progress = result.get("progress", {})
        rows.append((label, str(result.get("job_id", "-"))[:40], result.get("state", "no reply"),
                     str(progress.get("done", "-")), str(progress.get("failed", "-"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
