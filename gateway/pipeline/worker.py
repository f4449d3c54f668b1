"""A background loop that drains one queue: woken by new work, polling as a safety net."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from typing import Protocol

from gateway.logs import get_logger

log = get_logger("gateway.worker")


class Wakeable(Protocol):
    def wake(self) -> None: ...


class Background(Wakeable, Protocol):
    """What the gateway starts at start-up and stops at shutdown."""

    def start(self) -> None: ...
    async def stop(self, grace: float = 0.0) -> None: ...


class Worker(abc.ABC):
    name = "worker"
    # Seconds to wait, once woken, before working: what else arrives meanwhile shares the batch
    # (its claim, its commit and fsync, its post). At a steady trickle (200 webhooks a second)
    # each webhook otherwise went through every stage alone.
    linger = 0.0

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.listeners: list[Wakeable] = []  # woken when this worker produced work for them

    def wake(self) -> None:
        self._wake.set()

    def wake_listeners(self) -> None:
        for listener in self.listeners:
            listener.wake()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, grace: float = 0.0) -> None:
        """Take no new work; let the work in hand end, for at most `grace` seconds, then cancel
        it. Cut short, a send the provider accepted is sent again after the restart."""
        if self._task is None:
            return
        self._stopping.set()
        self._wake.set()  # out of its wait for work, to see it is stopping
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def nap(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the worker is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the work, not after: a wake that comes while it runs (new work
            # its claim just missed) must not wait for the next poll.
            self._wake.clear()
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store hiccup must not kill the loop; the rows stay claimable.
                log.exception("worker_failed", worker=self.name)
                busy = False
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                if self.linger:
                    await self.nap(self.linger)

    @abc.abstractmethod
    async def run_once(self) -> bool:
        """Process one batch; True when there may be more work right away."""
