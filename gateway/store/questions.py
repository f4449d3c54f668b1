""" "Which chat is this for?": a person present in several open conversations whose message
no rule routes (gateway/router/conversations.py) is asked, and the message is held until
they answer. Each function runs inside the caller's transaction (docs/conversations.md,
"Routing a person in several conversations").

A held message is stored at once, deduped like any other, with `events.held_since` set and
not queued for the backends; its id waits in `route_questions`. The answer ("2", "two" or a
label) routes every held message to that conversation, exactly as if it had arrived there.
A message that answers nothing is routed by the usual rules, else held too and the question
asked again. Unanswered after `conversations.route_question_seconds`, the held messages go to
the most recently active of the conversations offered (`expire`, and the person's next
message): a held message is never lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gateway.ids import new_id
from gateway.router.conversations import (
    DEFAULT_ANNOUNCEMENTS,
    ROUTED_TYPES,
    Announcements,
    Ask,
    Membership,
    RoutingPolicy,
    after_timeout,
    answered,
    label_of,
    provider_group,
    question_choices,
    question_text,
)
from gateway.schema import Event
from gateway.schema.content import TextContent
from gateway.store import control, conversations, relay, steps
from gateway.store.database import Tx
from gateway.store.records import NewMessage, PreparedEvent, TargetsFor

# The owner of the questions the gateway sends (as forms' replies are "gateway:forms").
ASKER = "gateway:route"


def answer(
    tx: Tx,
    prepared: PreparedEvent,
    targets_for: TargetsFor,
    policy: RoutingPolicy,
    now: float,
    announcements: Announcements = DEFAULT_ANNOUNCEMENTS,
) -> bool:
    """Whether the event answers the sender's open question. Its held messages then go to
    the conversation picked; the answer itself is kept, not forwarded (like a form's)."""
    event = prepared.event
    if event.type not in ROUTED_TYPES or event.sender is None:
        return False  # statuses and the like: no query spent on them
    if provider_group(event.channel_data) is not None:
        return False  # said in a provider group: not an answer to a private question
    row = tx.one(
        "SELECT options, expires_at FROM route_questions WHERE channel_id = ? AND user_id = ?",
        (event.channel.id, event.sender.id),
    )
    if row is None:
        return False
    if float(row[1]) <= now:
        _settle(tx, event.channel.id, event.sender.id, None, targets_for, now, announcements)
        return False
    if event.type != "message" or event.message is None:
        return False
    content = event.message.content
    options = json.loads(row[0])
    labels = [(conversation_id, label) for conversation_id, _seat, label in options]
    picked = answered(content.text, question_choices(labels)) if content.type == "text" else None
    if picked is None:
        return False
    body = prepared.body or event.model_dump_json(exclude_none=True)
    if steps.insert_event(tx, event, prepared.dedupe_key, now, body):
        _settle(tx, event.channel.id, event.sender.id, picked, targets_for, now, announcements)
    return True


def hold(
    tx: Tx,
    prepared: PreparedEvent,
    ask: Ask,
    targets_for: TargetsFor,
    policy: RoutingPolicy,
    now: float,
) -> bool:
    """Keep the event back and ask its sender which conversation it is for (again, if a
    question is open). False for a redelivery, which changes nothing."""
    event = prepared.event
    assert event.sender is not None
    body = prepared.body or event.model_dump_json(exclude_none=True)
    if not steps.insert_event(tx, event, prepared.dedupe_key, now, body, held=True):
        return False
    key = (event.channel.id, event.sender.id)
    tx.execute(
        "INSERT INTO route_held (channel_id, user_id, event_id) VALUES (?, ?, ?)",
        (*key, event.id),
    )
    options = _options(tx, ask.options)
    tx.execute(
        "INSERT INTO route_questions (channel_id, user_id, options, asked_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id, user_id) DO UPDATE SET"
        " options = excluded.options, asked_at = excluded.asked_at,"
        " expires_at = excluded.expires_at",
        (*key, json.dumps(options), now, now + policy.question_seconds),
    )
    choices = question_choices([(cid, label) for cid, _seat, label in options])
    question = TextContent(type="text", text=question_text(choices))
    steps.insert_message(
        tx,
        NewMessage(
            new_id("msg"),
            event.channel.id,
            event.sender.id,
            question.model_dump_json(exclude_none=True),
            json.dumps({"route_question": [cid for cid, _seat, _label in options]}),
            ASKER,
            None,
            "route_question",
        ),
        now,
    )
    return True


def _options(tx: Tx, offered: Sequence[Membership]) -> list[list[str]]:
    """[conversation id, participant id, label] of each conversation offered, in order."""
    ids = [m.seat.conversation_id for m in offered]
    metadata = dict(
        tx.all("SELECT id, metadata FROM conversations WHERE id IN " + steps.in_list(ids), ids)
    )
    return [
        [
            m.seat.conversation_id,
            m.seat.id,
            label_of(m.seat.conversation_id, _object(metadata.get(m.seat.conversation_id))),
        ]
        for m in offered
    ]


def _object(text: str | None) -> dict[str, object] | None:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else None


def expire(
    tx: Tx,
    targets_for: TargetsFor,
    now: float,
    limit: int = 100,
    announcements: Announcements = DEFAULT_ANNOUNCEMENTS,
) -> int:
    """Route the held messages of up to `limit` questions unanswered in time; how many."""
    rows = tx.all(
        "SELECT channel_id, user_id FROM route_questions WHERE expires_at <= ?"
        " ORDER BY expires_at LIMIT ?",
        (now, limit),
    )
    return sum(
        _settle(tx, channel_id, user_id, None, targets_for, now, announcements)
        for channel_id, user_id in rows
    )


def _settle(
    tx: Tx,
    channel_id: str,
    user_id: str,
    picked: str | None,
    targets_for: TargetsFor,
    now: float,
    announcements: Announcements,
) -> bool:
    """Close the question and route its held messages: to the conversation `picked`, else
    (timed out, or the one picked closed or left since) by `after_timeout`. Whoever deletes
    the row routes them, so two processes never do it twice."""
    row = tx.one(
        "DELETE FROM route_questions WHERE channel_id = ? AND user_id = ? RETURNING options",
        (channel_id, user_id),
    )
    if row is None:
        return False
    options = json.loads(row[0])
    offered = _still_present(tx, [(cid, seat) for cid, seat, _label in options])
    chosen = next((m for m in offered if m.seat.conversation_id == picked), None)
    target = chosen or after_timeout(offered)
    held = tx.all(
        "SELECT id, event_id FROM route_held WHERE channel_id = ? AND user_id = ? ORDER BY id",
        (channel_id, user_id),
    )
    for _row_id, event_id in held:
        _release(tx, event_id, target, targets_for, now, announcements)
    if held:
        tx.execute(
            "DELETE FROM route_held WHERE id IN " + steps.in_list([r[0] for r in held]),
            [r[0] for r in held],
        )
    return True


def _still_present(tx: Tx, seats: Sequence[tuple[str, str]]) -> list[Membership]:
    """The offered conversations still open with the person still present, as memberships."""
    found = []
    for conversation_id, seat_id in seats:
        conversation = conversations.load(tx, conversation_id)
        if conversation is None or conversation.state != "open":
            continue
        for present in conversation.participants:
            if present.seat.id == seat_id and present.seat.present:
                last = tx.one(
                    "SELECT last_active_at FROM conversations WHERE id = ?", (conversation_id,)
                )
                found.append(
                    Membership(
                        present.seat, conversation.mode, float(last[0]), conversation.controller
                    )
                )
    return found


def _release(
    tx: Tx,
    event_id: str,
    target: Membership | None,
    targets_for: TargetsFor,
    now: float,
    announcements: Announcements,
) -> None:
    """A held message goes on: said in `target`'s conversation (relayed there), or in the
    sender's 1:1 conversation when there is none."""
    row = tx.one(
        "SELECT body, dedupe_key FROM events WHERE id = ? AND held_since IS NOT NULL", (event_id,)
    )
    if row is None:
        return  # gone with retention, or released already
    event = Event.model_validate_json(row[0])
    if target is not None:
        prepared = relay.joined(PreparedEvent(event, "", None), target)
        event = prepared.event
    tx.execute(
        "UPDATE events SET body = ?, held_since = NULL WHERE id = ?",
        (event.model_dump_json(exclude_none=True), event_id),
    )
    # Under control, as if it had arrived there: the controller gets it, the others standby.
    controller = target.controller if target is not None else None
    steps.enqueue_webhooks(tx, event, control.controlled(targets_for, controller), now)
    if target is not None:
        control.send_standby(tx, event, row[1], targets_for, controller, now)
        relay.relay_inbound(tx, event, target, now, announcements)
