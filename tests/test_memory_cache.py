"""The ingress's in-memory variant cache: LRU by bytes, expiry, and forgetting a deleted image."""

from __future__ import annotations

import time

from deployments.render.memory_cache import MemoryCache

A, B = "a" * 64, "b" * 64


def test_least_recently_used_goes_first_when_over_budget():
    cache = MemoryCache(max_bytes=250, ttl_s=60, max_item_bytes=100)
    cache.put(f"{A}/png", b"1" * 100, "image/png", "h1")
    cache.put(f"{A}/jpeg", b"2" * 100, "image/jpeg", "h2")
    assert cache.get(f"{A}/png").data == b"1" * 100  # now the most recently used
    cache.put(f"{B}/png", b"3" * 100, "image/png", "h3")  # 300 > 250: evicts A/jpeg, not A/png
    assert cache.get(f"{A}/jpeg") is None
    assert cache.get(f"{A}/png").etag == "h1" and cache.get(f"{B}/png").media_type == "image/png"
    assert cache.size == 200


def test_items_over_the_item_limit_are_not_kept_and_replacing_keeps_the_size_right():
    cache = MemoryCache(max_bytes=1000, ttl_s=60, max_item_bytes=100)
    cache.put(f"{A}/png", b"x" * 101, "image/png", "h")
    assert cache.get(f"{A}/png") is None and cache.size == 0
    cache.put(f"{A}/png", b"x" * 50, "image/png", "h")
    cache.put(f"{A}/png", b"x" * 70, "image/png", "h")
    assert cache.size == 70
    assert MemoryCache(max_bytes=0, ttl_s=60).put(f"{A}/png", b"x", "image/png", "h") is None  # 0: off


def test_entries_expire_after_the_ttl():
    cache = MemoryCache(max_bytes=1000, ttl_s=0.05)
    cache.put(f"{A}/png", b"x" * 10, "image/png", "h")
    assert cache.get(f"{A}/png") is not None
    time.sleep(0.06)
    assert cache.get(f"{A}/png") is None and cache.size == 0


def test_drop_image_forgets_only_that_image_its_original_and_variants():
    cache = MemoryCache(max_bytes=1000, ttl_s=60)
    for key in (A, f"{A}/png", f"{A}/process?ops=mirror", B, f"{B}/png"):
        cache.put(key, b"x" * 10, "image/png", "h")
    cache.drop_image(A)
    assert cache.get(A) is None and cache.get(f"{A}/png") is None and cache.get(f"{A}/process?ops=mirror") is None
    assert cache.get(B) is not None and cache.get(f"{B}/png") is not None and cache.size == 20
