"""Form sessions in the store: which field a user is answering, and what they answered so far.

The questions and the checks are pure (`gateway.forms`); this module keeps the session rows and
works out, inside the inbound transaction, what one answer does to them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.forms import check, question
from gateway.ids import new_id
from gateway.schema import Event, MessageBody, System
from gateway.schema.content import Content, FormContent, FormResponseContent, TextContent
from gateway.store.database import Tx


@dataclass
class Session:
    channel_id: str
    user_id: str
    message_id: str
    form: FormContent
    position: int
    answers: dict[str, Any]
    ttl: float


@dataclass
class Step:
    result: Event | None = None  # form_response or form_cancelled, for the backends
    replies: list[Content] = field(default_factory=list)  # what to send the user next


def start_session(
    tx: Tx, channel_id: str, user_id: str, message_id: str, form_json: str, ttl: float, now: float
) -> None:
    """A new form replaces any unfinished one for the same user."""
    tx.execute(
        "INSERT INTO form_sessions (channel_id, user_id, message_id, form, position, answers,"
        " ttl, expires_at) VALUES (?, ?, ?, ?, 0, '{}', ?, ?) ON CONFLICT (channel_id, user_id)"
        " DO UPDATE SET message_id = excluded.message_id, form = excluded.form, position = 0,"
        " answers = '{}', ttl = excluded.ttl, expires_at = excluded.expires_at",
        (channel_id, user_id, message_id, form_json, ttl, now + ttl),
    )


def active_session(tx: Tx, event: Event, now: float) -> Session | None:
    if event.type not in ("message", "postback") or event.sender is None:
        return None
    row = tx.one(
        "SELECT message_id, form, position, answers, ttl FROM form_sessions"
        " WHERE channel_id = ? AND user_id = ? AND expires_at > ?",
        (event.channel.id, event.sender.id, now),
    )
    if row is None:
        return None
    return Session(
        event.channel.id,
        event.sender.id,
        row[0],
        FormContent.model_validate_json(row[1]),
        int(row[2]),
        json.loads(row[3]),
        float(row[4]),
    )


def advance(tx: Tx, session: Session, event: Event, now: float) -> Step:
    """Apply one answer: re-ask with the reason, ask the next field, or finish."""
    form, position = session.form, session.position
    text: str | None = None
    payload: str | None = None
    if event.postback is not None:
        payload, text = event.postback.payload, event.postback.title
    elif event.message is not None and isinstance(event.message.content, TextContent):
        text = event.message.content.text
    if text is None and payload is None:
        return _keep(tx, session, now, [question(form, position, "Please answer with text.")])
    answer = check(form.fields[position], text, payload)
    if answer.cancelled:
        _end(tx, session)
        cancelled = _derived(
            event,
            type="system",
            system=System(kind="form_cancelled", text=form.title),
            channel_data={"form_id": session.message_id, "values": session.answers},
        )
        return Step(cancelled, [TextContent(text=f"Cancelled: {form.title}")])
    if answer.problem is not None:
        return _keep(tx, session, now, [question(form, position, answer.problem)])
    answers = {**session.answers, form.fields[position].name: answer.value}
    position += 1
    if position < len(form.fields):
        tx.execute(
            "UPDATE form_sessions SET position = ?, answers = ?, expires_at = ?"
            " WHERE channel_id = ? AND user_id = ?",
            (position, json.dumps(answers), now + session.ttl, session.channel_id, session.user_id),
        )
        return Step(None, [question(form, position)])
    _end(tx, session)
    content = FormResponseContent(form_id=session.message_id, values=answers)
    return Step(_derived(event, type="message", message=MessageBody(content=content)))


def _keep(tx: Tx, session: Session, now: float, replies: list[Content]) -> Step:
    tx.execute(
        "UPDATE form_sessions SET expires_at = ? WHERE channel_id = ? AND user_id = ?",
        (now + session.ttl, session.channel_id, session.user_id),
    )
    return Step(None, replies)


def _end(tx: Tx, session: Session) -> None:
    tx.execute(
        "DELETE FROM form_sessions WHERE channel_id = ? AND user_id = ?",
        (session.channel_id, session.user_id),
    )


def _derived(event: Event, **update: Any) -> Event:
    base = {"message": None, "postback": None, "channel_data": None, "id": new_id("evt")}
    return event.model_copy(update={**base, **update})
