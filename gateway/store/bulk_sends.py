"""What a broadcast's sends need from the store, without a round trip each: `Store.bulk`.

A bulk send used to wait for three store operations of its own, each a group commit with its
fsync: its contact state, the check that its broadcast still wants it (not cancelled, not past
its ttl), and its sent record. A lane holds a bounded number of bulk rows (so that a reply
queued mid-broadcast waits behind few), so those round trips set the broadcast's rate: 62-73/s
of a 100/s limit in bench/broadcast.py. Here the first two are answered for a whole claim:
- `facts` reads every claimed bulk send's broadcast, member and contact state in one statement;
- `why_not` answers from memory whether a broadcast still wants its sends. This process's
  cancel is seen at once (`Store.cancel_broadcast` calls `cancelled`); another process's (several
  gateways on one PostgreSQL) within `REFRESH_SECONDS`, as the state is read again in the
  background; a ttl is compared with the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.logs import get_logger
from gateway.store import broadcasts, writes
from gateway.store.database import Tx
from gateway.store.records import ContactState

if TYPE_CHECKING:
    from gateway.store.store import Store

log = get_logger("gateway.store.bulk_sends")

# How stale a broadcast's state may be when another process cancels it: the sends this
# process has claimed may go for this long after that cancel (this process's own are stopped
# at once). One read per broadcast under way each time, shared by all its sends.
REFRESH_SECONDS = 0.5
# Broadcasts remembered: past this many, those whose sends were last claimed more than
# FORGET_SECONDS ago (a lease's worth and more) are forgotten.
KNOWN_KEPT = 1_000
FORGET_SECONDS = 600.0


@dataclass(frozen=True)
class BulkFacts:
    """A claimed broadcast send's member and contact, read with the claim's other sends."""

    broadcast_id: str
    member_key: str
    contact: ContactState


@dataclass
class _Known:
    state: str
    expires_at: float | None
    read_at: float  # time.monotonic()


def _optional(value: object) -> float | None:
    return writes.optional_float(value)


def read_facts(
    tx: Tx, message_ids: Sequence[str]
) -> tuple[dict[str, BulkFacts], dict[str, tuple[str, float | None]]]:
    """Each message's member and contact state, and the state and ttl of their broadcasts."""
    ids = list(dict.fromkeys(message_ids))
    rows = tx.all(
        "SELECT bm.message_id, b.id, bm.member_key, b.state, b.expires_at, c.last_inbound_at,"
        " c.unsubscribed_at, c.unsubscribe_reason, c.reply_token, c.reply_token_at"
        " FROM broadcast_members bm JOIN broadcasts b ON b.id = bm.broadcast_id"
        " JOIN messages m ON m.id = bm.message_id"
        " LEFT JOIN contacts c ON c.channel_id = m.channel_id AND c.user_id = m.recipient_id"
        " WHERE bm.message_id IN " + writes.in_list(ids),
        ids,
    )
    facts: dict[str, BulkFacts] = {}
    states: dict[str, tuple[str, float | None]] = {}
    for row in rows:
        contact = ContactState(_optional(row[5]), _optional(row[6]), row[7], row[8],
                               _optional(row[9]))  # fmt: skip
        facts[row[0]] = BulkFacts(row[1], row[2], contact)
        states[row[1]] = (row[3], _optional(row[4]))
    return facts, states


def _state(tx: Tx, broadcast_id: str) -> tuple[str, float | None] | None:
    row = tx.one("SELECT state, expires_at FROM broadcasts WHERE id = ?", (broadcast_id,))
    return None if row is None else (row[0], _optional(row[1]))


class BulkSends:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: dict[str, _Known] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}

    async def facts(self, message_ids: Sequence[str]) -> dict[str, BulkFacts]:
        """The claimed bulk sends' facts, by message id (those that are broadcast members)."""
        if not message_ids:
            return {}
        facts, states = await self.store.db.run(
            lambda tx: read_facts(tx, message_ids), single_statement=True
        )
        read_at = time.monotonic()
        if len(self._known) > KNOWN_KEPT:
            self._known = {
                b: k for b, k in self._known.items() if read_at - k.read_at < FORGET_SECONDS
            }
        for broadcast_id, (state, expires_at) in states.items():
            self._learn(broadcast_id, state, expires_at, read_at)
        return facts

    def _learn(self, broadcast_id: str, state: str, expires_at: float | None, at: float) -> None:
        known = self._known.get(broadcast_id)
        if known is not None and known.state == "cancelled":
            return  # a cancel is final; a read begun before it must not undo it
        self._known[broadcast_id] = _Known(state, expires_at, at)

    def cancelled(self, broadcast_id: str) -> None:
        """This process cancelled it: its claimed sends stop now."""
        self._known[broadcast_id] = _Known("cancelled", None, time.monotonic())

    def why_not(self, broadcast_id: str, now: float) -> str | None:
        """Why the broadcast's sends may not go any more ("cancelled", "expired"), or None."""
        known = self._known.get(broadcast_id)
        if known is None:
            return None  # never read: its send was claimed by `facts`, which read it
        if known.state == "cancelled":
            return "cancelled"
        if time.monotonic() - known.read_at > REFRESH_SECONDS:
            self._refresh(broadcast_id)
        if known.expires_at is not None and now > known.expires_at:
            return "expired"
        return None

    def _refresh(self, broadcast_id: str) -> None:
        if broadcast_id in self._reading:
            return
        task = asyncio.create_task(self._read(broadcast_id))
        self._reading[broadcast_id] = task

    async def _read(self, broadcast_id: str) -> None:
        try:
            with contextlib.suppress(Exception):  # read again at the next send's check
                found = await self.store.db.run(
                    lambda tx: _state(tx, broadcast_id), single_statement=True
                )
                if found is None:
                    self._known.pop(broadcast_id, None)
                else:
                    self._learn(broadcast_id, *found, time.monotonic())
        finally:
            self._reading.pop(broadcast_id, None)

    async def withdraw(self, outbox_id: int, facts: BulkFacts, reason: str, now: float) -> None:
        """Take a claimed send its broadcast no longer wants out, as a cancel does."""
        why = (reason, facts.broadcast_id, facts.member_key)
        await self.store.db.run(lambda tx: broadcasts.withdraw(tx, outbox_id, why, now))
