"""Waiting for a service to answer."""

from __future__ import annotations

import contextlib
import time

import httpx


def wait_until_served(base: str, timeout_s: float = 60) -> None:
    """Poll GET {base}/healthz until it answers 200: routes reach a freshly deployed app within moments."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=10).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"{base} did not become healthy within {timeout_s} s")
