"""Sends that end together are recorded together: one store operation for the group.

A channel's lane has up to `send_concurrency` provider exchanges under way, and their answers
come in bunches. Each send used to record itself in an operation of its own: seven statements
and a savepoint, each a round trip on PostgreSQL. The recorder gathers the sends that finish
in the same turn of the event loop (or the next few) and records them with a few statements
(store/sent.py; the gathering is turn_batch.py).

Should the group's operation fail, each send is recorded alone, retried through store errors
as before (`retry_store_write`): one send the store refuses does not hold up the others, and
none is reported recorded unless it was.
"""

from __future__ import annotations

import time

from gateway.pipeline.backoff import retry_store_write
from gateway.pipeline.turn_batch import TurnBatch
from gateway.store import Store
from gateway.store.records import TargetsFor
from gateway.store.sent import SentSend


class SentRecorder(TurnBatch[SentSend]):
    def __init__(self, store: Store, targets_for: TargetsFor, within: float) -> None:
        """`within`: how long recording one send alone is retried through store errors."""
        super().__init__()
        self.store = store
        self.targets_for = targets_for
        self.within = within

    async def write_together(self, items: list[SentSend]) -> None:
        await self.store.record_sent_together(items, self.targets_for, self._now())

    async def write_alone(self, item: SentSend) -> None:
        send = item
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

    @staticmethod
    def _now() -> float:
        return time.time()
