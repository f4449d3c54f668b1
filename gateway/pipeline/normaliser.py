"""Inbox → events: parse raw requests with their adapter and commit the results atomically."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from pydantic import ValidationError

from adapters.base import Adapter, PayloadError
from gateway.ids import new_id
from gateway.logs import get_logger
from gateway.metrics import EVENTS, INBOX_FAILED
from gateway.pipeline.worker import Worker
from gateway.schema import Event
from gateway.store import InboxRow, Store
from gateway.store.store import TargetsFor

log = get_logger("gateway.normaliser")

BATCH = 200
LEASE_SECONDS = 30.0


def to_events(adapter: Adapter, row: InboxRow) -> list[tuple[Event, str]]:
    return [
        (Event(id=new_id("evt"), raw_id=row.id, **parsed.draft.model_dump()), parsed.dedupe_key)
        for parsed in adapter.parse(row.body)
    ]


class Normaliser(Worker):
    name = "normaliser"

    def __init__(
        self, store: Store, adapters: Mapping[str, Adapter], targets_for: TargetsFor,
        poll_interval: float,
    ) -> None:
        super().__init__(poll_interval)
        self.store = store
        self.adapters = adapters
        self.targets_for = targets_for
        self.listeners: list[Worker] = []

    async def run_once(self) -> bool:
        now = time.time()
        rows = await self.store.claim_inbox(BATCH, now, LEASE_SECONDS)
        if not rows:
            return False
        stored = await asyncio.gather(*(self._one(row, now) for row in rows))
        if any(stored):
            for listener in self.listeners:
                listener.wake()
        return len(rows) == BATCH

    async def _one(self, row: InboxRow, now: float) -> int:
        adapter = self.adapters.get(row.channel_id)
        if adapter is None:
            await self._fail(row, f"channel {row.channel_id!r} is not configured", now)
            return 0
        try:
            events = to_events(adapter, row)
        except (PayloadError, ValidationError, KeyError, TypeError, ValueError) as exc:
            await self._fail(row, _reason(exc), now)
            return 0
        stored = await self.store.record_inbound(row.id, events, self.targets_for, now)
        for event in stored:
            EVENTS.labels(event.channel.id, event.type).inc()
            log.info(
                "event_stored", event_id=event.id, type=event.type, channel=event.channel.id,
                external_id=event.external_id, raw_id=row.id,
                message_id=event.status.message_id if event.status else None,
            )
        return len(stored)

    async def _fail(self, row: InboxRow, reason: str, now: float) -> None:
        INBOX_FAILED.labels(row.channel_id).inc()
        log.warning("inbox_row_failed", raw_id=row.id, channel=row.channel_id, reason=reason)
        await self.store.fail_inbox(row.id, reason, now)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"invalid payload: {where}: {first['msg']} ({exc.error_count()} error(s))"
    if isinstance(exc, KeyError):
        return f"invalid payload: missing field {exc.args[0]!r}"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, PayloadError) else str(exc)
