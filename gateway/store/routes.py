"""Messages sent to a user (docs/sending-to-users.md) in the store: each function runs inside
the caller's transaction.

The API decides the order of the user's identities (gateway/router/channel_choice.py) and
stores it with the message: the identities still to try, each with why it stands there. A
failover takes the next one whose channel the message has not gone to yet, in the transaction
that records the failure (or the missing `delivered`), so it happens once, in any process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from gateway.ids import new_id
from gateway.schema import Event, Failover, UserEvent
from gateway.schema.users import SentTo
from gateway.store import writes
from gateway.store.database import Tx
from gateway.store.records import NewMessage, TargetsFor


@dataclass(frozen=True)
class RouteStep:
    """An identity to try: its channel instance, its provider id, why it is in the order, and
    whether a `delivered` status is awaited from it (routing.delivery_timeout_seconds)."""

    channel: str
    id: str
    reason: str
    timed: bool = False


@dataclass(frozen=True)
class NewRoute:
    user_id: str
    chosen: RouteStep
    remaining: Sequence[RouteStep]
    skipped: Sequence[RouteStep]  # left out of the order (opted out, strict), with why
    failover: bool
    timeout_seconds: float | None


def _detail(step: RouteStep) -> str:
    return f"{step.channel}: {step.reason}"


def _insert_route(
    tx: Tx,
    message_id: str,
    root_id: str,
    user_id: str,
    step: RouteStep,
    remaining: Sequence[RouteStep],
    failover: bool,
    timeout: float | None,
    now: float,
) -> None:
    due = now + timeout if timeout is not None and step.timed else None
    tx.execute(
        "INSERT INTO message_routes (message_id, root_id, user_id, remaining, failover,"
        " timeout_seconds, deliver_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            message_id,
            root_id,
            user_id,
            json.dumps([asdict(r) for r in remaining]),
            1 if failover else 0,
            timeout,
            due,
        ),
    )


def record_choice(tx: Tx, message_id: str, route: NewRoute, now: float) -> None:
    """Keep a new message's route, and say in its history which identity was chosen and why
    (and which were skipped)."""
    for skipped in route.skipped:
        writes.history(tx, message_id, now, "skipped", _detail(skipped))
    writes.history(tx, message_id, now, "chosen", _detail(route.chosen))
    _insert_route(
        tx,
        message_id,
        message_id,
        route.user_id,
        route.chosen,
        route.remaining,
        route.failover,
        route.timeout_seconds,
        now,
    )


def settle(tx: Tx, message_id: str) -> None:
    """Delivered: no timer, no failover any more."""
    tx.execute(
        "UPDATE message_routes SET settled = 1, deliver_by = NULL WHERE message_id = ?",
        (message_id,),
    )


def after_status(tx: Tx, event: Event, targets_for: TargetsFor, now: float) -> str | None:
    """What a status of a message to a user does to its route: `delivered` (or `read`) settles
    it; `failed` fails over. The channel a failover queued a message on, if any."""
    status = event.status
    if status is None or status.message_id is None:
        return None
    if status.state in ("delivered", "read"):
        settle(tx, status.message_id)
        return None
    if status.state != "failed":
        return None
    why = f"{status.error.code}: {status.error.title}" if status.error else "failed"
    return fail_over(tx, status.message_id, why, targets_for, now)


def _tried_channels(tx: Tx, root_id: str) -> set[str]:
    rows = tx.all(
        "SELECT m.channel_id FROM message_routes r JOIN messages m ON m.id = r.message_id"
        " WHERE r.root_id = ?",
        (root_id,),
    )
    return {row[0] for row in rows}


def _opted_out(tx: Tx, step: RouteStep) -> bool:
    row = tx.one(
        "SELECT unsubscribed_at FROM contacts WHERE channel_id = ? AND user_id = ?",
        (step.channel, step.id),
    )
    return row is not None and row[0] is not None


def fail_over(
    tx: Tx, message_id: str, reason: str, targets_for: TargetsFor, now: float
) -> str | None:
    """Send the message's content to the user's next identity, once: the channel it is queued
    on, or None (not a message to a user, failover off, done already, or nobody left)."""
    row = tx.one(
        "SELECT root_id, user_id, remaining, failover, timeout_seconds FROM message_routes"
        " WHERE message_id = ? AND settled = 0",
        (message_id,),
    )
    if row is None:
        return None
    root_id, user_id, remaining_json, failover, timeout = row
    settle(tx, message_id)
    if not failover:
        return None
    tried = _tried_channels(tx, root_id)
    remaining = [RouteStep(**r) for r in json.loads(remaining_json)]
    for index, step in enumerate(remaining):
        if step.channel in tried:
            continue
        if _opted_out(tx, step):
            writes.history(tx, root_id, now, "skipped", f"{step.channel}: opted out")
            continue
        return _send_next(
            tx, message_id, root_id, user_id, step, remaining[index + 1 :], timeout, reason,
            targets_for, now,
        )  # fmt: skip
    writes.history(tx, root_id, now, "failover", f"no identity left to try: {reason}")
    return None


def _send_next(
    tx: Tx,
    failed_id: str,
    root_id: str,
    user_id: str,
    step: RouteStep,
    rest: Sequence[RouteStep],
    timeout: float | None,
    reason: str,
    targets_for: TargetsFor,
    now: float,
) -> str:
    failed = tx.one(
        "SELECT channel_id, recipient_id, content, metadata, options, api_key, request_hash"
        " FROM messages WHERE id = ?",
        (failed_id,),
    )
    from_channel, from_id, content, metadata, options, api_key, request_hash = failed
    child = NewMessage(
        id=new_id("msg"),
        channel_id=step.channel,
        recipient_id=step.id,
        content=content,
        metadata=metadata,
        api_key=api_key,
        idempotency_key=None,
        request_hash=request_hash,
        options=options,
    )
    writes.insert_message(tx, child, now)
    writes.history(tx, child.id, now, "chosen", f"{_detail(step)}; failover from {from_channel}")
    _insert_route(tx, child.id, root_id, user_id, step, rest, True, timeout, now)
    line = f"{from_channel} → {step.channel} ({child.id}): {reason}"
    for message_id in dict.fromkeys((root_id, failed_id)):
        writes.history(tx, message_id, now, "failover", line)
    event = UserEvent(
        id=new_id("evt"),
        type="message.failover",
        timestamp=datetime.fromtimestamp(now, UTC),
        user_id=user_id,
        failover=Failover(
            message_id=root_id,
            failed=SentTo(channel=from_channel, id=from_id, message_id=failed_id),
            next=SentTo(channel=step.channel, id=step.id, message_id=child.id),
            reason=reason,
        ),
    )
    writes.emit_channelless(tx, event, "", "user", targets_for, now)
    return step.channel


def overdue(tx: Tx, now: float, limit: int) -> list[tuple[str, str, str, str, float]]:
    """Messages to users whose `delivered` is overdue: (id, state, channel, recipient,
    timeout)."""
    rows = tx.all(
        "SELECT r.message_id, m.state, m.channel_id, m.recipient_id, r.timeout_seconds"
        " FROM message_routes r JOIN messages m ON m.id = r.message_id"
        " WHERE r.deliver_by IS NOT NULL AND r.deliver_by <= ? ORDER BY r.deliver_by LIMIT ?",
        (now, limit),
    )
    return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def time_out(
    tx: Tx, message_id: str, failed_event: Event, targets_for: TargetsFor, now: float
) -> str | None:
    """No `delivered` in time: fail over. A message still queued is failed first (its send
    taken out of the outbox), so it cannot go after its failover; one claimed by a sender
    right now waits for the next look."""
    row = tx.one(
        "SELECT r.timeout_seconds, m.state FROM message_routes r JOIN messages m"
        " ON m.id = r.message_id WHERE r.message_id = ? AND r.deliver_by <= ?",
        (message_id, now),
    )
    if row is None:  # delivered, or failed over, since it was read
        return None
    timeout, state = float(row[0]), row[1]
    reason = f"no delivered status within {timeout:g} s"
    if state in ("delivered", "read", "failed"):
        settle(tx, message_id)
        return None
    if state == "queued":
        sends = tx.all(
            "SELECT id FROM outbox WHERE kind = 'send' AND ref = ? AND status = 'pending'"
            " AND (claimed_until IS NULL OR claimed_until < ?)",
            (message_id, now),
        )
        if not sends:
            return None
        writes.finish_outbox(tx, [r[0] for r in sends], "failed", now)
        assert failed_event.status is not None and failed_event.status.error is not None
        error = failed_event.status.error
        writes.advance(tx, message_id, "failed", error.model_dump(), reason, now)
        writes.insert_event(tx, failed_event, f"gw:{message_id}:failed", now)
        writes.enqueue_webhooks(tx, failed_event, targets_for, now)
    else:
        writes.history(tx, message_id, now, "timeout", reason)
    return fail_over(tx, message_id, reason, targets_for, now)


def next_due(tx: Tx) -> float | None:
    row = tx.one("SELECT MIN(deliver_by) FROM message_routes WHERE deliver_by IS NOT NULL", ())
    return writes.optional_float(row[0]) if row else None
