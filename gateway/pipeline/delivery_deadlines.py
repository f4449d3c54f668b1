"""Messages to users still without a `delivered` status at their due time fail over to the
user's next identity (routing.delivery_timeout_seconds; docs/sending-to-users.md).

The due times are in the store (message_routes.deliver_by), so a restarted gateway keeps
every pending timer. The worker sleeps until the earliest one, never longer than the timeout
itself: a message accepted meanwhile is due no sooner than a timeout after it, so a sleep of
at most one timeout wakes in time for it without being told, and nothing polls in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from adapters.base import Adapter
from gateway.ids import new_id
from gateway.logs import get_logger
from gateway.pipeline.worker import Worker
from gateway.schema import ChannelRef, Event, EventError, Party, Status
from gateway.store import Store
from gateway.store.records import TargetsFor

log = get_logger("gateway.delivery_deadlines")

BATCH = 100
# No timer set: look again this often (a timeout in the config needs a restart anyway).
IDLE_SECONDS = 3600.0
# A due time already past after a sweep belongs to a message being sent right now (its claim
# is left alone): looked at again after this, rather than in a busy loop.
BUSY_RETRY_SECONDS = 5.0


def timed_out_event(
    message_id: str, channel_id: str, channel_type: str, recipient: str, timeout: float
) -> Event:
    """The `failed` status of a message that was still queued (retried) at its due time."""
    error = EventError(
        code="delivery_timeout",
        title=f"not delivered within {timeout:g} s; sent to the user's next identity",
        retryable=False,
    )
    return Event(
        id=new_id("evt"),
        type="status",
        channel=ChannelRef(id=channel_id, type=channel_type),
        timestamp=datetime.now(UTC),
        recipient=Party(id=recipient),
        status=Status(message_id=message_id, state="failed", error=error),
    )


class DeliveryDeadlines(Worker):
    name = "delivery_deadlines"

    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        targets_for: TargetsFor,
        timeout_seconds: float | None,
        on_queued: Callable[[str], None],  # a failover queued a message on this channel
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.longest_sleep = timeout_seconds or IDLE_SECONDS
        super().__init__(self.longest_sleep)
        self.store = store
        self.adapters = adapters
        self.targets_for = targets_for
        self.on_queued = on_queued
        self.clock = clock

    async def run_once(self) -> bool:
        now = self.clock()
        overdue = await self.store.overdue_deliveries(now, BATCH)
        for message_id, _state, channel_id, recipient, timeout in overdue:
            adapter = self.adapters.get(channel_id)
            event = timed_out_event(
                message_id, channel_id, adapter.type if adapter else "unknown", recipient, timeout
            )
            queued = await self.store.time_out_delivery(message_id, event, self.targets_for, now)
            log.info("delivery_timed_out", message_id=message_id, next_channel=queued)
            if queued is not None:
                self.on_queued(queued)
        if overdue:
            self.wake_listeners()
        if len(overdue) >= BATCH:
            return True
        due = await self.store.next_delivery_due()
        wait = self.longest_sleep if due is None else due - self.clock()
        self.poll_interval = min(self.longest_sleep, wait if wait > 0 else BUSY_RETRY_SECONDS)
        return False
