"""Waiting for a service to answer."""

from __future__ import annotations

import contextlib
import time

import httpx

from storage import ImageStore, StoredFile


def wait_until_served(base: str, timeout_s: float = 60) -> None:
    """Poll GET {base}/healthz until it answers 200: routes reach a freshly deployed app within moments."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=10).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"{base} did not become healthy within {timeout_s} s")


def stored_soon(store: ImageStore, key: str, timeout_s: float = 10) -> StoredFile:
    """The stored file under key: a variant is answered first and stored just after (within moments)."""
    deadline = time.monotonic() + timeout_s
    while (stored := store.find(key)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} was not stored within {timeout_s} s")
        time.sleep(0.05)
    return stored
