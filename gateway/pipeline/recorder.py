"""Sends that end together are recorded together: one store operation for the group.

A channel's lane has up to `send_concurrency` provider exchanges under way, and their answers
come in bunches. Each send used to record itself in an operation of its own: seven statements
and a savepoint, each a round trip on PostgreSQL. The recorder gathers the sends that finish
in the same turn of the event loop and records them with a few statements (store/sent.py).

Should the group's operation fail, each send is recorded alone, retried through store errors
as before (`retry_store_write`): one send the store refuses does not hold up the others, and
none is reported recorded unless it was.
"""

from __future__ import annotations

import asyncio
import time

from gateway.pipeline.backoff import retry_store_write
from gateway.store import Store
from gateway.store.records import TargetsFor
from gateway.store.sent import SentSend

# Sends in one group at most: bounds a statement's parameters (ten a send for its event).
GROUP_MOST = 64


class SentRecorder:
    def __init__(self, store: Store, targets_for: TargetsFor, within: float) -> None:
        """`within`: how long recording one send alone is retried through store errors."""
        self.store = store
        self.targets_for = targets_for
        self.within = within
        self._waiting: list[tuple[SentSend, asyncio.Future[None]]] = []
        self._writing: set[asyncio.Task[None]] = set()

    async def record(self, send: SentSend) -> None:
        """Record `send` with the others that end in this turn of the loop; returns once it is
        durable (or raises the store's error, as recording it alone would)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((send, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._write_waiting)
        await future

    def _write_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:GROUP_MOST], self._waiting[GROUP_MOST:]
            task = asyncio.create_task(self._write(group))
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    async def _write(self, group: list[tuple[SentSend, asyncio.Future[None]]]) -> None:
        sends = [send for send, _future in group]
        now = self._now()
        try:
            await self.store.record_sent_together(sends, self.targets_for, now)
        except Exception:  # each alone, below, retried as one always was
            await asyncio.gather(*(self._write_alone(send, future) for send, future in group))
            return
        for _send, future in group:
            if not future.done():  # its send was cancelled meanwhile (shutdown)
                future.set_result(None)

    async def _write_alone(self, send: SentSend, future: asyncio.Future[None]) -> None:
        try:
            await retry_store_write(
                lambda: self.store.record_sent(
                    send.outbox_id,
                    send.message_id,
                    send.channel_id,
                    send.external_ids,
                    send.detail,
                    send.event,
                    self.targets_for,
                    self._now(),
                ),
                self.within,
                "message_sent",
            )
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(None)

    @staticmethod
    def _now() -> float:
        return time.time()
