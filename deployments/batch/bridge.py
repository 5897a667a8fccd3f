"""The RabbitMQ bridge: consumes batch jobs and runs them on the same Transformer as HTTP.

Why a dedicated thread with pika's BlockingConnection: pika connections are not thread-safe, and
a job is a long blocking sequence (Mongo reads, many transform calls). One thread owns the
connection and does nothing but I/O: it keeps heartbeats flowing however long a job takes, and
hands each delivery to a worker pool as large as the prefetch. Workers never touch the channel;
they schedule the reply, dead-letter and ack back onto the connection's thread with
add_callback_threadsafe, which is the pattern pika documents for threaded consumers.
SelectConnection would need the whole job written as callbacks, and pika's asyncio adapter would
put AMQP I/O on the replica's event loop, where a slow Mongo call could starve heartbeats.

Guarantees: manual acks, sent only after every result and the job state are in MongoDB; results
have deterministic ids, so a redelivery stores nothing twice; a message that can never succeed
is published to the dead-letter queue with an x-error header (confirmed) and then acked; a
transient failure (MongoDB or the cluster away) is retried with backoff, then returned to the
queue (nack with requeue) to wait for the next attempt: an outage loses and dead-letters nothing;
a lost connection is re-opened with backoff, and its unacked messages come back from the broker
to be finished idempotently.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pymongo.errors import PyMongoError
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from deployments.batch import amqp
from deployments.batch.messages import InvalidJob, derived_job_id, expanded, parse_json_job, parse_operations
from deployments.config import Settings
from deployments.metrics import metrics
from deployments.presets import all_presets
from deployments.render.variants import job_result_path
from storage import ImageStore
from storage.jobs import JobStore
from storage.presets import PresetStore
from transforms import ImageError, Overloaded, Unavailable
from transforms.pipeline import Preset

log = logging.getLogger("ray.serve")
T = TypeVar("T")

# Worth retrying: the database, the cluster or a deadline hiccuped. Anything else is permanent.
TRANSIENT = (PyMongoError, BackPressureError, RayActorError, TimeoutError, ConnectionError, Overloaded, Unavailable)
PROGRESS_EVERY_S = 0.25  # a job's progress is written at most this often (results in bulk)
ITEMS_PER_CALL = 8  # items a transform replica renders per call, at most: fewer calls, lookups and writes
WINDOW_CHECK_S = 2.0  # during a job, the transform replicas are counted again at most this often


def running_replicas(handle: DeploymentHandle) -> int:
    """Replicas of the handle's deployment running now, as the Serve controller counts them."""
    overview = serve.status().applications[handle.app_name].deployments[handle.deployment_name]
    return overview.replica_states.get("RUNNING", 0)  # its keys are a str enum, private to Serve


