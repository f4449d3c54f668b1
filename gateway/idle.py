"""How much of the event loop's time is spare: the time it waits in the selector with nothing
ready to run.

Background work (the normaliser) paces itself by this while webhooks pour in. An arrival rate
alone cannot tell a saturated core from one that is a fifth busy: at a steady 2,000 webhooks
a second, pacing by rate left normalising behind (the backlog grew by 1,700 a second,
bench/sustained.py) while most of the core sat idle.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable

# The idle share of a pause from which background work may take more, and below which the
# core counts as saturated by acknowledgements. Measured here: 0.02-0.04 while
# bench/ingress.py saturates the core; 0.35-0.50 at a steady 2,000 webhooks a second
# (bench/sustained.py), where inline fsyncs count as busy time too.
SPARE = 0.3
SATURATED = 0.1


class IdleSelector(selectors.DefaultSelector):
    """The platform's default selector, counting the seconds spent blocked in `select`."""

    def __init__(self) -> None:
        super().__init__()
        self.idle_seconds = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # Two clock reads per loop iteration (~0.1 µs); a zero timeout returns at once anyway.
        started = time.perf_counter()
        try:
            return super().select(timeout)
        finally:
            self.idle_seconds += time.perf_counter() - started


def new_event_loop() -> tuple[asyncio.AbstractEventLoop, Callable[[], float]]:
    """An event loop on an `IdleSelector`, and the reading of its idle seconds so far."""
    selector = IdleSelector()
    return asyncio.SelectorEventLoop(selector), lambda: selector.idle_seconds


class SpareMeter:
    """The fraction of wall time the loop was idle between `start` and `read`."""

    def __init__(self, idle_seconds: Callable[[], float]) -> None:
        self._idle_seconds = idle_seconds
        self._idle_at_start = 0.0
        self._started = 0.0

    def start(self) -> None:
        self._idle_at_start = self._idle_seconds()
        self._started = time.perf_counter()

    def read(self) -> float:
        elapsed = time.perf_counter() - self._started
        if elapsed <= 0:
            return 0.0
        return min(1.0, (self._idle_seconds() - self._idle_at_start) / elapsed)
