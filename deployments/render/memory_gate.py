"""Render memory shared by one replica's concurrent renders.

Each render reserves its plan's peak (transforms.plan) before it decodes anything and returns it
when done, so N large renders can't run at once beyond the replica's budget: the next one waits
until enough is free, or answers 503 when its deadline comes first. A single render above the whole
budget never gets here: its plan is refused as over_budget (422).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from transforms import Overloaded


class MemoryGate:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.reserved = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, size: int, deadline: float) -> Iterator[None]:
        """Hold size bytes of the budget for the block; wait for them until deadline (time.time())."""
        size = min(size, self.budget)
        with self._changed:
            while self.reserved + size > self.budget:
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise Overloaded(f"renders in this replica hold {self.reserved >> 20} of its "
                                     f"{self.budget >> 20} MB; retry shortly")
                self._changed.wait(remaining)
            self.reserved += size
        try:
            yield
        finally:
            with self._changed:
                self.reserved -= size
                self._changed.notify_all()
