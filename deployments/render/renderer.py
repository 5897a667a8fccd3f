"""The pixel work of one variant, blocking (run it in a thread): read the original (this process's memory,
else GridFS), plan and reserve its memory, decode, steps, encode, and describe the file it may be stored as."""

from __future__ import annotations

import contextlib
import time

from deployments.metrics import metrics
from deployments.render.memory_cache import MemoryCache
from deployments.render.memory_gate import MemoryGate
from deployments.render.variants import VariantRequest, variant_etag
from storage import FileGone, ImageStore, StoredFile
from transforms import ImageError, Limits, NotFound, Pipeline, Rendered, RenderTimeout, run_many


class Renderer:
    def __init__(self, store: ImageStore, limits: Limits, node: str, timeout_s: float,
                 originals: MemoryCache | None = None) -> None:
        """node: names this process in X-Rendered-By. originals: recently taken or read originals, by id."""
        self.store = store
        self.limits = limits
        self.node = node
        self.timeout_s = timeout_s
        self.originals = originals
        self.gate = MemoryGate(limits.memory_bytes)

    def draw(self, wanted: VariantRequest, original: StoredFile, data: bytes | None = None
             ) -> tuple[StoredFile, bytes]:
        """The variant: the file it will be stored as, and its bytes. The plan is checked and its memory
        reserved before any pixel work; past the request's deadline the render stops. data: the original's
        bytes when the caller has them (else read here)."""
        started = time.perf_counter()
        if data is None:
            data = self.read(original)
        else:  # read with the lookup: kept for the next renders of it
            self.hold(original.key, data, original.content_type)
        out = self.run(data, [wanted], wanted.deadline)[0]
        del data
        if isinstance(out, ImageError):
            raise out
        metrics().render.observe(time.perf_counter() - started, tags={"operation": wanted.operation})
        return self.describe(wanted, original, out), out.data

    def held(self, image_id: str) -> bytes | None:
        """The original's bytes if this process holds them."""
        kept = self.originals.get(image_id) if self.originals is not None else None
        return None if kept is None else kept.data

    def hold(self, image_id: str, data: bytes, media_type: str) -> None:
        """Keep an original this process took or read, for the next renders of it (its id is its etag)."""
        if self.originals is not None:
            self.originals.put(image_id, data, media_type, image_id)

    def drop(self, image_id: str) -> None:
        """Forget a deleted original."""
        if self.originals is not None:
            self.originals.drop_image(image_id)

    def read(self, original: StoredFile) -> bytes:
        held = self.held(original.key)
        if held is not None:
            return held
        try:
            data = self.store.read(original)
        except FileGone:  # deleted since it was looked up
            raise NotFound(f"the image {original.key} was deleted") from None
        self.hold(original.key, data, original.content_type)
        return data

    def run(self, data: bytes, wanted: list[VariantRequest], deadline: float) -> list[Rendered | ImageError]:
        """Every wanted variant of one original (one decode per way of decoding), within the memory gate."""
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

    def describe(self, wanted: VariantRequest, original: StoredFile, out: Rendered) -> StoredFile:
        width, height = out.size or (original.metadata["width"], original.metadata["height"])
        return self.store.describe(wanted.key, out.data, content_type=out.media_type, etag=variant_etag(wanted.key),
                                   metadata={"kind": "variant", "source": wanted.image_id,
                                             "operation": wanted.key.split("/", 1)[1], "format": out.format,
                                             "width": width, "height": height, "rendered_by": self.node})

    def timed_out(self) -> RenderTimeout:
        return RenderTimeout(f"processing took longer than {self.timeout_s:g} s; it was stopped and nothing of it "
                             "is stored")
