"""glibc malloc tuning for the processes that render.

By default glibc returns freed memory above 128 KiB to the kernel at once (and, in the worker
threads that render, from per-thread arenas), so every decoded image's buffers are page-faulted
and zeroed afresh: measured here as a third of a 1 MP render's CPU inside a Ray replica
(25.7 -> 19.2 ms of ingress CPU per uncached request; 38 -> 52 req/s). Keeping freed memory for
reuse removes that. What is kept counts against memory: up to TRIM_THRESHOLD per malloc arena
(each render thread has one), on top of what the renders themselves hold (deployments.render.memory_gate).
64 MiB keeps a 1 MP render's buffers (about 20 MB) warm and bounds the leftovers of large ones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from PIL import Image

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum on 64-bit; larger blocks are still mapped and unmapped
TRIM_THRESHOLD = 64 * 2**20  # free memory kept at the top of a heap before it is returned
PILLOW_BLOCK_SIZE = 2 * MMAP_THRESHOLD


@functools.cache
def keep_freed_memory() -> bool:
    """Apply the tuning once per process; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    # Pillow allocates large images in blocks; blocks above the mmap threshold go straight back to the
    # kernel when freed, instead of fragmenting the heaps that render threads keep (with 16 MiB blocks,
    # three gated 49 MP blurs peaked at +1.27-1.5 GB against a 1.2 GB budget; now +0.84 GB; Pillow's
    # block cache did not help). The price, measured in-process at 12 MP: 4-19 % slower renders of
    # images above 8 MP (their pages are faulted in afresh), for a budget that holds.
    Image.core.set_block_size(PILLOW_BLOCK_SIZE)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
