"""Sends the providers accepted, recorded together: a few statements for a whole group.

Recorded one at a time, a send took seven statements (its provider ids, its outbox row, its
message's state and history, its `sent` event, the statuses held for it), each a round trip
to PostgreSQL, in a savepoint of its own: two more. The sends that end together
(pipeline/recorder.py gathers them) are recorded here with one statement of each kind for the
whole group; only a `sent` event whose key was seen already (a redelivery, which never happens
in the common case) goes through `writes.insert_event` alone.

The outcome is the one-at-a-time outcome (`Store.record_sent`), send after send: a message
recorded twice in a group changes once; a stale one gets its `ignored:` history line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from gateway.router.statuses import state_change
from gateway.schema import Event
from gateway.store import held, writes
from gateway.store.database import Tx
from gateway.store.records import TargetsFor


class SentSend(NamedTuple):
    """A send the provider accepted, to record."""

    outbox_id: int
    message_id: str
    channel_id: str
    external_ids: Sequence[str]
    detail: str | None  # its history line's
    event: Event  # its `sent` status


def record(tx: Tx, sends: Sequence[SentSend], targets_for: TargetsFor, now: float) -> list[Event]:
    """Record `sends`; the events queued for the backends: each `sent`, then the statuses that
    were held for them (store/held.py)."""
    if not sends:
        return []
    parts = [
        (s.channel_id, external_id, s.message_id, position)
        for s in sends
        for position, external_id in enumerate(s.external_ids)
    ]
    if parts:
        tx.write(
            "INSERT INTO message_parts (channel_id, external_id, message_id, position) VALUES "
            + writes.values(len(parts), 4)
            + " ON CONFLICT (channel_id, external_id) DO NOTHING",
            [value for part in parts for value in part],
        )
    writes.finish_outbox(tx, [s.outbox_id for s in sends], "done", now)
    forward = _advance(tx, sends, now)
    stored = _insert_events(tx, forward, now)
    emitted = [s.event for s in forward if s.event.id in stored]
    for event in emitted:
        writes.enqueue_webhooks(tx, event, targets_for, now)
    by_channel: dict[str, list[str]] = {}
    for s in sends:
        by_channel.setdefault(s.channel_id, []).extend(s.external_ids)
    for channel_id, external_ids in by_channel.items():
        emitted += held.resolve(tx, channel_id, external_ids, targets_for, now)
    return emitted


def _advance(tx: Tx, sends: Sequence[SentSend], now: float) -> list[SentSend]:
    """Move the sends' messages to `sent` (`writes.advance`, for a group): those moved."""
    ids = list(dict.fromkeys(s.message_id for s in sends))
    states: dict[str, str] = dict(
        tx.all("SELECT id, state FROM messages WHERE id IN " + writes.in_list(ids), ids)
    )
    forward: list[SentSend] = []
    history: list[tuple[str, float, str, str | None]] = []
    for s in sends:
        current = states.get(s.message_id)
        if current is None:
            continue
        match state_change(current, "sent"):
            case "forward":
                forward.append(s)
                history.append((s.message_id, now, "sent", s.detail))
                states[s.message_id] = "sent"
            case "stale":
                history.append((s.message_id, now, "ignored:sent", f"already {current}"))
    if forward:
        moved = [s.message_id for s in forward]
        tx.write(
            "UPDATE messages SET state = 'sent', updated_at = ? WHERE id IN "
            + writes.in_list(moved),
            (now, *moved),
        )
    if history:
        tx.write(
            "INSERT INTO message_history (message_id, at, state, detail) VALUES "
            + writes.values(len(history), 4),
            [value for row in history for value in row],
        )
    return forward


def _insert_events(tx: Tx, sends: Sequence[SentSend], now: float) -> set[str]:
    """Store the sends' `sent` events: the ids of those stored (`writes.insert_event`'s rule)."""
    if not sends:
        return set()
    params: list[Any] = []
    for s in sends:
        event = s.event
        params += (
            event.id,
            event.channel.id,
            _key(s),
            event.type,
            event.external_id,
            s.message_id,
            event.raw_id,
            now,
            event.model_dump_json(exclude_none=True),
            None,
        )
    stored = {
        row[0]
        for row in tx.all(
            "INSERT INTO events (id, channel_id, dedupe_key, type, external_id, message_id,"
            " raw_id, created_at, body, held_since) VALUES "
            + writes.values(len(sends), 10)
            + " ON CONFLICT (channel_id, dedupe_key) DO NOTHING RETURNING id",
            params,
        )
    }
    for s in sends:  # a key seen before: the one-at-a-time rule decides (a redelivery)
        if s.event.id not in stored and writes.insert_event(tx, s.event, _key(s), now):
            stored.add(s.event.id)
    return stored


def _key(send: SentSend) -> str:
    return f"gw:{send.message_id}:sent"
