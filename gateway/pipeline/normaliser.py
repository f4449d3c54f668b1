"""Inbox → events: parse raw requests with their adapter and commit the results atomically."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter

from adapters.base import Adapter, PayloadError
from adapters.failures import adapter_error, unreadable
from gateway import json_codec
from gateway.ids import new_id
from gateway.live import get_or_removed
from gateway.logs import get_logger
from gateway.metrics import EVENTS, INBOX_FAILED
from gateway.pipeline.backoff import claim_or_undo, retry_store_write
from gateway.pipeline.cpu_pacing import SATURATED, SPARE, IdleClock, SpareMeter
from gateway.pipeline.worker import Worker
from gateway.router.conversations import DEFAULT_ROUTING, RoutingPolicy
from gateway.schema import Event
from gateway.store import InboxRow, Store, failed_parts
from gateway.store.records import (
    FailedPartRecord,
    InboundRecorded,
    PreparedEvent,
    TargetsFor,
    prepare,
    promote,
)

log = get_logger("gateway.normaliser")

# Acknowledging webhooks comes first (providers time out and redeliver); normalising runs in
# the gaps. While webhooks pour in, the normaliser works in slices with a pause after each,
# which bounds how long an acknowledgement waits behind it and still guarantees progress.
# How much it takes follows the CPU the acknowledgements leave: the share of each pause the
# event loop sat idle (gateway/pipeline/cpu_pacing.py). A saturated core steps it down to 4 rows every 50 ms;
# spare CPU steps it up to 32 rows every 3 ms, so a steady rate the core can serve whole is
# normalised as it arrives (a rate threshold alone starved it at a steady 2,000 a second: the
# backlog grew by 1,700 a second). Slices stay small and pauses short because each slice is
# one store step that every acknowledgement committed with it waits for: topping out at 64
# rows every 12.5 ms instead doubled the acknowledgements' p99 at 2,000 and 3,000 a second
# (bench/sustained.py, alternating runs: 9.4-11.6 against 4.6-7.8 ms; 86-129 against 22-47 ms).
BATCH = 64
PACES = (
    (4, 0.05),
    (4, 0.025),
    (4, 0.0125),
    (8, 0.0125),
    (16, 0.0125),
    (16, 0.006),
    (16, 0.003),
    (32, 0.003),
)
FIRST_PACE = 2  # 4 rows every 12.5 ms, and the pace when idle time is not measured
LEASE_SECONDS = 30.0


@dataclass(frozen=True)
class RowReading:
    """A row's events, and the parts of it that failed alone."""

    events: list[PreparedEvent]
    failed: list[FailedPartRecord]


def to_events(adapter: Adapter, row: InboxRow) -> list[PreparedEvent]:
    """The row's events; PayloadError when a part of it cannot be read."""
    reading = to_reading(adapter, row)
    if reading.failed:
        raise PayloadError(reading.failed[0].reason)
    return reading.events


def to_reading(adapter: Adapter, row: InboxRow) -> RowReading:
    """The row's events and failed parts; a replayed row with failed parts has only those
    read again."""
    received = datetime.fromtimestamp(row.received_at, UTC)
    reading = adapter.read(row.body, received, row.failed_parts or None)
    events = [
        prepare(promote(p.draft, new_id("evt"), row.id), p.dedupe_key) for p in reading.events
    ]
    failed = [
        FailedPartRecord(f.path, f.reason, json_codec.dumps(f.part).decode())
        for f in reading.failed
    ]
    return RowReading(events, failed)


def read_inbox_row(adapter: Adapter, row: InboxRow) -> RowReading | str:
    """The row's events and failed parts, or why it cannot be read at all (the reason its
    failed row keeps). Never raises: a row nobody can read waits, failed and replayable, for
    a fixed adapter."""
    try:
        return to_reading(adapter, row)
    except Exception as exc:
        reason = unreadable(exc)
        if reason is None:
            log.exception("adapter_failed", raw_id=row.id, channel=row.channel_id)
            return adapter_error(exc)
        return reason


def read_row(adapter: Adapter, row: InboxRow) -> list[PreparedEvent] | str:
    """The row's events, or the reason it is kept failed: its own, or its failed parts'."""
    reading = read_inbox_row(adapter, row)
    if isinstance(reading, str):
        return reading
    return (
        failed_parts.summary([f.reason for f in reading.failed])
        if reading.failed
        else reading.events
    )


