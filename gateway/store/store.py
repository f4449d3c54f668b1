"""The store contract: every durable step of the gateway, one transaction each.

The same SQL runs on SQLite and PostgreSQL; `Database` supplies the connection, the
placeholder style and the claim locking. Operations are plain functions run on the writer
thread, so multi-statement logic (dedupe, state machines, the outbox) stays atomic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.downgrade.choices import Choice, match_choice
from gateway.ids import conversation_id, new_id
from gateway.schema import STATE_RANK, Event, Postback
from gateway.store import forms
from gateway.store.database import Database, Tx

TargetsFor = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class InboxRow:
    id: int
    channel_id: str
    body: bytes
    received_at: float
    attempts: int


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    target: str
    ref: str
    attempts: int
    created_at: float
    body: str | None = None  # the event JSON, for webhooks


@dataclass(frozen=True)
class MessageRecord:
    id: str
    channel_id: str
    recipient_id: str
    conversation_id: str | None
    content: str
    metadata: str | None
    state: str
    error: str | None
    created_at: float
    external_ids: list[str]
    history: list[tuple[float, str, str | None]]
    options: str | None = None


@dataclass(frozen=True)
class ContactState:
    """What sending to one user depends on: their window, their consent, their reply token."""

    last_inbound_at: float | None = None
    unsubscribed_at: float | None = None
    unsubscribe_reason: str | None = None
    reply_token: str | None = None
    reply_token_at: float | None = None


@dataclass(frozen=True)
class NewMessage:
    id: str
    channel_id: str
    recipient_id: str
    content: str
    metadata: str | None
    api_key: str
    idempotency_key: str | None
    request_hash: str
    options: str | None = None


@dataclass(frozen=True)
class PreparedEvent:
    """An event ready to store: its JSON is rendered before it reaches the writer thread."""

    event: Event
    dedupe_key: str
    body: str | None  # None for statuses: their message is looked up inside the transaction


def prepare(event: Event, dedupe_key: str) -> PreparedEvent:
    if event.type == "status":
        return PreparedEvent(event, dedupe_key, None)
    if event.sender is not None and event.conversation_id is None:
        event = event.model_copy(
            update={"conversation_id": conversation_id(event.channel.id, event.sender.id)}
        )
    return PreparedEvent(event, dedupe_key, event.model_dump_json(exclude_none=True))


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


def _in(ids: Sequence[Any]) -> str:
    return "(" + ",".join("?" * len(ids)) + ")"


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self) -> None:
        self.db.start()

    def close(self) -> None:
        self.db.close()

    async def release_claims(self) -> None:
        """Forget leases held by a process that died (only safe when one process owns the store)."""

        def op(tx: Tx) -> None:
            tx.execute("UPDATE inbox SET claimed_until = NULL WHERE status = 'pending'")
            tx.execute("UPDATE outbox SET claimed_until = NULL WHERE status = 'pending'")

        await self.db.run(op)

    # --- inbox -----------------------------------------------------------------------
    async def append_inbox(
        self, channel_id: str, dedupe_key: str, url: str, headers: str, body: bytes, now: float
    ) -> int | None:
        """Store a raw request; None when it is a redelivery of one already stored."""

        def op(tx: Tx) -> int | None:
            return tx.insert(
                "INSERT INTO inbox (channel_id, dedupe_key, received_at, url, headers, body, status)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending')"
                " ON CONFLICT (channel_id, dedupe_key) DO NOTHING",
                (channel_id, dedupe_key, now, url, headers, body),
            )

        return await self.db.run(op, single_statement=True)

    async def claim_inbox(self, limit: int, now: float, lease: float) -> list[InboxRow]:
        skip = self.db.dialect.skip_locked

        def op(tx: Tx) -> list[InboxRow]:
            rows = tx.all(
                "UPDATE inbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN ("
                " SELECT id FROM inbox WHERE status = 'pending'"
                " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id LIMIT ?" + skip + ")"
                " RETURNING id, channel_id, body, received_at, attempts",
                (now + lease, now, limit),
            )
            return sorted(
                (InboxRow(int(r[0]), r[1], bytes(r[2]), float(r[3]), int(r[4])) for r in rows),
                key=lambda r: r.id,
            )

        return await self.db.run(op)

    async def fail_inbox(self, row_id: int, error: str, now: float) -> None:
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE inbox SET status = 'failed', error = ?, processed_at = ?,"
                " claimed_until = NULL WHERE id = ?",
                (error, now, row_id),
            )
        )

    async def replay_inbox(self, channel_id: str | None = None, row_ids: Sequence[int] = ()) -> int:
        def op(tx: Tx) -> int:
            sql = "UPDATE inbox SET status = 'pending', claimed_until = NULL, error = NULL"
            sql += " WHERE status = 'failed'"
            params: list[Any] = []
            if channel_id:
                sql += " AND channel_id = ?"
                params.append(channel_id)
            if row_ids:
                sql += " AND id IN " + _in(row_ids)
                params += list(row_ids)
            return tx.execute(sql, params)

        return await self.db.run(op)

    async def inbox_rows(self, status: str, limit: int = 100) -> list[tuple[int, str, str | None]]:
        return await self.db.run(
            lambda tx: [
                (int(r[0]), r[1], r[2])
                for r in tx.all(
                    "SELECT id, channel_id, error FROM inbox WHERE status = ? ORDER BY id LIMIT ?",
                    (status, limit),
                )
            ]
        )

    async def record_inbound(
        self, raw_id: int, events: Sequence[tuple[Event, str]], targets_for: TargetsFor, now: float
    ) -> list[Event]:
        batch = [(raw_id, [prepare(e, key) for e, key in events])]
        return (await self.record_inbound_batch(batch, targets_for, now))[raw_id]

    async def record_inbound_batch(
        self,
        rows: Sequence[tuple[int, Sequence[PreparedEvent]]],
        targets_for: TargetsFor,
        now: float,
    ) -> dict[int, list[Event]]:
        """Per inbox row: dedupe its events, attach contacts and messages, queue webhooks, close it.

        The batch is one savepoint; if anything in it fails, it is redone row by row so that
        only the failing row is marked failed and the others still commit.
        """

        def op(tx: Tx) -> dict[int, list[Event]]:
            tx.execute("SAVEPOINT inbound_batch")
            try:
                stored = _store_rows(tx, rows, targets_for, now)
            except Exception:
                tx.execute("ROLLBACK TO SAVEPOINT inbound_batch")
                stored = {}
                for row in rows:
                    tx.execute("SAVEPOINT inbox_row")
                    try:
                        stored |= _store_rows(tx, [row], targets_for, now)
                    except Exception as exc:
                        tx.execute("ROLLBACK TO SAVEPOINT inbox_row")
                        tx.execute(
                            "UPDATE inbox SET status = 'failed', error = ?, processed_at = ?,"
                            " claimed_until = NULL WHERE id = ?",
                            (f"store error: {type(exc).__name__}: {exc}", now, row[0]),
                        )
                        stored[row[0]] = []
                    tx.execute("RELEASE SAVEPOINT inbox_row")
            tx.execute("RELEASE SAVEPOINT inbound_batch")
            return stored

        return await self.db.run(op)

    # --- outbound messages -----------------------------------------------------------
    async def create_message(self, message: NewMessage, now: float) -> tuple[str, str, bool]:
        """(id, state, created); an earlier message when the idempotency key was seen."""

        def op(tx: Tx) -> tuple[str, str, bool]:
            if message.idempotency_key is not None:
                row = tx.one(
                    "SELECT id, state, request_hash FROM messages"
                    " WHERE api_key = ? AND idempotency_key = ?",
                    (message.api_key, message.idempotency_key),
                )
                if row:
                    if row[2] != message.request_hash:
                        raise IdempotencyConflict(message.idempotency_key)
                    return row[0], row[1], False
            _insert_message(tx, message, now)
            return message.id, "queued", True

        return await self.db.run(op)

    async def get_message(self, message_id: str) -> MessageRecord | None:
        def op(tx: Tx) -> MessageRecord | None:
            row = tx.one(
                "SELECT id, channel_id, recipient_id, conversation_id, content, metadata, state,"
                " error, created_at, options FROM messages WHERE id = ?",
                (message_id,),
            )
            if row is None:
                return None
            parts = tx.all(
                "SELECT external_id FROM message_parts WHERE message_id = ? ORDER BY position",
                (message_id,),
            )
            history = tx.all(
                "SELECT at, state, detail FROM message_history WHERE message_id = ? ORDER BY id",
                (message_id,),
            )
            return MessageRecord(  # type: ignore[call-arg]
                *row[:8],
                float(row[8]),
                [p[0] for p in parts],
                [(float(h[0]), h[1], h[2]) for h in history],
                row[9],
            )

        return await self.db.run(op)

    async def record_sent(
        self,
        outbox_id: int,
        message_id: str,
        channel_id: str,
        external_ids: Sequence[str],
        detail: str | None,
        status_event: Event,
        targets_for: TargetsFor,
        now: float,
    ) -> list[Event]:
        """Mark a message sent; apply statuses that raced ahead of this commit. Returns events."""

        def op(tx: Tx) -> list[Event]:
            _record_parts(tx, channel_id, message_id, external_ids)
            _finish_outbox(tx, [outbox_id], "done", now)
            emitted = []
            if _advance(tx, message_id, "sent", None, detail, now):
                _insert_event(tx, status_event, f"gw:{message_id}:sent", now)
                _enqueue_webhooks(tx, status_event, targets_for, now)
                emitted.append(status_event)
            emitted += _adopt_orphan_statuses(tx, channel_id, external_ids, targets_for, now)
            return emitted

        return await self.db.run(op)

    async def record_send_failed(
        self,
        outbox_id: int,
        message_id: str,
        error: dict[str, Any],
        status_event: Event,
        targets_for: TargetsFor,
        now: float,
    ) -> None:
        def op(tx: Tx) -> None:
            _finish_outbox(tx, [outbox_id], "failed", now)
            if _advance(tx, message_id, "failed", error, f"{error['code']}: {error['title']}", now):
                _insert_event(tx, status_event, f"gw:{message_id}:failed", now)
                _enqueue_webhooks(tx, status_event, targets_for, now)

        await self.db.run(op)

    async def record_send_retry(
        self,
        outbox_id: int,
        message_id: str,
        channel_id: str,
        accepted: Sequence[str],
        next_attempt_at: float,
        error: str,
        now: float,
    ) -> None:
        """Keep the parts the provider already accepted, and try the rest later."""

        def op(tx: Tx) -> None:
            _record_parts(tx, channel_id, message_id, accepted)
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
                " claimed_until = NULL WHERE id = ?",
                (next_attempt_at, error, outbox_id),
            )
            _history(tx, message_id, now, "retrying", error)

        await self.db.run(op)

    # --- outbox ----------------------------------------------------------------------
    async def claim_outbox(
        self, kind: str, limit: int, now: float, lease: float
    ) -> list[OutboxItem]:
        skip = self.db.dialect.skip_locked

        def op(tx: Tx) -> list[OutboxItem]:
            rows = tx.all(
                "UPDATE outbox SET claimed_until = ? WHERE id IN ("
                " SELECT id FROM outbox WHERE kind = ? AND status = 'pending'"
                " AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)"
                " ORDER BY next_attempt_at, id LIMIT ?" + skip + ")"
                " RETURNING id, kind, target, ref, attempts, created_at",
                (now + lease, kind, now, now, limit),
            )
            items = [OutboxItem(int(r[0]), r[1], r[2], r[3], int(r[4]), float(r[5])) for r in rows]
            if kind == "webhook" and items:
                refs = [i.ref for i in items]
                bodies = dict(tx.all("SELECT id, body FROM events WHERE id IN " + _in(refs), refs))
                items = [
                    OutboxItem(
                        i.id, i.kind, i.target, i.ref, i.attempts, i.created_at, bodies.get(i.ref)
                    )
                    for i in items
                ]
            return sorted(items, key=lambda i: i.id)

        return await self.db.run(op)

    async def complete_outbox(self, ids: Sequence[int], now: float) -> None:
        await self.db.run(lambda tx: _finish_outbox(tx, ids, "done", now))

    async def retry_outbox(
        self, ids: Sequence[int], next_attempt_at: float, error: str, dead: bool, now: float
    ) -> None:
        def op(tx: Tx) -> None:
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
                " claimed_until = NULL, status = ?, done_at = ? WHERE id IN " + _in(ids),
                (
                    next_attempt_at,
                    error,
                    "dead" if dead else "pending",
                    now if dead else None,
                    *ids,
                ),
            )

        await self.db.run(op)

    async def replay_dead(self, now: float) -> int:
        return await self.db.run(
            lambda tx: tx.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, created_at = ?,"
                " claimed_until = NULL, done_at = NULL WHERE status = 'dead'",
                (now, now),
            )
        )

    async def outbox_counts(self) -> dict[str, int]:
        rows = await self.db.run(
            lambda tx: tx.all(
                "SELECT kind || ':' || status, COUNT(*) FROM outbox GROUP BY kind, status"
            )
        )
        return {r[0]: int(r[1]) for r in rows}

    async def record_plan(
        self,
        message_id: str,
        channel_id: str,
        recipient_id: str,
        downgrades: Sequence[str],
        choices: Sequence[Choice],
        expires_at: float,
        now: float,
    ) -> None:
        """Write what the engine changed into the history; remember numbered choices."""

        def op(tx: Tx) -> None:
            for downgrade in downgrades:
                _history(tx, message_id, now, "downgraded", downgrade)
            if choices:
                data = json.dumps([c._asdict() for c in choices])
                tx.execute(
                    "INSERT INTO reply_choices (channel_id, user_id, message_id, choices, expires_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id, user_id) DO UPDATE SET"
                    " message_id = excluded.message_id, choices = excluded.choices,"
                    " expires_at = excluded.expires_at",
                    (channel_id, recipient_id, message_id, data, expires_at),
                )

        await self.db.run(op)

    async def start_form(
        self,
        channel_id: str,
        user_id: str,
        message_id: str,
        form_json: str,
        ttl: float,
        now: float,
    ) -> None:
        await self.db.run(
            lambda tx: forms.start_session(tx, channel_id, user_id, message_id, form_json, ttl, now)
        )

    async def get_contact(self, channel_id: str, user_id: str) -> ContactState:
        row = await self.db.run(
            lambda tx: tx.one(
                "SELECT last_inbound_at, unsubscribed_at, unsubscribe_reason, reply_token,"
                " reply_token_at FROM contacts WHERE channel_id = ? AND user_id = ?",
                (channel_id, user_id),
            )
        )
        if row is None:
            return ContactState()
        return ContactState(_float(row[0]), _float(row[1]), row[2], row[3], _float(row[4]))

    async def consume_reply_token(self, channel_id: str, user_id: str, token: str) -> None:
        """Reply tokens are single-use: forget this one before it is spent."""
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE contacts SET reply_token = NULL, reply_token_at = NULL"
                " WHERE channel_id = ? AND user_id = ? AND reply_token = ?",
                (channel_id, user_id, token),
            )
        )

    async def set_unsubscribed(
        self, channel_id: str, user_id: str, reason: str | None, now: float
    ) -> None:
        """Remember that a recipient opted out (reason) or back in (None)."""
        await self.db.run(lambda tx: _set_subscription(tx, channel_id, user_id, reason, now))


# --- operations shared by several transactions ----------------------------------------


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _set_subscription(
    tx: Tx, channel_id: str, user_id: str, reason: str | None, now: float
) -> None:
    _touch_contact(tx, channel_id, user_id, now)
    tx.execute(
        "UPDATE contacts SET unsubscribed_at = ?, unsubscribe_reason = ?"
        " WHERE channel_id = ? AND user_id = ?",
        (now if reason is not None else None, reason, channel_id, user_id),
    )


def _keep_reply_token(tx: Tx, event: Event, now: float) -> None:
    """Keep the newest reply token per reply target (the user, or the group it came from)."""
    data = event.channel_data or {}
    token = data.get("reply_token")
    if not isinstance(token, str) or event.sender is None:
        return
    target = str(data.get("reply_target") or event.sender.id)
    at = event.timestamp.timestamp()
    _touch_contact(tx, event.channel.id, target, now)
    tx.execute(
        "UPDATE contacts SET reply_token = ?, reply_token_at = ? WHERE channel_id = ?"
        " AND user_id = ? AND (reply_token_at IS NULL OR reply_token_at <= ?)",
        (token, at, event.channel.id, target, at),
    )


def _history(tx: Tx, message_id: str, now: float, state: str, detail: str | None) -> None:
    tx.execute(
        "INSERT INTO message_history (message_id, at, state, detail) VALUES (?, ?, ?, ?)",
        (message_id, now, state, detail),
    )


def _record_parts(tx: Tx, channel_id: str, message_id: str, external_ids: Sequence[str]) -> None:
    for position, external_id in enumerate(external_ids):
        tx.execute(
            "INSERT INTO message_parts (channel_id, external_id, message_id, position)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (channel_id, external_id) DO NOTHING",
            (channel_id, external_id, message_id, position),
        )


def _enqueue(tx: Tx, kind: str, target: str, ref: str, now: float) -> None:
    tx.execute(
        "INSERT INTO outbox (kind, target, ref, status, next_attempt_at, created_at)"
        " VALUES (?, ?, ?, 'pending', ?, ?)",
        (kind, target, ref, now, now),
    )


def _enqueue_webhooks(tx: Tx, event: Event, targets_for: TargetsFor, now: float) -> None:
    for backend_id in targets_for(event.type):
        _enqueue(tx, "webhook", backend_id, event.id, now)


def _finish_outbox(tx: Tx, ids: Sequence[int], status: str, now: float) -> None:
    tx.execute(
        "UPDATE outbox SET status = ?, done_at = ?, claimed_until = NULL WHERE id IN " + _in(ids),
        (status, now, *ids),
    )


def _insert_event(
    tx: Tx, event: Event, dedupe_key: str, now: float, body: str | None = None
) -> bool:
    message_id = event.status.message_id if event.status else None
    row = tx.one(
        "INSERT INTO events (id, channel_id, dedupe_key, type, external_id, message_id, raw_id,"
        " created_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (channel_id, dedupe_key) DO NOTHING RETURNING id",
        (
            event.id,
            event.channel.id,
            dedupe_key,
            event.type,
            event.external_id,
            message_id,
            event.raw_id,
            now,
            body or event.model_dump_json(exclude_none=True),
        ),
    )
    return row is not None


def _touch_contact(
    tx: Tx,
    channel_id: str,
    user_id: str,
    now: float,
    name: str | None = None,
    phone: str | None = None,
    last_inbound_at: float | None = None,
) -> str:
    conversation = conversation_id(channel_id, user_id)
    tx.execute(
        "INSERT INTO contacts (channel_id, user_id, name, phone, conversation_id, last_inbound_at,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (channel_id, user_id) DO UPDATE SET"
        " name = COALESCE(excluded.name, contacts.name),"
        " phone = COALESCE(excluded.phone, contacts.phone),"
        " last_inbound_at = CASE WHEN excluded.last_inbound_at IS NOT NULL AND"
        " (contacts.last_inbound_at IS NULL OR excluded.last_inbound_at > contacts.last_inbound_at)"
        " THEN excluded.last_inbound_at ELSE contacts.last_inbound_at END",
        (channel_id, user_id, name, phone, conversation, last_inbound_at, now),
    )
    return conversation


def _store_rows(
    tx: Tx, rows: Sequence[tuple[int, Sequence[PreparedEvent]]], targets_for: TargetsFor, now: float
) -> dict[int, list[Event]]:
    # One contact write per user per batch, however many of their messages it holds.
    contacts: dict[tuple[str, str], tuple[str | None, str | None, float | None]] = {}
    stored: dict[int, list[Event]] = {}
    for raw_id, events in rows:
        stored[raw_id] = []
        for prepared in events:
            prepared = _answer_choice(tx, prepared, now)
            session = forms.active_session(tx, prepared.event, now)
            if session is not None:
                stored[raw_id] += _answer_form(tx, session, prepared, targets_for, now)
                continue
            event = prepared.event
            if prepared.body is not None and event.sender is not None:
                key = (event.channel.id, event.sender.id)
                _name, _phone, seen = contacts.get(key, (None, None, None))
                inbound = event.timestamp.timestamp() if event.type != "system" else None
                latest = (
                    max(t for t in (seen, inbound) if t is not None) if seen or inbound else None
                )
                contacts[key] = (event.sender.name, event.sender.phone, latest)
            kept = _store_inbound(tx, prepared, targets_for, now)
            stored[raw_id] += kept
            if kept and kept[0].type != "status":
                _note_contact_facts(tx, kept[0], now)
    for (channel_id, user_id), (name, phone, inbound) in contacts.items():
        _touch_contact(tx, channel_id, user_id, now, name, phone, inbound)
    ids = [raw_id for raw_id, _events in rows]
    tx.execute(
        "UPDATE inbox SET status = 'done', error = NULL, processed_at = ?, claimed_until = NULL"
        " WHERE id IN " + _in(ids),
        (now, *ids),
    )
    return stored


def _insert_message(tx: Tx, message: NewMessage, now: float) -> None:
    conversation = _touch_contact(tx, message.channel_id, message.recipient_id, now)
    tx.execute(
        "INSERT INTO messages (id, channel_id, recipient_id, conversation_id, content,"
        " metadata, options, state, api_key, idempotency_key, request_hash, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
        (
            message.id,
            message.channel_id,
            message.recipient_id,
            conversation,
            message.content,
            message.metadata,
            message.options,
            message.api_key,
            message.idempotency_key,
            message.request_hash,
            now,
            now,
        ),
    )
    _history(tx, message.id, now, "queued", None)
    _enqueue(tx, "send", message.channel_id, message.id, now)


def _answer_form(
    tx: Tx, session: forms.Session, prepared: PreparedEvent, targets_for: TargetsFor, now: float
) -> list[Event]:
    """An answer to a form is kept (not forwarded); the completed form is what backends get."""
    event = prepared.event
    body = prepared.body or event.model_dump_json(exclude_none=True)
    if not _insert_event(tx, event, prepared.dedupe_key, now, body):
        return []  # a redelivered answer was applied already
    step = forms.advance(tx, session, event, now)
    for reply in step.replies:
        metadata = {"form_id": session.message_id}
        _insert_message(
            tx,
            NewMessage(
                new_id("msg"),
                session.channel_id,
                session.user_id,
                reply.model_dump_json(exclude_none=True),
                json.dumps(metadata),
                "gateway:forms",
                None,
                "form",
            ),
            now,
        )
    if step.result is None:
        return []
    if not _insert_event(tx, step.result, f"{prepared.dedupe_key}:form", now):
        return []
    _enqueue_webhooks(tx, step.result, targets_for, now)
    return [step.result]


def _answer_choice(tx: Tx, prepared: PreparedEvent, now: float) -> PreparedEvent:
    """A text answer to choices we sent as numbered text becomes that choice's postback."""
    event = prepared.event
    if (
        event.type != "message"
        or event.sender is None
        or event.message is None
        or event.message.content.type != "text"
    ):
        return prepared
    row = tx.one(
        "SELECT message_id, choices FROM reply_choices"
        " WHERE channel_id = ? AND user_id = ? AND expires_at > ?",
        (event.channel.id, event.sender.id, now),
    )
    if row is None:
        return prepared
    answer = event.message.content.text
    picked = match_choice(answer, [Choice(**c) for c in json.loads(row[1])])
    if picked is None:
        return prepared
    answered = event.model_copy(
        update={
            "type": "postback",
            "message": None,
            "postback": Postback(payload=picked.payload, title=picked.title),
            "channel_data": {
                **(event.channel_data or {}),
                "answered_with_text": answer,
                "choices_message_id": row[0],
            },
        }
    )
    return PreparedEvent(answered, prepared.dedupe_key, answered.model_dump_json(exclude_none=True))


