"""Statuses that arrive before their send is recorded: held back, then delivered naming it.

A provider may report on a message before the gateway has recorded sending it. Twilio calls a
long SMS's status callbacks for its first part while the gateway still sends the rest, and the
gateway records a send's provider ids once every part is accepted (pipeline/dispatcher.py).
Such a status is stored at once, raw first and deduped like any other, with `held_since` set,
and is not queued for the backends. Then:

- `resolve`, in the transaction that records the send, applies it to the message and queues
  it, naming the message, right after the send's own `sent`;
- `sweep`, run every few seconds, resolves those whose send another gateway process recorded
  while this one stored the status (each transaction missed the other's rows), and releases
  those still unmatched after the hold (`delivery.status_hold_seconds`) without a message id:
  they report a message this gateway did not send (another tool on the same number), or one
  whose send was lost before it was recorded (the message then goes again, under new ids).

A status reporting on part of a message whose other parts wait for a retry stays held until
the message is recorded sent or failed: applied earlier, it would move the message on from
`queued` and the retry would send nothing.

Whoever clears `held_since` delivers the status: the clearing skips rows another process has
locked, so exactly one transaction does, in any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from gateway.router.statuses import held_route
from gateway.schema import Event
from gateway.store import routes
from gateway.store.database import Tx
from gateway.store.records import TargetsFor
from gateway.store.writes import enqueue_webhooks, in_list, route_status, sent_message

_HELD = (
    "SELECT id FROM events WHERE type = 'status' AND message_id IS NULL AND held_since IS NOT NULL"
)
# The message of a held status's provider id (its rows are `events`).
_PART = (
    "SELECT 1 FROM message_parts p WHERE p.channel_id = events.channel_id"
    " AND p.external_id = events.external_id"
)
_PART_OF_RECORDED = (
    "SELECT 1 FROM message_parts p JOIN messages m ON m.id = p.message_id"
    " WHERE p.channel_id = events.channel_id AND p.external_id = events.external_id"
    " AND m.state <> 'queued'"
)


class Settled(NamedTuple):
    resolved: list[Event]  # applied to their message and queued, naming it
    released: list[Event]  # unmatched after the hold: queued without a message id


def resolve(
    tx: Tx, channel_id: str, external_ids: Sequence[str], targets_for: TargetsFor, now: float
) -> list[Event]:
    """Deliver the statuses held for the provider ids of a send being recorded."""
    if not external_ids:
        return []
    where = " AND channel_id = ? AND external_id IN " + in_list(external_ids)
    return _settle(tx, _claim(tx, where, [channel_id, *external_ids]), targets_for, now).resolved


def sweep(tx: Tx, cutoff: float, limit: int, targets_for: TargetsFor, now: float) -> Settled:
    """Deliver up to `limit` held statuses: those whose message is now recorded, and those
    held since before `cutoff` that match no message of ours."""
    where = (
        f" AND (EXISTS ({_PART_OF_RECORDED}) OR (held_since < ? AND NOT EXISTS ({_PART})))"
        " ORDER BY held_since LIMIT ?"
    )
    return _settle(tx, _claim(tx, where, [cutoff, limit]), targets_for, now)


def _claim(tx: Tx, where: str, params: list[Any]) -> list[Event]:
    """Take the held statuses `where` selects that no other transaction has locked, oldest first."""
    rows = tx.all(
        "UPDATE events SET held_since = NULL WHERE id IN ("
        + _HELD
        + where
        + tx.dialect.skip_locked
        + ") RETURNING created_at, body",
        params,
    )
    return [Event.model_validate_json(body) for _at, body in sorted(rows, key=lambda r: r[0])]


def _settle(tx: Tx, held: list[Event], targets_for: TargetsFor, now: float) -> Settled:
    settled = Settled([], [])
    for event in held:
        sent = sent_message(tx, event)
        match held_route(sent):  # gateway/router/statuses.py
            case "release":
                enqueue_webhooks(tx, event, targets_for, now)
                settled.released.append(event)
                continue
            case "hold":  # its parts were recorded for a retry since the sweep chose it
                tx.write("UPDATE events SET held_since = created_at WHERE id = ?", (event.id,))
                continue
        assert sent is not None
        routed = route_status(tx, event, sent, now)
        # Named even when it changes nothing (a second part's `delivered`), so it is never
        # taken for unmatched; only one that moves the message on goes to the backends.
        assert event.status is not None
        status = event.status.model_copy(update={"message_id": sent.id})
        named = routed or event.model_copy(update={"status": status})
        tx.write(
            "UPDATE events SET message_id = ?, body = ? WHERE id = ?",
            (sent.id, named.model_dump_json(exclude_none=True), event.id),
        )
        if routed is not None:
            enqueue_webhooks(tx, routed, targets_for, now)
            routes.after_status(tx, routed, targets_for, now)
            settled.resolved.append(routed)
    return settled