class JobRunner:
    """Turns one message into stored results and a result document. No AMQP here.

    It runs on worker threads, but handle calls must be made on the replica's event loop (Serve's
    throughput-optimised mode requires it), so each is sent there and waited for here.
    """

    def __init__(self, transformer: DeploymentHandle, settings: Settings, loop: asyncio.AbstractEventLoop,
                 store: ImageStore | None = None, jobs: JobStore | None = None,
                 replicas: Callable[[], int] | None = None) -> None:
        """store and jobs: the configured MongoDB's unless given (tests give in-memory ones). replicas: how
        many transform replicas run now (the Serve controller's count unless given)."""
        self.transformer = transformer
        self.replicas = replicas or functools.partial(running_replicas, transformer)
        self.counted: int | None = None  # the last count of the transform replicas (None: it could not be had)
        self.settings = settings
        self.loop = loop
        self.store = store or ImageStore(settings.mongo_url, settings.mongo_db)
        self.jobs = jobs or JobStore(self.store)

    def run(self, properties: pika.BasicProperties, body: bytes) -> dict[str, Any]:
        # Presets are read once per job, and only for a job that names one.
        presets = all_presets(self.settings, PresetStore(self.store)) if b"preset:" in body else {}
        job_id, image_ids, operations = self._parse(properties, body, presets)
        renders = [expanded(op, presets) for op in operations]  # the transforms need no presets
        found = self.store.find_many(list(dict.fromkeys(image_ids)))  # one query for the whole job
        missing = [image_id for image_id in dict.fromkeys(image_ids) if image_id not in found]
        if missing:
            raise InvalidJob(f"unknown image id(s): {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
        doc = self.jobs.begin(job_id, image_ids, operations)
        if doc["state"] in ("done", "failed"):  # redelivered after we finished: only the ack was lost
            return self._result(doc)
        self.jobs.set_state(job_id, "running")
        # A redelivery renders only the items without every result (stored ones are found, not redone).
        todo = [index for index, item in enumerate(doc["items"]) if len(item["results"]) < len(operations)]
        self._on_loop(lambda: self._render_items(job_id, image_ids, todo, operations, renders))
        return self._result(self.jobs.finish(job_id))

    async def _render_items(self, job_id: str, image_ids: list[str], todo: list[int], operations: list[str],
                            renders: list[str]) -> None:
        """Items (one original, every operation) in calls of a few, each to a transform replica anywhere in
        the cluster, as many calls at once as the running replicas take (see window); results are written
        in bulk, at most every PROGRESS_EVERY_S. The first transient failure stops the rest (the job is
        retried; what was stored is found then)."""
        window, checked = await asyncio.to_thread(self.window), time.monotonic()
        size = min(ITEMS_PER_CALL, -(-len(todo) // (2 * window)))  # at least two calls per place to run one
        in_flight, freed = 0, asyncio.Event()
        landed: list[tuple[int, str, dict[str, Any]]] = []
        flushed = time.monotonic()
        writing = asyncio.Lock()

        async def flush() -> None:
            nonlocal flushed
            async with writing:
                batch, landed[:] = landed[:], []
                flushed = time.monotonic()
                if batch:
                    await asyncio.to_thread(self.jobs.record_many, job_id, batch)

        async def call(indexes: list[int]) -> None:
            nonlocal in_flight
            ids = [image_ids[index] for index in indexes]
            deadline = time.time() + self.settings.request_timeout_s
            try:
                outcomes = await asyncio.wait_for(self.transformer.render_items.remote(ids, renders, deadline),
                                                  self.settings.request_timeout_s + 2)
            except ImageError as exc:  # these items can't be done (unless it is transient); the rest go on
                if isinstance(exc, TRANSIENT):
                    raise
                outcomes = [[{"status": "failed", "error": f"{exc.code}: {exc.message}"}] * len(renders)] * len(ids)
            finally:
                in_flight -= 1
                freed.set()
            for index, image_id, item in zip(indexes, ids, outcomes, strict=True):
                for op, outcome in zip(operations, item, strict=True):
                    landed.append((index, op, self._described(image_id, op, outcome)))
            if time.monotonic() - flushed >= PROGRESS_EVERY_S:
                await flush()

        try:
            async with asyncio.TaskGroup() as group:
                for start in range(0, len(todo), size):
                    while in_flight >= window:
                        freed.clear()
                        await freed.wait()
                        if time.monotonic() - checked > WINDOW_CHECK_S:  # replicas come and go meanwhile
                            window, checked = await asyncio.to_thread(self.window), time.monotonic()
                    in_flight += 1
                    group.create_task(call(todo[start:start + size]))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        await flush()

    def window(self) -> int:
        """Calls the running transform replicas take at once: no more are sent, so none waits in this
        caller's router, where a waiting call probes the replicas' queues every 25 ms (app.py's backoff).
        Sending twice as many as there were places spent a fifth of a batch's CPU on that probing (measured
        with bench/batch.py's CPU split). The autoscaler adds replicas to full ones (transform_target_ongoing
        is below transform_max_ongoing), and the window grows with them."""
        try:
            self.counted = self.replicas()
        except Exception as exc:  # the controller is busy or restarting: assume the fewest
            log.warning("could not count the transform replicas (%r); assuming the minimum", exc)
            self.counted = None
        running = self.settings.transform_min_replicas if self.counted is None else self.counted
        return max(1, running) * self.settings.transform_max_ongoing

    def _described(self, image_id: str, op: str, outcome: dict[str, Any]) -> dict[str, Any]:
        """A stored result with the URL that serves it."""
        if outcome["status"] != "ok":
            return outcome
        base = self.settings.public_url or f"http://{self.settings.http_host}:{self.settings.http_port}"
        return {**outcome, "url": base + job_result_path(image_id, op)}

    def _on_loop(self, make: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result()

    def _parse(self, properties: pika.BasicProperties, body: bytes,
               presets: dict[str, Preset]) -> tuple[str, list[str], list[str]]:
        content_type = (properties.content_type or "").split(";")[0].strip().lower()
        headers = properties.headers or {}
        if content_type.startswith("image/"):
            try:
                operations = parse_operations(str(headers.get("x-operations", "")))
            except ValueError as exc:
                raise InvalidJob(f"x-operations header: {exc}") from None
            if len(body) > self.settings.max_upload_bytes:
                raise InvalidJob(f"image is larger than {self.settings.max_upload_bytes} bytes")
            try:
                record = self._on_loop(lambda: asyncio.wait_for(self.transformer.ingest.remote(body),
                                                                self.settings.request_timeout_s))
            except ImageError as exc:
                if isinstance(exc, TRANSIENT):
                    raise
                raise InvalidJob(f"{exc.code}: {exc.message}") from None
            job_id = str(headers.get("x-job-id") or derived_job_id(properties.message_id, body, ",".join(operations)))
            return job_id, [record["image_id"]], operations
        if content_type in ("application/json", ""):
            job = parse_json_job(body, presets)
            return (job.job_id or derived_job_id(properties.message_id, body),
                    [item.image_id for item in job.items], job.operations)
        raise InvalidJob(f"unsupported content_type {content_type!r}: use application/json or image/*")

    @staticmethod
    def _result(doc: dict[str, Any]) -> dict[str, Any]:
        return {"job_id": doc["_id"], "state": doc["state"], "progress": doc["progress"],
                "operations": doc["operations"], "items": doc["items"]}


@serve.deployment
class Bridge:
    async def __init__(self, transformer: DeploymentHandle, settings: Settings) -> None:
        self.settings = settings
        self.runner = JobRunner(transformer, settings, asyncio.get_running_loop())
        self.queue = settings.amqp_queue
        self.stopping = threading.Event()
        self.workers = ThreadPoolExecutor(settings.amqp_prefetch, thread_name_prefix="job")
        self.stats = {"connected": False, "processed": 0, "dead_lettered": 0, "retried": 0, "requeued": 0,
                      "reconnects": 0}
        self.thread = threading.Thread(target=self._consume_forever, name="amqp", daemon=True)
        self.thread.start()

    def check_health(self) -> None:
        if not self.thread.is_alive():
            raise RuntimeError("the AMQP consumer thread has stopped")
        # MongoDB is not checked: while it is away, jobs wait (see _work); restarting would not help.

    async def status(self) -> dict[str, Any]:
        """The consumer's counters, its queue, and how many calls a job keeps in flight now (with the count of
        transform replicas it comes from; None when the controller could not say)."""
        window = await asyncio.to_thread(self.runner.window)
        return {**self.stats, "queue": self.queue, "window": window, "transform_replicas": self.runner.counted}

    def __del__(self) -> None:
        self.stopping.set()

    # --- the connection thread ----------------------------------------------------------------

    def _consume_forever(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self._consume()
                delay = 0.5
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("AMQP connection lost (%s: %s); reconnecting in %.1f s", type(exc).__name__, exc, delay)
            self.stats["connected"] = False
            self.stats["reconnects"] += 1
            self.stopping.wait(delay)
            delay = min(delay * 2, 15.0)

    def _consume(self) -> None:
        params = amqp.connection_parameters(self.settings.amqp_url, f"prog-image-bridge:{self.queue}")
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            amqp.declare(channel, self.queue)
            channel.confirm_delivery()  # a dead-lettered copy or reply is confirmed before the ack
            channel.basic_qos(prefetch_count=self.settings.amqp_prefetch)
            channel.basic_consume(self.queue, functools.partial(self._on_message, connection))
            self.stats["connected"] = True
            log.info("bridge consuming %s (prefetch %d)", self.queue, self.settings.amqp_prefetch)
            while not self.stopping.is_set():
                connection.process_data_events(time_limit=1)
        finally:
            if connection.is_open:
                connection.close()

    def _on_message(self, connection: pika.BlockingConnection, channel: BlockingChannel,
                    method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self.workers.submit(self._work, connection, channel, method.delivery_tag, properties, body)

    # --- worker threads -----------------------------------------------------------------------

    def _work(self, connection: pika.BlockingConnection, channel: BlockingChannel, tag: int,
              properties: pika.BasicProperties, body: bytes) -> None:
        try:
            result = self._run_with_retries(properties, body)
            finish = functools.partial(self._complete, channel, tag, properties, result)
        except InvalidJob as exc:
            finish = functools.partial(self._dead_letter, channel, tag, properties, body, str(exc))
        except TRANSIENT as exc:  # the database or the cluster is away: the job waits in the queue, not lost
            log.warning("job failed %d times on %s; back to the queue", self.settings.job_retries, type(exc).__name__)
            finish = functools.partial(self._requeue, channel, tag)
        except Exception as exc:  # retries exhausted, or a bug: never lose the message, never crash
            reason = f"gave up after {self.settings.job_retries} attempts: {type(exc).__name__}: {exc}"
            finish = functools.partial(self._dead_letter, channel, tag, properties, body, reason)
        try:
            connection.add_callback_threadsafe(finish)
        except Exception:  # connection gone: the broker redelivers the message to the next connection
            log.warning("connection closed before ack of delivery %s; it will be redelivered", tag)

    def _run_with_retries(self, properties: pika.BasicProperties, body: bytes) -> dict[str, Any]:
        for attempt in range(1, self.settings.job_retries + 1):
            try:
                return self.runner.run(properties, body)
            except TRANSIENT as exc:
                if attempt == self.settings.job_retries or self.stopping.is_set():
                    raise
                self.stats["retried"] += 1
                pause = min(0.5 * 2 ** attempt, 10.0)
                log.warning("job attempt %d failed (%s); retrying in %.1f s", attempt, type(exc).__name__, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")

    # --- back on the connection thread ----------------------------------------------------------

    def _complete(self, channel: BlockingChannel, tag: int, properties: pika.BasicProperties,
                  result: dict[str, Any]) -> None:
        if not channel.is_open:
            return
        self._reply(channel, properties, result)
        channel.basic_ack(tag)
        self.stats["processed"] += 1
        metrics().jobs.inc(tags={"outcome": "processed"})

    def _dead_letter(self, channel: BlockingChannel, tag: int, properties: pika.BasicProperties, body: bytes,
                     reason: str) -> None:
        if not channel.is_open:
            return
        log.warning("dead-lettering a message: %s", reason)
        headers = {**(properties.headers or {}), "x-error": reason, "x-original-queue": self.queue}
        channel.basic_publish(amqp.dead_exchange(self.queue), amqp.dead_queue(self.queue), body,
                              pika.BasicProperties(content_type=properties.content_type, headers=headers,
                                                   correlation_id=properties.correlation_id,
                                                   message_id=properties.message_id, delivery_mode=2))
        self._reply(channel, properties, {"state": "rejected", "error": reason})
        channel.basic_ack(tag)
        self.stats["dead_lettered"] += 1
        metrics().jobs.inc(tags={"outcome": "dead_lettered"})

    def _requeue(self, channel: BlockingChannel, tag: int) -> None:
        if channel.is_open:
            channel.basic_nack(tag, requeue=True)
            self.stats["requeued"] += 1

    @staticmethod
    def _reply(channel: BlockingChannel, properties: pika.BasicProperties, result: dict[str, Any]) -> None:
        if properties.reply_to:
            channel.basic_publish("", properties.reply_to, json.dumps(result, default=str).encode(),
                                  pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                                       correlation_id=properties.correlation_id))

