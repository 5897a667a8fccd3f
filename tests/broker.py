"""A test-side RabbitMQ producer for the batch and metrics tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pika

from deployments.batch import amqp


class Broker:
    """A test-side producer: publish with confirms, wait for replies, read the dead-letter queue."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
        self.channel = self.connection.channel()
        amqp.declare(self.channel, settings.amqp_queue)
        self.channel.confirm_delivery()
        self.replies = self.channel.queue_declare("", exclusive=True).method.queue
        self.received: dict[str, dict[str, Any]] = {}  # replies that arrived while waiting for another

    def publish(self, body: bytes, content_type: str = "application/json", headers: dict | None = None,
                reply: bool = True, message_id: str | None = None) -> str:
        correlation_id = uuid.uuid4().hex
        self.channel.basic_publish("", self.settings.amqp_queue, body, pika.BasicProperties(
            content_type=content_type, headers=headers or {}, correlation_id=correlation_id,
            message_id=message_id, reply_to=self.replies if reply else None, delivery_mode=2))
        return correlation_id

    def job(self, image_ids: list[str], operations: list[str], **extra: Any) -> str:
        return self.publish(json.dumps({"items": [{"image_id": i} for i in image_ids],
                                        "operations": operations, **extra}).encode())

    def reply(self, correlation_id: str, timeout_s: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while correlation_id not in self.received and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(self.replies, auto_ack=True)
            if method is None:
                self.connection.sleep(0.1)
            else:
                self.received[properties.correlation_id] = json.loads(body)
        if correlation_id in self.received:
            return self.received.pop(correlation_id)
        raise AssertionError(f"no reply for {correlation_id} within {timeout_s} s")

    def dead_letters(self, expected: int, timeout_s: float = 60) -> list[tuple[Any, bytes]]:
        found: list[tuple[Any, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(amqp.dead_queue(self.settings.amqp_queue),
                                                              auto_ack=True)
            if method is None:
                self.connection.sleep(0.2)
            else:
                found.append((properties, body))
        return found

    def close(self) -> None:
        self.connection.close()
