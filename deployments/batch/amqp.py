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


def publish(url: str, queue: str, body: bytes, *, message_id: str, name: str) -> None:
    """Publish one persistent JSON job and wait for the broker's confirm (raises if it is not taken)."""
    with pika.BlockingConnection(connection_parameters(url, name)) as connection:
        channel = connection.channel()
        declare(channel, queue)
        channel.confirm_delivery()
        channel.basic_publish("", queue, body, pika.BasicProperties(
            content_type="application/json", message_id=message_id, delivery_mode=pika.DeliveryMode.Persistent),
            mandatory=True)
