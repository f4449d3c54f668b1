"""How much of the event loop's time is spare: the time it waits in the selector with nothing
ready to run.

Background work (the normaliser, retention) paces itself by this while webhooks pour in. An
arrival rate alone cannot tell a saturated core from one that is a fifth busy: at a steady
2,000 webhooks a second, pacing by rate left normalising behind (the backlog grew by 1,700 a
second, bench/sustained.py) while most of the core sat idle. A store that writes on a thread
of its own (PostgreSQL) has a second clock, its writer's idle time: while the loop waits on a
saturated writer it is idle, yet there is nothing to spare (pacing by the loop alone halved a
burst's acknowledgements there, 800-960 against 1,740-1,920 a second).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Sequence

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


IdleClock = Callable[[], float]  # idle seconds so far, of the loop or of a store's writer


class SpareMeter:
    """The share of wall time between `start` and `read` that every clock's owner was idle
    (the least of their shares: background work needs the loop and the store alike)."""

    def __init__(self, clocks: Sequence[IdleClock]) -> None:
        self._clocks = list(clocks)
        self._idle_at_start = [0.0] * len(self._clocks)
        self._started = 0.0

    def start(self) -> None:
        self._idle_at_start = [clock() for clock in self._clocks]
        self._started = time.perf_counter()

    def read(self) -> float:
        elapsed = time.perf_counter() - self._started
        if elapsed <= 0 or not self._clocks:
            return 0.0
        idle = min(
            clock() - at for clock, at in zip(self._clocks, self._idle_at_start, strict=True)
        )
        return min(1.0, idle / elapsed)

    async def pause(self, seconds: float) -> float:
        """Sleep `seconds`, leaving the loop to others: the share of it that was idle."""
        self.start()
        await asyncio.sleep(seconds)
        return self.read()