def _note_contact_facts(tx: Tx, event: Event, now: float) -> None:
    """What a new inbound event says about its sender: consent and a reply token."""
    if event.type == "subscription" and event.subscription and event.sender:
        state = event.subscription.state
        if state != "help":
            reason = (
                (event.subscription.keyword or "unsubscribed") if state == "unsubscribed" else None
            )
            _set_subscription(tx, event.channel.id, event.sender.id, reason, now)
    _keep_reply_token(tx, event, now)


def _store_inbound(
    tx: Tx, prepared: PreparedEvent, targets_for: TargetsFor, now: float
) -> list[Event]:
    event, body = prepared.event, prepared.body
    if body is None:
        assert event.status is not None
        if event.status.watermark is not None and event.status.external_id is None:
            return _apply_watermark(tx, prepared, targets_for, now)
        routed = _route_status(tx, event, now)
        if routed is None:
            return []
        event, body = routed, routed.model_dump_json(exclude_none=True)
    if not _insert_event(tx, event, prepared.dedupe_key, now, body):
        return []
    _enqueue_webhooks(tx, event, targets_for, now)
    return [event]


# A watermark moves these states forward (never a queued or failed message).
_WATERMARK_FROM = {"delivered": ("sent",), "read": ("sent", "delivered")}


def _apply_watermark(
    tx: Tx, prepared: PreparedEvent, targets_for: TargetsFor, now: float
) -> list[Event]:
    """One status event per message to this recipient that the watermark covers.

    A message is covered when it was queued no later than the watermark: the provider cannot
    have delivered what we had not yet asked it to send.
    """
    event = prepared.event
    assert event.status is not None and event.status.watermark is not None
    states = _WATERMARK_FROM.get(event.status.state)
    if not states or event.recipient is None:
        return []
    rows = tx.all(
        "SELECT m.id, m.conversation_id, (SELECT p.external_id FROM message_parts p"
        " WHERE p.message_id = m.id ORDER BY p.position LIMIT 1)"
        " FROM messages m WHERE m.channel_id = ? AND m.recipient_id = ? AND m.created_at <= ?"
        " AND m.state IN " + _in(states) + " ORDER BY m.created_at",
        (event.channel.id, event.recipient.id, event.status.watermark.timestamp(), *states),
    )
    emitted = []
    for message_id, conversation, external_id in rows:
        if not _advance(tx, message_id, event.status.state, None, "watermark", now):
            continue
        status = event.status.model_copy(
            update={"message_id": message_id, "external_id": external_id}
        )
        covered = event.model_copy(
            update={
                "id": new_id("evt"),
                "status": status,
                "external_id": external_id,
                "conversation_id": conversation,
            }
        )
        if _insert_event(tx, covered, f"{prepared.dedupe_key}:{message_id}", now):
            _enqueue_webhooks(tx, covered, targets_for, now)
            emitted.append(covered)
    return emitted


