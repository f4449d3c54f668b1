"""One recipient's messages go out in turn: one at a time, in the order they were queued, and
none past one that waits for a retry.

Sent side by side, "Order confirmed" and "On its way" could arrive swapped; sent past a message
that failed for now (a 500, a throttle), the later one would arrive first. So each recipient's
claimed sends form a queue that one task works, in claim order (due time, then id).

The store keeps most of the rule: recording a retry puts the recipient's later messages back
until it is due, and a message queued meanwhile is due no earlier (`Store.record_send_retry`,
`writes.insert_message`). What it cannot see is a claim already made: rows claimed before the
retry was recorded, but handed over after it. So a retry also holds the recipient here until
the retried message is claimed again: what comes for the recipient meanwhile is put back
behind it, without counting an attempt. A hold ends by itself after `HOLD_SECONDS` past the
retry's time, in case another process took the message.

A retry due more than `KEEP_ORDER_SECONDS` away holds nothing: the later messages go.

Across processes (several gateways on one PostgreSQL), the claim keeps the order: only the
first row of a recipient's line is claimed (`writes.FIRST_IN_LINE`), so no process takes the
next one while another sends the first.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from gateway.logs import get_logger
from gateway.store import MessageRecord, OutboxItem
from gateway.store.writes import KEEP_ORDER_SECONDS

log = get_logger("gateway.turns")

Entry = tuple[OutboxItem, MessageRecord | None]
Key = tuple[str, str]  # (channel, recipient)
# Sends one; returns when its retry is due if it must wait for one, else None.
Send = Callable[[OutboxItem, MessageRecord | None], Awaitable[float | None]]
# Puts rows back in the outbox until a time, without counting an attempt.
Defer = Callable[[list[int], float], Awaitable[None]]

# Holds of recipients never messaged again are dropped once there are this many.
HOLDS_KEPT = 10_000
# How long past its retry's time a hold waits for the retried message to be claimed here.
# Short: what it put back is due at the same time as the retried message, after it in claim
# order (same time, higher id), so the store keeps the order once the hold has ended. It only
# bounds how long a claim of those rows alone (another process took the retried one) recurs.
HOLD_SECONDS = 1.0


class Hold(NamedTuple):
    until: float  # when the retried message is due
    outbox_id: int  # the retried message's row


class RecipientOrder:
    def __init__(
        self, send: Send, defer: Defer, ended: Callable[[str], None], closing: Callable[[], bool]
    ) -> None:
        self._send = send
        self._defer = defer
        self._ended = ended  # a send on this channel ended: there is room for another
        self._closing = closing
        self._queues: dict[Key, deque[Entry]] = {}
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self._held: dict[Key, Hold] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def in_flight(self, channel: str) -> int:
        """Claimed sends of `channel` that have not ended: under way or waiting their turn."""
        return self._in_flight[channel]

    def idle(self) -> bool:
        return not self._queues and not any(self._in_flight.values())

    def unsent(self) -> list[int]:
        """The outbox rows claimed and not yet sent: under way, or waiting their turn."""
        return [item.id for queue in self._queues.values() for item, _record in queue]

    async def add(self, channel: str, entries: list[Entry]) -> None:
        """Queue claimed sends (oldest first) behind their recipients' sends under way."""
        now = time.time()
        held: defaultdict[float, list[int]] = defaultdict(list)
        for item, record in entries:
            key = (channel, record.recipient_id if record else f"#{item.id}")
            hold = self._held.get(key)
            if hold is not None:
                if item.id != hold.outbox_id and now < hold.until + HOLD_SECONDS:
                    held[hold.until].append(item.id)  # due with it, so claimed after it
                    continue
                del self._held[key]  # the retried message is back (first: claims are in order)
            self._in_flight[channel] += 1
            queue = self._queues.get(key)
            if queue is not None:
                queue.append((item, record))
                continue
            self._queues[key] = deque([(item, record)])
            task = asyncio.create_task(self._take(channel, key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        for until, ids in held.items():
            await self._put_back(ids, until)

    async def _take(self, channel: str, key: Key) -> None:
        queue = self._queues[key]
        try:
            while queue and not self._closing():  # at shutdown the rest waits for the restart
                item, record = queue[0]
                retry_at: float | None = None
                try:
                    retry_at = await self._send(item, record)
                except Exception:  # a store hiccup, say
                    log.exception("send_crashed", outbox_id=item.id, channel=channel)
                    # Back in line now, the recipient's later sends behind it (below), rather
                    # than held for its lease with the recipient's whole line waiting behind.
                    retry_at = time.time()
                    await self._put_back([item.id], retry_at)
                finally:
                    queue.popleft()
                    self._in_flight[channel] -= 1
                if retry_at is not None and retry_at <= time.time() + KEEP_ORDER_SECONDS:
                    self._hold(key, Hold(retry_at, item.id))
                    if queue:
                        later = [i.id for i, _record in queue]
                        self._in_flight[channel] -= len(queue)
                        queue.clear()
                        await self._put_back(later, retry_at)
                self._ended(channel)
        finally:
            del self._queues[key]

    def _hold(self, key: Key, hold: Hold) -> None:
        if len(self._held) >= HOLDS_KEPT:
            now = time.time()
            self._held = {k: h for k, h in self._held.items() if now < h.until + HOLD_SECONDS}
        self._held[key] = hold

    async def _put_back(self, ids: list[int], until: float) -> None:
        try:
            await self._defer(ids, until)
        except Exception:  # they stay leased, then are claimed again: late, not lost
            log.exception("send_hold_failed", outbox_ids=ids)
