"""The render service: lookup, single-flight, render and store of variants, one per process that renders
(each ingress replica and each transform replica); the bridge reaches it through the transform deployment.

Placement, the one rule: an original up to `ingress_render_max_pixels` renders where its request landed
(in the ingress replica, at most `ingress_render_slots` at a time; the others wait their turn there, and
the ingress autoscales on them); larger ones, and every batch item, render on the transform deployment.

A new variant is answered first and stored just after; requests for it meanwhile share the one render.
A batch item (one original, all of a job's operations) is decoded once and stored in one bulk write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from deployments.config import Settings
from deployments.errors import domain_error
from deployments.metrics import metrics
from deployments.render.memory_cache import MemoryCache
from deployments.render.memory_gate import MemoryGate
from deployments.render.variants import Variant, VariantRequest, job_request
from storage import FileGone, ImageStore, StoredFile
from transforms import ImageError, NotFound, Pipeline, Rendered, RenderTimeout, run_many

log = logging.getLogger("ray.serve")
_GRACE_S = 2.0  # past the deadline, wait this much more for the renderer's own timeout answer


def node_name(role: str) -> str:
    """This process's role and node, e.g. "ingress@3f9a61c2" (the node id's start: unique in a cluster,
    where an address may not be, as when several nodes run on one machine)."""
    return f"{role}@{ray.get_runtime_context().get_node_id()[:8]}"


class RenderService:
    def __init__(self, settings: Settings, store: ImageStore, node: str,
                 transformer: DeploymentHandle | None = None, originals: MemoryCache | None = None) -> None:
        """node: names this process in X-Rendered-By and the render metric. transformer: where originals
        above the placement limit go (None: this is the transform deployment; everything renders here).
        originals: recently taken or read originals, by id, read before GridFS."""
        self.settings = settings
        self.store = store
        self.originals = originals
        self.node = node
        self.transformer = transformer
        self.limits = settings.limits
        self.gate = MemoryGate(self.limits.memory_bytes)
        self.slots = asyncio.Semaphore(settings.ingress_render_slots if transformer else settings.transform_max_ongoing)
        self.inflight: dict[str, asyncio.Future[Variant]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()  # renders and stores in flight (asyncio keeps weak references)
        self.to_store: list[tuple[StoredFile, bytes, asyncio.Future[None]]] = []  # drawn, waiting for a write
        self.storing: asyncio.Task[None] | None = None

    # --- lookup ---------------------------------------------------------------------------------

    def lookup(self, wanted: VariantRequest) -> tuple[StoredFile | None, StoredFile]:
        """(the stored variant or None, the original), in one round trip; NotFound without the original."""
        found = self.store.find_many([wanted.key, wanted.image_id])
        if wanted.image_id not in found:
            raise NotFound(f"no image with id {wanted.image_id}")
        return found.get(wanted.key), found[wanted.image_id]

    def pending(self, key: str) -> asyncio.Future[Variant] | None:
        """A render of this variant in flight in this process: share it, with no lookup at all."""
        return self.inflight.get(key)

    # --- render, once -----------------------------------------------------------------------------

    async def render(self, wanted: VariantRequest, original: StoredFile) -> Variant:
        """The variant, rendered once however many ask for it at the same time: here or on the transform
        deployment by the placement rule. Answered as soon as it is drawn; its entry stays until it is
        stored, so requests meanwhile share it too."""
        pending = self.inflight.get(wanted.key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved
            self.inflight[wanted.key] = pending
            self._spawn(self._render_then_store(wanted, original, pending))
        return await asyncio.shield(pending)

    async def _render_then_store(self, wanted: VariantRequest, original: StoredFile,
                                 pending: asyncio.Future[Variant]) -> None:
        try:
            meta, limit = original.metadata, self.settings.ingress_render_max_pixels
            if self.transformer is not None and meta["width"] * meta["height"] > limit:
                pending.set_result(await self._remote(wanted, original))
                return
            async with self.slots:
                stored, data = await self.within(wanted.deadline, asyncio.to_thread(self.draw, wanted, original))
            pending.set_result(Variant(stored, data, self.node))
            try:
                await self._store_soon(stored, data)
            except Exception as exc:  # only logged: the variant is rendered again when next asked
                log.warning("storing a rendered variant failed (it will be rendered again): %r", exc)
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except Exception as exc:  # the render's error goes to every request sharing it
            if not pending.done():
                pending.set_exception(domain_error(exc) or exc)
        finally:
            self.inflight.pop(wanted.key, None)

    async def _remote(self, wanted: VariantRequest, original: StoredFile) -> Variant:
        """On the transform deployment; a GET is safe to send again once if its replica died mid-request."""
        try:
            return await self.within(wanted.deadline, self.transformer.render.remote(wanted, original))
        except RayActorError:
            await asyncio.sleep(0.2)  # let the router learn that the replica is gone
        return await self.within(wanted.deadline, self.transformer.render.remote(wanted, original))

    async def within(self, deadline: float, work: Awaitable[Any]) -> Any:
        """The renderer stops at its next stage past the deadline and says so itself; this waits a little
        longer for that answer, then gives up on it."""
        try:
            return await asyncio.wait_for(work, max(0.0, deadline - time.time()) + _GRACE_S)
        except TimeoutError:
            raise self.timed_out() from None

    async def _store_soon(self, stored: StoredFile, data: bytes) -> None:
        """Store a drawn variant with the others drawn meanwhile: one bulk write and one orphan check for
        all that wait while the previous write runs (under load, a fraction of a round trip each)."""
        stored_now = asyncio.get_running_loop().create_future()
        self.to_store.append((stored, data, stored_now))
        if self.storing is None or self.storing.done():
            self.storing = asyncio.ensure_future(self._store_queued())
        await stored_now

    async def _store_queued(self) -> None:
        while self.to_store:
            queued, self.to_store = self.to_store, []
            try:
                await asyncio.to_thread(self._keep, [(stored, data) for stored, data, _ in queued])
            except Exception as exc:
                for *_, stored_now in queued:
                    stored_now.set_exception(exc)
            else:
                for *_, stored_now in queued:
                    stored_now.set_result(None)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- the pixel work and the store (blocking: run in a thread) ------------------------------------

    def draw(self, wanted: VariantRequest, original: StoredFile) -> tuple[StoredFile, bytes]:
        """Render the variant: the file it will be stored as (see keep) and its bytes. The plan is checked
        and its memory reserved before any pixel work; past the request's deadline the render stops."""
        started = time.perf_counter()
        out = self._run(self._read(original), [wanted], wanted.deadline)[0]
        if isinstance(out, ImageError):
            raise out
        metrics().render.observe(time.perf_counter() - started, tags={"operation": wanted.operation})
        return self._describe(wanted, original, out), out.data

    def keep(self, stored: StoredFile, data: bytes) -> StoredFile:
        """Store a drawn variant (unless another render stored it first: then that one)."""
        return self._keep([(stored, data)])[0]

    def _keep(self, drawn: list[tuple[StoredFile, bytes]]) -> list[StoredFile]:
        return self._drop_orphans([stored for stored, _ in self.store.write_many(drawn, cache=True)])

    def _drop_orphans(self, kept: list[StoredFile]) -> list[StoredFile]:
        """Stored variants whose original was deleted while they were rendered are removed again: no orphans
        (a DELETE removes the original before it lists the variants, so one of the two sees the other)."""
        sources = {stored.metadata["source"] for stored in kept}
        gone = sources - set(self.store.find_many(list(sources))) if sources else set()
        for stored in kept:
            if stored.metadata["source"] in gone:
                self.store.delete(stored.key)
        return kept

    def render_items(self, image_ids: list[str], operations: list[str], deadline: float
                     ) -> list[list[dict[str, Any]]]:
        """Batch items: every operation of a job on each original, each stored (or found stored) and described,
        or failed with the reason. For all of them together: one lookup, one read of the originals, one bulk
        write; per original one decode per way of decoding (transforms.run_many). An outage or the deadline
        raises: the job retries."""
        wanted = {image_id: [job_request(self.settings, image_id, op).until(deadline) for op in operations]
                  for image_id in image_ids}
        found = self.store.find_many([*wanted, *(w.key for ws in wanted.values() for w in ws)])
        todo = {image_id: [w for w in ws if w.key not in found] for image_id, ws in wanted.items()
                if image_id in found}
        originals = [found[image_id] for image_id, ws in todo.items() if ws]
        if originals:
            started = time.perf_counter()
            sources = self.store.read_many(originals)
            failed: dict[str, ImageError] = {}

            def draw(original: StoredFile) -> list[tuple[StoredFile, bytes]]:
                if original.key not in sources:  # deleted since it was looked up
                    failed.update({w.key: NotFound(f"{original.key} was deleted") for w in todo[original.key]})
                    return []
                drawn = []
                for w, out in zip(todo[original.key], self._run(sources.pop(original.key), todo[original.key],
                                                                deadline), strict=True):
                    if isinstance(out, ImageError):
                        failed[w.key] = out
                    else:
                        drawn.append((self._describe(w, original, out), out.data))
                return drawn

            # Each original's variants are written while the next one renders: the waits for MongoDB fill
            # with pixel work. One original at a time: a call's replica runs as many calls as there are
            # places for them (bench/batch.py measured two originals at a time per call slower: 1.39x HTTP's
            # rate against 1.46x, the cores oversubscribed).
            with ThreadPoolExecutor(1, thread_name_prefix="store") as writer:
                writes = [writer.submit(self.store.write_many, drawn, True)
                          for drawn in map(draw, originals) if drawn]
                kept = [stored for write in writes for stored, _ in write.result()]
            if time.time() > deadline:  # answered late: the job retries, and finds what was stored
                raise self.timed_out()
            found.update({stored.key: stored for stored in self._drop_orphans(kept)})
            found.update(failed)
            metrics().render.observe(time.perf_counter() - started, tags={"operation": "batch"})
        missing = [{"status": "failed", "error": "not_found: no such image"}] * len(operations)
        return [[_outcome(found[w.key]) for w in wanted[image_id]] if image_id in found else missing
                for image_id in image_ids]

    def _read(self, original: StoredFile) -> bytes:
        kept = self.originals.get(original.key) if self.originals is not None else None
        if kept is not None:
            return kept.data
        try:
            data = self.store.read(original)
        except FileGone:  # deleted since it was looked up
            raise NotFound(f"the image {original.key} was deleted") from None
        if self.originals is not None:
            self.originals.put(original.key, data, original.content_type, original.etag)
        return data

    def _run(self, data: bytes, wanted: list[VariantRequest], deadline: float) -> list[Rendered | ImageError]:
        assets = self._assets([w.pipeline for w in wanted])
        try:
            out = run_many(data, [(w.pipeline, w.options) for w in wanted], limits=self.limits, deadline=deadline,
                           reserve=lambda needs: self.gate.reserve(needs, deadline), assets=assets)
        except RenderTimeout:
            raise self.timed_out() from None
        for rendered in out:
            for stage, seconds in () if isinstance(rendered, ImageError) else rendered.timings:
                metrics().stage.observe(seconds, tags={"stage": stage})
        return out

    def _assets(self, pipelines: list[Pipeline]) -> dict[str, bytes]:
        """The other stored images the pipelines place (watermarks), by id; absent ones are left out (the
        plan refuses a pipeline whose watermark is missing)."""
        ids = list(dict.fromkeys(image_id for pipeline in pipelines for image_id in pipeline.assets()))
        found = self.store.find_many(ids) if ids else {}
        assets = {}
        for image_id, stored in found.items():
            with contextlib.suppress(FileGone):  # deleted since it was looked up: as if it had not been there
                assets[image_id] = self.store.read(stored)
        return assets

    def _describe(self, wanted: VariantRequest, original: StoredFile, out: Rendered) -> StoredFile:
        width, height = out.size or (original.metadata["width"], original.metadata["height"])
        return self.store.describe(wanted.key, out.data, content_type=out.media_type, metadata={
            "kind": "variant", "source": wanted.image_id, "operation": wanted.key.split("/", 1)[1],
            "format": out.format, "width": width, "height": height, "rendered_by": self.node})

    def timed_out(self) -> RenderTimeout:
        return RenderTimeout(f"processing took longer than {self.settings.request_timeout_s:g} s; it was stopped "
                             "and nothing of it is stored")


def _outcome(result: StoredFile | ImageError) -> dict[str, Any]:
    if isinstance(result, ImageError):
        return {"status": "failed", "error": f"{result.code}: {result.message}"}
    return {"status": "ok", "variant_id": result.key, "content_type": result.content_type, "bytes": result.length,
            "rendered_by": result.metadata.get("rendered_by")}

