"""RabbitMQ topology shared by the bridge and producers: declared the same way by both."""

from __future__ import annotations

import pika
from pika.adapters.blocking_connection import BlockingChannel


def dead_queue(queue: str) -> str:
    return f"{queue}.dead"


def dead_exchange(queue: str) -> str:
    return f"{queue}.dlx"


def connection_parameters(url: str, name: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": name}
    params.heartbeat = 30
    params.blocked_connection_timeout = 60
    return params


def declare(channel: BlockingChannel, queue: str) -> None:
    """Durable job queue whose rejected messages go to a durable dead-letter queue."""
    channel.exchange_declare(dead_exchange(queue), exchange_type="direct", durable=True)
    channel.queue_declare(dead_queue(queue), durable=True)
    channel.queue_bind(dead_queue(queue), dead_exchange(queue), routing_key=dead_queue(queue))
    channel.queue_declare(queue, durable=True, arguments={
        "x-dead-letter-exchange": dead_exchange(queue),
        "x-dead-letter-routing-key": dead_queue(queue),
    })