def _route_status(tx: Tx, event: Event, now: float) -> Event | None:
    assert event.status is not None
    row = tx.one(
        "SELECT p.message_id, m.conversation_id FROM message_parts p"
        " JOIN messages m ON m.id = p.message_id WHERE p.channel_id = ? AND p.external_id = ?",
        (event.channel.id, event.status.external_id),
    )
    if row is None:
        return event  # not (yet) ours: kept with no message id, adopted if our send commits later
    message_id, conversation_id = row
    error = event.status.error.model_dump() if event.status.error else None
    detail = (
        f"{event.status.error.code}: {event.status.error.title}" if event.status.error else None
    )
    if not _advance(tx, message_id, event.status.state, error, detail, now):
        return None
    status = event.status.model_copy(update={"message_id": message_id})
    return event.model_copy(update={"status": status, "conversation_id": conversation_id})


def _advance(
    tx: Tx,
    message_id: str,
    state: str,
    error: dict[str, Any] | None,
    detail: str | None,
    now: float,
) -> bool:
    """Move a message forward to `state`; a stale status is recorded but changes nothing."""
    row = tx.one("SELECT state FROM messages WHERE id = ?", (message_id,))
    if row is None:
        return False
    if STATE_RANK[state] == STATE_RANK[row[0]]:
        return False  # the provider confirming what we already recorded
    if STATE_RANK[state] < STATE_RANK[row[0]]:
        _history(tx, message_id, now, f"ignored:{state}", f"already {row[0]}")
        return False
    tx.execute(
        "UPDATE messages SET state = ?, error = COALESCE(?, error), updated_at = ? WHERE id = ?",
        (state, json.dumps(error) if error else None, now, message_id),
    )
    _history(tx, message_id, now, state, detail)
    return True


def _adopt_orphan_statuses(
    tx: Tx, channel_id: str, external_ids: Sequence[str], targets_for: TargetsFor, now: float
) -> list[Event]:
    """Provider statuses that arrived before our send committed: apply and re-emit them."""
    if not external_ids:
        return []
    rows = tx.all(
        "SELECT body FROM events WHERE type = 'status' AND message_id IS NULL AND raw_id IS NOT NULL"
        " AND channel_id = ?"
        " AND external_id IN " + _in(external_ids) + " ORDER BY created_at",
        (channel_id, *external_ids),
    )
    emitted = []
    for (body,) in rows:
        orphan = Event.model_validate_json(body)
        adopted = _route_status(tx, orphan, now)
        if adopted is None:
            continue
        adopted = adopted.model_copy(update={"id": new_id("evt")})
        if _insert_event(tx, adopted, f"adopted:{orphan.id}", now):
            _enqueue_webhooks(tx, adopted, targets_for, now)
            emitted.append(adopted)
    return emitted