class Normaliser(Worker):
    name = "normaliser"

    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        targets_for: TargetsFor,
        poll_interval: float,
        ingress_busy: Callable[[], bool] = lambda: False,
        *,
        during_bursts: bool = True,
        idle_clocks: Sequence[IdleClock] = (),
        link_by_phone: bool = False,
        routing: RoutingPolicy = DEFAULT_ROUTING,
        on_sends_queued: Callable[[str], None] = lambda _channel: None,
    ) -> None:
        super().__init__(poll_interval)
        self.ingress_busy = ingress_busy
        # The loop's and the store writer's idle time (gateway/pipeline/cpu_pacing.py); none keeps the first pace.
        self.spare = SpareMeter(idle_clocks) if idle_clocks else None
        self.pace = FIRST_PACE
        self.during_bursts = during_bursts  # server.normalise_during_bursts
        self.store = store
        self.adapters = adapters
        self.targets_for = targets_for
        self.link_by_phone = link_by_phone  # identities.link_by_phone
        self.routing = routing  # conversations.route_* and provider_groups_owner
        # The router queued sends on this channel (form questions, relayed copies): its lane
        # is woken, and only its. Waking every channel's lane for each batch cost five empty
        # claims a batch (bench/idle.py: more claims than webhooks).
        self.on_sends_queued = on_sends_queued
        self._counters: dict[tuple[str, str], Counter] = {}

    linger = 0.01  # webhooks of the next 10 ms are normalised in the same transaction

    async def run_once(self) -> bool:
        now = time.time()
        busy = self.ingress_busy()
        if busy and not self.during_bursts:
            await asyncio.sleep(PACES[FIRST_PACE][1])  # the burst's acknowledgements get the core
            return False
        limit, pause = PACES[self.pace] if busy else (BATCH, 0.0)
        rows = await claim_or_undo(
            lambda: self.store.claim_inbox(limit, now, LEASE_SECONDS),
            lambda: self.store.unclaim("inbox", now + LEASE_SECONDS),
            LEASE_SECONDS / 2,
        )
        if not rows:
            return False
        try:
            recorded = await self._normalise(rows, now)
        except Exception:
            # The store failed mid-batch (a PostgreSQL restart): the rows go back in line
            # once it is back, rather than waiting out their lease.
            ids = [row.id for row in rows]
            with contextlib.suppress(Exception):
                await retry_store_write(
                    lambda: self.store.release_inbox(ids), LEASE_SECONDS / 2, "inbox_released"
                )
            raise
        stored = recorded.events
        for raw_id, kept in stored.items():
            for event in kept:
                self._count(event)
                log.info(
                    "event_stored",
                    event_id=event.id,
                    type=event.type,
                    channel=event.channel.id,
                    external_id=event.external_id,
                    raw_id=raw_id,
                    message_id=event.status.message_id if event.status else None,
                )
        if any(stored.values()):
            self.wake_listeners()
        for channel in recorded.send_channels:
            self.on_sends_queued(channel)
        if busy:
            await self._pause(pause)
        return len(rows) == limit

    async def _normalise(self, rows: list[InboxRow], now: float) -> InboundRecorded:
        parsed: list[tuple[int, list[PreparedEvent]]] = []
        failed: dict[int, list[FailedPartRecord]] = {}
        for row in rows:
            reading = await self._parse(row, now)
            if reading is not None:
                parsed.append((row.id, reading.events))
                if reading.failed or row.failed_parts:  # [] clears a replay's old failures
                    failed[row.id] = reading.failed
                    self._count_failed(row, reading.failed)
            await asyncio.sleep(0)  # parsing is CPU work: let webhook acknowledgements through
        return await self.store.record_inbound_batch(
            parsed,
            self.targets_for,
            now,
            link_by_phone=self.link_by_phone,
            routing=self.routing,
            failed=failed,
        )

    def _count(self, event: Event) -> None:
        """EVENTS for the event's channel and type. `labels()` checks and locks its way to
        the same child every time, 10k instructions an event: the child is kept instead."""
        key = (event.channel.id, event.type)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = EVENTS.labels(*key)
        counter.inc()

    @staticmethod
    def _count_failed(row: InboxRow, parts: list[FailedPartRecord]) -> None:
        for part in parts:
            INBOX_FAILED.labels(row.channel_id).inc()
            log.warning(
                "inbox_part_failed",
                raw_id=row.id,
                channel=row.channel_id,
                path=part.path,
                reason=part.reason,
            )

    async def _pause(self, seconds: float) -> None:
        """Let acknowledgements have the loop, and set the next slice's pace by how much of
        the pause they left idle."""
        if self.spare is None:
            await asyncio.sleep(seconds)
            return
        spare = await self.spare.pause(seconds)
        if spare >= SPARE:
            self.pace = min(self.pace + 1, len(PACES) - 1)
        elif spare < SATURATED:
            self.pace = max(self.pace - 1, 0)

    async def _parse(self, row: InboxRow, now: float) -> RowReading | None:
        # Stored before a reload removed its channel (acknowledged, so it must not be lost).
        adapter = get_or_removed(self.adapters, row.channel_id)
        if adapter is None:
            await self._fail(row, f"channel {row.channel_id!r} is not configured", now)
            return None
        reading = read_inbox_row(adapter, row)
        if isinstance(reading, str):
            await self._fail(row, reading, now)
            return None
        return reading

    async def _fail(self, row: InboxRow, reason: str, now: float) -> None:
        INBOX_FAILED.labels(row.channel_id).inc()
        log.warning("inbox_row_failed", raw_id=row.id, channel=row.channel_id, reason=reason)
        await self.store.fail_inbox(row.id, reason, now)
