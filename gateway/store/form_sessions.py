"""Form sessions in the store: which field a user is answering, and what they answered so far.

What an answer does is the router's decision (gateway/router/forms.py); this module keeps the
session rows, inside the inbound transaction.
"""

from __future__ import annotations

import json

from gateway.router.forms import FormStep, Session, may_answer_form
from gateway.schema import Event
from gateway.schema.content import FormContent
from gateway.store.database import Tx


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
    if not may_answer_form(event):
        return None
    assert event.sender is not None
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


def save_step(tx: Tx, session: Session, step: FormStep, now: float) -> None:
    """Keep what one answer did to `session` (gateway/router/forms.py decided it): the field
    asked now, the answers so far and a new expiry, or no session once the form ended."""
    if step.session is None:
        tx.execute(
            "DELETE FROM form_sessions WHERE channel_id = ? AND user_id = ?",
            (session.channel_id, session.user_id),
        )
        return
    kept = step.session
    if kept.position == session.position:  # asked again: only its time runs anew
        tx.execute(
            "UPDATE form_sessions SET expires_at = ? WHERE channel_id = ? AND user_id = ?",
            (now + kept.ttl, kept.channel_id, kept.user_id),
        )
        return
    tx.execute(
        "UPDATE form_sessions SET position = ?, answers = ?, expires_at = ?"
        " WHERE channel_id = ? AND user_id = ?",
        (kept.position, json.dumps(kept.answers), now + kept.ttl, kept.channel_id, kept.user_id),
    )
