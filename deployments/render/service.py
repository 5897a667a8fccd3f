"""The render service, one per process that renders (each ingress replica and each transform replica):
a variant rendered once however many ask for it at the same time, where the placement rule says.

Placement, the one rule: an original up to `ingress_render_max_pixels` renders where its request landed
(in the ingress replica, at most `ingress_render_slots` at a time; the others wait their turn there, and
the ingress autoscales on them); larger ones, and every batch item, render on the transform deployment.

A new variant is answered as soon as it is drawn; whether and when it is stored is deployments.render.storing's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, NamedTuple

import ray
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from deployments.config import Settings
from deployments.errors import domain_error
from deployments.render import batch_items
from deployments.render.memory_cache import MemoryCache
from deployments.render.renderer import Renderer
from deployments.render.storing import StorePolicy, StoreQueue, keep
from deployments.render.variants import Variant, VariantRequest
from storage import ImageStore, StoredFile
from transforms import NotFound

log = logging.getLogger("ray.serve")
_GRACE_S = 2.0  # past the deadline, wait this much more for the renderer's own timeout answer


class Found(NamedTuple):
    variant: StoredFile | None
    variant_data: bytes | None  # None: not stored, or too large to read whole (stream it)
    original: StoredFile
    original_data: bytes | None  # None: the renderer reads it


def node_name(role: str) -> str:
    """This process's role and node, e.g. "ingress@3f9a61c2" (the node id's start: unique in a cluster,
    where an address may not be, as when several nodes run on one machine)."""
    return f"{role}@{ray.get_runtime_context().get_node_id()[:8]}"


class RenderService:
    def __init__(self, settings: Settings, store: ImageStore, node: str,
                 transformer: DeploymentHandle | None = None, originals: MemoryCache | None = None) -> None:
        """transformer: where originals above the placement limit go (None: this is the transform deployment;
        everything renders here). originals: recently taken or read originals, by id, read before GridFS."""
        self.settings = settings
        self.store = store
        self.transformer = transformer
        self.renderer = Renderer(store, settings.limits, node, settings.request_timeout_s, originals)
        self.limits, self.gate = self.renderer.limits, self.renderer.gate
        self.policy = StorePolicy(settings.variant_store_min_uses)
        self.queue = StoreQueue(store)
        self.slots = asyncio.Semaphore(settings.ingress_render_slots if transformer else settings.transform_max_ongoing)
        self.inflight: dict[str, asyncio.Future[Variant]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()  # renders and stores in flight (asyncio keeps weak references)

    def lookup(self, wanted: VariantRequest, inline_max: int) -> Found:
        """The stored variant (with its bytes when at most inline_max) and the original (with its bytes unless
        this process holds them), in one round trip; NotFound without the original. Blocking."""
        held = self.renderer.held(wanted.image_id)
        if held is None:
            found = self.store.find_with_data([wanted.key, wanted.image_id], inline_max=inline_max)
        else:  # a plain lookup costs mongod less than the join; a stored variant's bytes take a second trip
            found = {key: (stored, None) for key, stored in self.store.find_many([wanted.key, wanted.image_id]).items()}
        if wanted.image_id not in found:
            raise NotFound(f"no image with id {wanted.image_id}")
        variant, variant_data = found.get(wanted.key, (None, None))
        if variant is not None and variant_data is None:
            variant_data = self.store.read_small(variant, inline_max)
        original, data = found[wanted.image_id]
        return Found(variant, variant_data, original, held if held is not None else data)

    def pending(self, key: str) -> asyncio.Future[Variant] | None:
        """A render of this variant in flight in this process: share it, with no lookup at all."""
        return self.inflight.get(key)

    async def render(self, wanted: VariantRequest, original: StoredFile, data: bytes | None = None) -> Variant:
        """The variant, rendered once however many ask for it at the same time: here or on the transform
        deployment by the placement rule. Its entry stays until it is stored, so requests meanwhile share it."""
        pending = self.inflight.get(wanted.key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved
            self.inflight[wanted.key] = pending
            self.spawn(self._render(wanted, original, data, pending))
        return await asyncio.shield(pending)

    async def _render(self, wanted: VariantRequest, original: StoredFile, data: bytes | None,
                      pending: asyncio.Future[Variant]) -> None:
        try:
            meta, limit = original.metadata, self.settings.ingress_render_max_pixels
            if self.transformer is not None and meta["width"] * meta["height"] > limit:
                pending.set_result(await self._remote(wanted, original))
                return
            async with self.slots:
                stored, out = await self.within(wanted.deadline, asyncio.to_thread(self.renderer.draw, wanted,
                                                                                   original, data))
            del data
            kept = self.policy.used(wanted.key)
            pending.set_result(Variant(stored, out, self.renderer.node, kept))
            if kept:
                await self.store_variant(stored, out)
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except Exception as exc:  # the render's error goes to every request sharing it
            if not pending.done():
                pending.set_exception(domain_error(exc) or exc)
        finally:
            self.inflight.pop(wanted.key, None)

    async def store_variant(self, stored: StoredFile, data: bytes) -> None:
        try:
            await self.queue.put(stored, data)
        except Exception as exc:  # only logged: the variant is rendered again when next asked
            log.warning("storing a rendered variant failed (it will be rendered again): %r", exc)

    async def _remote(self, wanted: VariantRequest, original: StoredFile) -> Variant:
        """On the transform deployment; a GET is safe to send again once if its replica died mid-request."""
        try:
            return await self.within(wanted.deadline, self.transformer.render.remote(wanted, original))
        except RayActorError:
            await asyncio.sleep(0.2)  # let the router learn that the replica is gone
        return await self.within(wanted.deadline, self.transformer.render.remote(wanted, original))

    def deadline(self) -> float:
        """A request's deadline (time.time()) if it starts now."""
        return time.time() + self.settings.request_timeout_s

    async def within(self, deadline: float, work: Awaitable[Any]) -> Any:
        """The renderer stops at its next stage past the deadline and says so itself; this waits a little
        longer for that answer, then gives up on it."""
        try:
            return await asyncio.wait_for(work, max(0.0, deadline - time.time()) + _GRACE_S)
        except TimeoutError:
            raise self.timed_out() from None

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- blocking (run in a thread) ---------------------------------------------------------------------

    def draw(self, wanted: VariantRequest, original: StoredFile) -> tuple[StoredFile, bytes]:
        return self.renderer.draw(wanted, original, None)

    def keep(self, stored: StoredFile, data: bytes) -> StoredFile:
        """Store a drawn variant (unless another render stored it first: then that one)."""
        return keep(self.store, [(stored, data)])[0]

    def render_items(self, image_ids: list[str], operations: list[str], deadline: float) -> list[list[dict[str, Any]]]:
        """Batch items (see deployments.render.batch_items): always stored."""
        return batch_items.render_items(self.renderer, self.settings, image_ids, operations, deadline)

    def timed_out(self) -> Exception:
        return self.renderer.timed_out()
