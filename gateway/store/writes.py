"""Steps of the store's transactions, each a plain function of a transaction (`Tx`).

Several of the contract's operations share them (an inbound event and a form's answer are both
inserted and queued for the backends the same way), and every one runs inside the caller's
transaction, so a step never commits on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.consent import ConsentChange, consent_change
from gateway.downgrade.choices import Choice
from gateway.ids import conversation_id, new_id
from gateway.router.conversations import (
    DEFAULT_ANNOUNCEMENTS,
    DEFAULT_ROUTING,
    Announcements,
    Ask,
    Membership,
    RoutingPolicy,
    provider_group,
)
from gateway.router.forms import Session, answer_form, takes
from gateway.router.numbered_answers import OfferedChoices, answered_choice, may_answer_choices
from gateway.router.statuses import (
    SentMessage,
    covered_status,
    named_status,
    state_change,
    status_error,
    status_route,
    watermark_moves,
)
from gateway.schema import ConversationEvent, Event, Party, UserEvent
from gateway.schema.broadcasts import BroadcastEvent
from gateway.store import (
    communities,
    control,
    failed_parts,
    form_sessions,
    questions,
    relay,
    routes,
)
from gateway.store.database import Tx
from gateway.store.records import (
    FailedPartRecord,
    MessageRecord,
    NewMessage,
    PreparedEvent,
    TargetsFor,
)


def in_list(ids: Sequence[Any]) -> str:
    """The placeholders of an `IN (...)` over `ids`. An empty list matches nothing: `IN ()` is
    a syntax error in PostgreSQL, and SQLite scans the whole table to find no row in it."""
    return "(" + ",".join("?" * len(ids)) + ")" if ids else "(NULL)"


def values(rows: int, columns: int) -> str:
    """The placeholders of a multi-row VALUES list: `rows` rows of `columns` each."""
    one = "(" + ",".join("?" * columns) + ")"
    return ",".join([one] * rows)


def optional_float(value: Any) -> float | None:
    return float(value) if value is not None else None


def set_subscription(
    tx: Tx, channel_id: str, user_id: str, reason: str | None, now: float, at: float | None = None
) -> None:
    """Opt the user out (`reason`) or back in (None); `at`: when they did (default `now`)."""
    _touch_contact(tx, channel_id, user_id, now)
    tx.write(
        "UPDATE contacts SET unsubscribed_at = ?, unsubscribe_reason = ?"
        " WHERE channel_id = ? AND user_id = ?",
        ((now if at is None else at) if reason is not None else None, reason, channel_id, user_id),
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
    tx.write(
        "UPDATE contacts SET reply_token = ?, reply_token_at = ? WHERE channel_id = ?"
        " AND user_id = ? AND (reply_token_at IS NULL OR reply_token_at <= ?)",
        (token, at, event.channel.id, target, at),
    )


def messages(
    tx: Tx, message_ids: Sequence[str], created_by: str | None = None
) -> dict[str, MessageRecord]:
    """The messages with these ids, by id, with their parts and history: three statements for
    any number of them. With `created_by`, only those that API key created."""
    ids = list(dict.fromkeys(message_ids))
    # A relayed copy's recipient participant comes with it, not in a statement per copy.
    sql = (
        "SELECT m.id, m.channel_id, m.recipient_id, m.conversation_id, m.content, m.metadata,"
        " m.state, m.error, m.created_at, m.options, m.api_key,"
        " p.id, p.role, p.display_name, p.user_id FROM messages m"
        " LEFT JOIN participants p ON p.id = m.participant_id WHERE m.id IN " + in_list(ids)
    )
    params: list[str] = ids
    if created_by is not None:
        sql, params = sql + " AND m.api_key = ?", [*ids, created_by]
    rows = tx.all(sql, params)
    if not rows:
        return {}
    found = [row[0] for row in rows]
    parts: dict[str, list[str]] = {i: [] for i in found}
    for message_id, external_id in tx.all(
        "SELECT message_id, external_id FROM message_parts WHERE message_id IN "
        + in_list(found)
        + " ORDER BY message_id, position",
        found,
    ):
        parts[message_id].append(external_id)
    history: dict[str, list[tuple[float, str, str | None]]] = {i: [] for i in found}
    for message_id, at, state, detail in tx.all(
        "SELECT message_id, at, state, detail FROM message_history WHERE message_id IN "
        + in_list(found)
        + " ORDER BY id",
        found,
    ):
        history[message_id].append((float(at), state, detail))
    return {
        row[0]: MessageRecord(  # type: ignore[call-arg]
            *row[:8],
            float(row[8]),
            parts[row[0]],
            history[row[0]],
            row[9],
            row[10],
            relay.participant_ref(row[11:15]) if row[11] is not None else None,
        )
        for row in rows
    }


def history(tx: Tx, message_id: str, now: float, state: str, detail: str | None) -> None:
    tx.write(
        "INSERT INTO message_history (message_id, at, state, detail) VALUES (?, ?, ?, ?)",
        (message_id, now, state, detail),
    )


def record_parts(tx: Tx, channel_id: str, message_id: str, external_ids: Sequence[str]) -> None:
    for position, external_id in enumerate(external_ids):
        tx.write(
            "INSERT INTO message_parts (channel_id, external_id, message_id, position)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (channel_id, external_id) DO NOTHING",
            (channel_id, external_id, message_id, position),
        )


# A recipient's later messages wait behind one of theirs that is retried only while its retry
# is at most this far off. Past it (a backoff grown long, a provider failing for hours), they
# go: in order is worth a minute, not a customer left without news for days.
KEEP_ORDER_SECONDS = 60.0


def _enqueue(
    tx: Tx,
    kind: str,
    target: str,
    ref: str,
    now: float,
    due: float | None = None,
    recipient: str | None = None,
    priority: int = 0,
) -> None:
    tx.write(
        "INSERT INTO outbox (kind, target, ref, status, next_attempt_at, created_at, recipient,"
        " priority) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
        (kind, target, ref, now if due is None else due, now, recipient, priority),
    )


def outbox_mark(tx: Tx) -> int:
    """The outbox's last row id: rows this transaction queues after it have larger ids (ids
    only grow, and any row another process committed is below the ids handed out later)."""
    return int(tx.one("SELECT COALESCE(MAX(id), 0) FROM outbox")[0])


def sends_queued_since(tx: Tx, mark: int) -> list[str]:
    """The channels of the sends queued after `mark` (`outbox_mark`): a range of the primary
    key, a few rows."""
    rows = tx.all("SELECT DISTINCT target FROM outbox WHERE id > ? AND kind = 'send'", (mark,))
    return [str(r[0]) for r in rows]


def enqueue_webhooks(
    tx: Tx,
    event: Event | UserEvent | ConversationEvent | BroadcastEvent,
    targets_for: TargetsFor,
    now: float,
) -> None:
    for backend_id in targets_for(event.type):
        _enqueue(tx, "webhook", backend_id, event.id, now)


def emit_channelless(
    tx: Tx,
    event: UserEvent | ConversationEvent | BroadcastEvent,
    channel_id: str,
    kind: str,
    targets_for: TargetsFor,
    now: float,
) -> None:
    """Store an event about a user or a conversation and queue it for the backends that asked
    for its type (`kind`: `user` or `conversation`, its dedupe key's prefix). One of no
    channel is kept under the empty channel id, which no channel has."""
    tx.write(
        "INSERT INTO events (id, channel_id, dedupe_key, type, created_at, body)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            event.id,
            channel_id,
            f"{kind}:{event.id}",
            event.type,
            now,
            event.model_dump_json(exclude_none=True),
        ),
    )
    enqueue_webhooks(tx, event, targets_for, now)


# A claim's condition (its rows are `o`): the row is the first, by id, of its recipient's line
# of sends. A send whose retry is due more than KEEP_ORDER_SECONDS away steps out of the line
# until then (the bound is this condition's parameter). By id, not due time: a message queued
# at one gateway while another records a retry of an earlier one cannot see that retry's new
# time, and must still not go first. Rows queued before recipients were kept stand in no line.
FIRST_IN_LINE = (
    " AND (o.recipient IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM outbox AS b WHERE b.kind = 'send' AND b.status = 'pending'"
    " AND b.target = o.target AND b.recipient = o.recipient AND b.id < o.id"
    " AND b.next_attempt_at <= ?))"
)


def claim_outbox_sql(where: str, skip_locked: str) -> str:
    """The claim of `Store.claim_outbox`: due first, the rows `where` admits (its rows are `o`),
    leased. Parameters: kind, those of `where`, now, now, limit, lease end.

    The rows are picked once, in a materialised CTE: as `UPDATE ... WHERE id IN (SELECT ...
    LIMIT n FOR UPDATE SKIP LOCKED)`, PostgreSQL may plan the pick as the inner side of a
    nested loop and run it again for each row, each run skipping the rows the last one locked,
    so a claim of one row took them all (seen on a small upgraded store)."""
    return (
        "WITH picked AS MATERIALIZED ("
        " SELECT id FROM outbox AS o WHERE kind = ? AND status = 'pending'"
        + where
        + " AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)"
        " ORDER BY priority, next_attempt_at, id LIMIT ?" + skip_locked + ")"
        " UPDATE outbox SET claimed_until = ? WHERE id IN (SELECT id FROM picked)"
        " RETURNING id, kind, target, ref, attempts, created_at, priority"
    )


# Outbox priorities: what a backend or a person is waiting for, and bulk (broadcasts), which
# takes only the capacity left (docs/broadcasts.md).
NORMAL, BULK = 0, 1


def bulk_in_hand(tx: Tx, target: str, now: float) -> int:
    """Bulk sends of `target` claimed and not yet done, by any process."""
    row = tx.one(
        "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND claimed_until IS NOT NULL"
        " AND kind = 'send' AND target = ? AND claimed_until >= ? AND priority > 0",
        (target, now),
    )
    return int(row[0])


def target_is_free(tx: Tx, kind: str, target: str, now: float) -> bool:
    """No claim of `target`'s rows is under way, here or in another process, and none can start
    before this transaction ends: one claim at a time keeps a target's rows in order."""
    if tx.dialect.try_lock is not None:
        # Two processes checking at once would both find the target free.
        locked = tx.one(tx.dialect.try_lock, (f"outbox:{kind}:{target}",))
        if not (locked and locked[0]):
            return False  # another process is claiming it now: come back later
    # The literal terms let the query use the small index of rows under way (outbox_in_flight).
    return (
        tx.one(
            "SELECT 1 FROM outbox WHERE status = 'pending' AND claimed_until IS NOT NULL"
            " AND kind = ? AND target = ? AND claimed_until >= ? LIMIT 1",
            (kind, target, now),
        )
        is None
    )


def set_lease(tx: Tx, ids: Sequence[int], until: float | None) -> None:
    """Lease claimed rows until `until`, or with None release them (done ones stay done)."""
    tx.write(
        "UPDATE outbox SET claimed_until = ?"
        " WHERE status = 'pending' AND claimed_until IS NOT NULL AND id IN " + in_list(ids),
        (until, *ids),
    )


def finish_outbox(tx: Tx, ids: Sequence[int], status: str, now: float) -> None:
    tx.write(
        "UPDATE outbox SET status = ?, done_at = ?, claimed_until = NULL WHERE id IN "
        + in_list(ids),
        (status, now, *ids),
    )


_INSERT_EVENT = (
    "INSERT INTO events (id, channel_id, dedupe_key, type, external_id, message_id, raw_id,"
    " created_at, body, held_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (channel_id, dedupe_key) DO NOTHING RETURNING id"
)


def insert_event(
    tx: Tx,
    event: Event,
    dedupe_key: str,
    now: float,
    body: str | None = None,
    *,
    held: bool = False,
) -> bool:
    """Store `event` unless its key was seen: True when stored. A `held` one is kept back from
    the backends until its send is recorded (gateway/store/held.py)."""
    message_id = event.status.message_id if event.status else None
    params = (
        event.id,
        event.channel.id,
        dedupe_key,
        event.type,
        event.external_id,
        message_id,
        event.raw_id,
        now,
        body or event.model_dump_json(exclude_none=True),
        now if held else None,
    )
    if tx.one(_INSERT_EVENT, params) is not None:
        return True
    if event.type == "unsupported" or not _supersede_unsupported(tx, event, dedupe_key):
        return False  # a redelivery
    return tx.one(_INSERT_EVENT, params) is not None


def _supersede_unsupported(tx: Tx, event: Event, dedupe_key: str) -> bool:
    """A payload the gateway could not represent before, replayed now that it can: the new
    event takes the key. The old one stays for the deliveries that carried it, keyed aside,
    and no longer holds its raw request back from retention."""
    return (
        tx.execute(
            "UPDATE events SET dedupe_key = dedupe_key || ?, raw_id = NULL"
            " WHERE channel_id = ? AND dedupe_key = ? AND type = 'unsupported'",
            (f" superseded by {event.id}", event.channel.id, dedupe_key),
        )
        > 0
    )


def _touch_contact(
    tx: Tx,
    channel_id: str,
    user_id: str,
    now: float,
    name: str | None = None,
    phone: str | None = None,
    last_inbound_at: float | None = None,
) -> str:
    _touch_contacts(tx, {(channel_id, user_id): (name, phone, last_inbound_at)}, now)
    return conversation_id(channel_id, user_id)


def _touch_contacts(tx: Tx, contacts: ContactFacts, now: float) -> None:
    """Create or update each contact, in one statement. Sorted: transactions side by side
    (several writers or processes) then lock the rows they share in the same order."""
    if not contacts:
        return
    params: list[Any] = []
    for (channel_id, user_id), (name, phone, last_inbound_at) in sorted(contacts.items()):
        conversation = conversation_id(channel_id, user_id)
        params += (channel_id, user_id, name, phone, conversation, last_inbound_at, now)
    tx.write(
        "INSERT INTO contacts (channel_id, user_id, name, phone, conversation_id, last_inbound_at,"
        " created_at) VALUES " + values(len(contacts), 7) + " ON CONFLICT (channel_id, user_id)"
        " DO UPDATE SET"
        " name = COALESCE(excluded.name, contacts.name),"
        " phone = COALESCE(excluded.phone, contacts.phone),"
        " last_inbound_at = CASE WHEN excluded.last_inbound_at IS NOT NULL AND"
        " (contacts.last_inbound_at IS NULL OR excluded.last_inbound_at > contacts.last_inbound_at)"
        " THEN excluded.last_inbound_at ELSE contacts.last_inbound_at END",
        params,
    )


ContactFacts = dict[tuple[str, str], tuple[str | None, str | None, float | None]]


def _note_sender(
    contacts: ContactFacts, channel_id: str, sender: Party, inbound: float | None
) -> None:
    """What a batch learnt of a sender, under each address a backend may reply to: the id,
    and a WhatsApp business-scoped user id beside a phone number (`Party.user_id`), so the
    24-hour window is open whichever of the two the reply names."""
    addresses = {sender.id, sender.user_id} - {None, ""}
    for address in addresses:
        key = (channel_id, str(address))
        _name, _phone, seen = contacts.get(key, (None, None, None))
        latest = None
        if seen or inbound:  # the later of the two known, without a generator's frame
            latest = inbound if seen is None else seen if inbound is None else max(seen, inbound)
        phone = sender.phone if address == sender.id else None
        contacts[key] = (sender.name, phone, latest)


def _note_sender_of(contacts: ContactFacts, prepared: PreparedEvent) -> None:
    """What an event a person sent says of them (a status, without a body yet, says nothing)."""
    event = prepared.event
    if prepared.body is None or event.sender is None:
        return
    inbound = event.timestamp.timestamp() if event.type != "system" else None
    _note_sender(contacts, event.channel.id, event.sender, inbound)
    if (group := provider_group(event.channel_data)) is not None:
        # A reply to the group is a reply within its window (WhatsApp's 24 hours).
        _note_sender(contacts, event.channel.id, Party(id=group), inbound)


def store_rows(
    tx: Tx,
    rows: Sequence[tuple[int, Sequence[PreparedEvent]]],
    targets_for: TargetsFor,
    now: float,
    on_new_inbound: Callable[[Tx, Event], None] | None = None,
    announcements: Announcements = DEFAULT_ANNOUNCEMENTS,
    routing: RoutingPolicy = DEFAULT_ROUTING,
    failed: Mapping[int, Sequence[FailedPartRecord]] | None = None,
) -> dict[int, list[Event]]:
    """`on_new_inbound` sees each new event a person sent (not a status), after it is queued.
    `announcements`: what a group conversation's participants are told when a silent
    observer first speaks (config conversations.announcements); `routing`: the config's
    settings for routing a person in several conversations. `failed`: the parts of a row
    that could not be read (and [] for a replayed row whose parts now all could)."""
    # One contact write per user per batch, however many of their messages it holds.
    contacts: ContactFacts = {}
    stored: dict[int, list[Event]] = {}
    for raw_id, events in rows:
        stored[raw_id] = []
        for prepared in events:
            stored[raw_id] += _store_event(
                tx, prepared, contacts, targets_for, now, on_new_inbound, announcements, routing
            )
    _touch_contacts(tx, contacts, now)
    _mark_rows_done(tx, [raw_id for raw_id, _events in rows], now, failed)
    return stored


def _store_event(
    tx: Tx,
    prepared: PreparedEvent,
    contacts: ContactFacts,
    targets_for: TargetsFor,
    now: float,
    on_new_inbound: Callable[[Tx, Event], None] | None,
    announcements: Announcements,
    routing: RoutingPolicy,
) -> list[Event]:
    """One event of a row, taken by the first of: a community keyword, an open form, an
    answer to "Which chat is this for?", a held question, else stored and queued. Returns the
    events it stored."""
    # Community keywords (JOIN SUSHI) come before an open form or question: a person
    # joining or leaving means it whatever they were asked (gateway/store/communities.py).
    if hits := communities.hits(tx, prepared.event):
        _note_sender_of(contacts, prepared)
        return communities.on_keyword(tx, prepared, hits, targets_for, announcements, now)
    session = form_sessions.active_session(tx, prepared.event, now)
    if session is not None and takes(session.form, session.position, prepared.event):
        # Before the numbered-reply mapping: an open form's question is the latest
        # one the user was asked, so a typed "2" answers it, not older choices.
        return _answer_form(tx, session, prepared, targets_for, now)
    _note_sender_of(contacts, prepared)
    # An answer to "Which chat is this for?" (store/questions.py) is the latest
    # question the person was asked: before older numbered choices.
    if questions.answer(tx, prepared, targets_for, routing, now, announcements):
        return []
    prepared = _answer_choice(tx, prepared, now)
    prepared, membership, ask = relay.route(tx, prepared, routing, targets_for, now)
    if ask is not None:
        _hold_for_question(tx, prepared, ask, targets_for, routing, now, on_new_inbound)
        return []
    # In a group conversation under control, its controller gets the event itself
    # and the other subscribed backends a standby copy (gateway/router/control.py).
    controller = membership.controller if membership is not None else None
    kept = store_inbound(tx, prepared, control.controlled(targets_for, controller), now)
    if kept and kept[0].type != "status":
        _after_new_inbound(
            tx, kept[0], prepared, membership, targets_for, now, on_new_inbound, announcements
        )
    return kept


def _hold_for_question(
    tx: Tx,
    prepared: PreparedEvent,
    ask: Ask,
    targets_for: TargetsFor,
    routing: RoutingPolicy,
    now: float,
    on_new_inbound: Callable[[Tx, Event], None] | None,
) -> None:
    """A person in several conversations is asked which one they mean; their message waits
    for the answer (gateway/store/questions.py), but what it says of them counts now."""
    if questions.hold(tx, prepared, ask, targets_for, routing, now):
        note_contact_facts(tx, prepared.event, now)
        if on_new_inbound is not None:
            on_new_inbound(tx, prepared.event)


def _after_new_inbound(
    tx: Tx,
    event: Event,
    prepared: PreparedEvent,
    membership: Membership | None,
    targets_for: TargetsFor,
    now: float,
    on_new_inbound: Callable[[Tx, Event], None] | None,
    announcements: Announcements,
) -> None:
    """What follows a new event a person sent, once stored: their contact facts, an opt-out,
    the standby copies and relay of a group conversation, the caller's hook."""
    change = note_contact_facts(tx, event, now)
    # An opt-out (STOP, unfollow) ends their communities: it wins over them all.
    if change is not None and change.opted_out:
        communities.on_opt_out(tx, event, targets_for, announcements, now)
    if membership is not None:
        controller = membership.controller
        control.send_standby(tx, event, prepared.dedupe_key, targets_for, controller, now)
        relay.relay_inbound(tx, event, membership, now, announcements)
    if on_new_inbound is not None:
        on_new_inbound(tx, event)


def _mark_rows_done(
    tx: Tx,
    ids: Sequence[int],
    now: float,
    failed: Mapping[int, Sequence[FailedPartRecord]] | None,
) -> None:
    """The inbox rows are done, the parts of each that could not be read kept beside it."""
    tx.write(
        "UPDATE inbox SET status = 'done', error = NULL, processed_at = ?, claimed_until = NULL"
        " WHERE id IN " + in_list(ids),
        (now, *ids),
    )
    for raw_id in ids:
        if failed and raw_id in failed:
            failed_parts.keep(tx, raw_id, failed[raw_id], now)


def insert_message(tx: Tx, message: NewMessage, now: float, priority: int = 0) -> None:
    insert_messages(tx, [(message, now)], priority)


def insert_messages(
    tx: Tx, messages: Sequence[tuple[NewMessage, float]], priority: int = 0
) -> None:
    """Queue new messages (each with its time), in order: a statement per table for all of
    them, where one at a time took five each (PostgreSQL pays a round trip a statement)."""
    people: ContactFacts = {(m.channel_id, m.recipient_id): (None, None, None) for m, _ in messages}
    _touch_contacts(tx, people, min(now for _message, now in messages))
    due = _turns(tx, messages)
    rows: list[Any] = []
    for message, now in messages:
        rows += (
            message.id,
            message.channel_id,
            message.recipient_id,
            message.conversation_id or conversation_id(message.channel_id, message.recipient_id),
            message.content,
            message.metadata,
            message.options,
            message.api_key,
            message.idempotency_key,
            message.request_hash,
            now,
            now,
            message.relay_of,
            message.participant_id,
        )
    tx.write(
        "INSERT INTO messages (id, channel_id, recipient_id, conversation_id, content,"
        " metadata, options, state, api_key, idempotency_key, request_hash, created_at,"
        " updated_at, relay_of, participant_id) VALUES "
        + ",".join(["(?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)"] * len(messages)),
        rows,
    )
    tx.write(
        "INSERT INTO message_history (message_id, at, state) VALUES "
        + ",".join(["(?, ?, 'queued')"] * len(messages)),
        [value for message, now in messages for value in (message.id, now)],
    )
    tx.write(
        "INSERT INTO outbox (kind, target, ref, status, next_attempt_at, created_at, recipient,"
        " priority) VALUES " + ",".join(["('send', ?, ?, 'pending', ?, ?, ?, ?)"] * len(messages)),
        [
            value
            for (message, now), when in zip(messages, due, strict=True)
            for value in (message.channel_id, message.id, when, now, message.recipient_id, priority)
        ],
    )


def _turns(tx: Tx, messages: Sequence[tuple[NewMessage, float]]) -> list[float]:
    """When each new message may go: not before one of its recipient's waiting for a retry
    due within KEEP_ORDER_SECONDS. Claims come in (due time, id) order, so a recipient's
    messages then come in turn (gateway/pipeline/recipient_order.py). Read before the new
    messages are stored: one of them, due at its own time or at the retry's, would change no
    later one's turn."""
    recipients: dict[str, set[str]] = {}
    for message, _now in messages:
        recipients.setdefault(message.channel_id, set()).add(message.recipient_id)
    waiting: dict[tuple[str, str], float] = {}
    for channel_id, ids in recipients.items():
        # CROSS JOIN: SQLite keeps the recipients' few queued messages as the outer loop (else
        # it may walk every pending row of the outbox); a message id is the ref of its send.
        people = sorted(ids)
        for recipient_id, due in tx.all(
            "SELECT messages.recipient_id, MAX(outbox.next_attempt_at) FROM messages"
            " CROSS JOIN outbox WHERE messages.channel_id = ? AND messages.recipient_id IN "
            + in_list(people)
            + " AND messages.state = 'queued' AND outbox.ref = messages.id"
            " AND outbox.status = 'pending' GROUP BY messages.recipient_id",
            (channel_id, *people),
        ):
            if due is not None:
                waiting[(channel_id, recipient_id)] = float(due)
    turns = []
    for message, now in messages:
        due = waiting.get((message.channel_id, message.recipient_id))
        turns.append(due if due is not None and now < due <= now + KEEP_ORDER_SECONDS else now)
    return turns


def _answer_form(
    tx: Tx, session: Session, prepared: PreparedEvent, targets_for: TargetsFor, now: float
) -> list[Event]:
    """An answer to a form is kept (not forwarded); the completed form is what backends get."""
    event = prepared.event
    body = prepared.body or event.model_dump_json(exclude_none=True)
    if not insert_event(tx, event, prepared.dedupe_key, now, body):
        return []  # a redelivered answer was applied already
    step = answer_form(session, event, new_id("evt"))
    form_sessions.save_step(tx, session, step, now)
    for reply in step.replies:
        metadata = {"form_id": session.message_id}
        insert_message(
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
    if not insert_event(tx, step.result, f"{prepared.dedupe_key}:form", now):
        return []
    enqueue_webhooks(tx, step.result, targets_for, now)
    return [step.result]


def _answer_choice(tx: Tx, prepared: PreparedEvent, now: float) -> PreparedEvent:
    """A text answer to choices we sent as numbered text becomes that choice's postback
    (gateway/router/numbered_answers.py decides; this reads what the sender was offered)."""
    event = prepared.event
    if not may_answer_choices(event):
        return prepared
    answered = answered_choice(event, _offered_choices(tx, event, now))
    if answered is event:
        return prepared
    return PreparedEvent(answered, prepared.dedupe_key, answered.model_dump_json(exclude_none=True))


def _offered_choices(tx: Tx, event: Event, now: float) -> OfferedChoices | None:
    """The numbered choices last sent to the event's sender, while they may still be answered."""
    assert event.sender is not None
    row = tx.one(
        "SELECT message_id, choices FROM reply_choices"
        " WHERE channel_id = ? AND user_id = ? AND expires_at > ?",
        (event.channel.id, event.sender.id, now),
    )
    if row is None:
        return None
    return OfferedChoices(row[0], [Choice(**c) for c in json.loads(row[1])])


def note_contact_facts(tx: Tx, event: Event, now: float) -> ConsentChange | None:
    """What a new inbound event says about its sender: consent and a reply token. Returns the
    consent change, for what else follows from it (reading it costs a lookup of the adapter)."""
    change = consent_change(event)
    if change is not None and event.sender is not None:
        at = event.timestamp.timestamp()
        if change.opted_out:
            set_subscription(tx, event.channel.id, event.sender.id, change.reason, now, at)
        else:
            _clear_opt_out(tx, event.channel.id, event.sender.id, at)
    _keep_reply_token(tx, event, now)
    return change


def _clear_opt_out(tx: Tx, channel_id: str, user_id: str, at: float) -> None:
    """End an opt-out made before `at`: a message that reaches us late (a provider's retry)
    but was written before the user opted out does not undo it. One keyed UPDATE, run for
    most user messages: no contact row means no opt-out to end."""
    tx.write(
        "UPDATE contacts SET unsubscribed_at = NULL, unsubscribe_reason = NULL"
        " WHERE channel_id = ? AND user_id = ? AND unsubscribed_at <= ?",
        (channel_id, user_id, at),
    )


def store_inbound(
    tx: Tx, prepared: PreparedEvent, targets_for: TargetsFor, now: float
) -> list[Event]:
    event, body = prepared.event, prepared.body
    if body is None:
        assert event.status is not None
        # Only a provider id can name a send of ours (gateway/router/statuses.py decides).
        sent = sent_message(tx, event) if event.status.external_id is not None else None
        match status_route(event.status, sent):
            case "watermark":
                return _apply_watermark(tx, prepared, targets_for, now)
            case "hold":  # it reaches the backends once the send is recorded (store/held.py)
                insert_event(tx, event, prepared.dedupe_key, now, held=True)
                return []
            case "apply":
                assert sent is not None
                routed = route_status(tx, event, sent, now)
                if routed is None:
                    return []
                event = routed
            case "pass":  # it names nothing of ours: it goes to the backends as it is
                pass
        body = event.model_dump_json(exclude_none=True)
    if not insert_event(tx, event, prepared.dedupe_key, now, body):
        return []
    enqueue_webhooks(tx, event, targets_for, now)
    if event.type == "status":  # a message to a user: settled, or failed over
        routes.after_status(tx, event, targets_for, now)
    return [event]


def _apply_watermark(
    tx: Tx, prepared: PreparedEvent, targets_for: TargetsFor, now: float
) -> list[Event]:
    """One status event per message to this recipient that the watermark covers.

    A message is covered when it was queued no later than the watermark: the provider cannot
    have delivered what we had not yet asked it to send.
    """
    event = prepared.event
    assert event.status is not None and event.status.watermark is not None
    states = watermark_moves(event)
    if not states:
        return []
    assert event.recipient is not None
    rows = tx.all(
        "SELECT m.id, m.conversation_id, m.state, m.participant_id, (SELECT p.external_id"
        " FROM message_parts p WHERE p.message_id = m.id ORDER BY p.position LIMIT 1)"
        " FROM messages m WHERE m.channel_id = ? AND m.recipient_id = ? AND m.created_at <= ?"
        " AND m.state IN " + in_list(states) + " ORDER BY m.created_at",
        (event.channel.id, event.recipient.id, event.status.watermark.timestamp(), *states),
    )
    emitted = []
    for *message, external_id in rows:
        sent = SentMessage(*message)
        if not advance(tx, sent.id, event.status.state, None, "watermark", now):
            continue
        participant = relay.copy_participant(tx, sent.participant_id)
        covered = covered_status(event, sent, external_id, participant, new_id("evt"))
        if insert_event(tx, covered, f"{prepared.dedupe_key}:{sent.id}", now):
            enqueue_webhooks(tx, covered, targets_for, now)
            routes.after_status(tx, covered, targets_for, now)
            emitted.append(covered)
    return emitted


def sent_message(tx: Tx, event: Event) -> SentMessage | None:
    """The message of ours whose send the provider gave the status's external id, if recorded."""
    assert event.status is not None
    row = tx.one(
        "SELECT p.message_id, m.conversation_id, m.state, m.participant_id FROM message_parts p"
        " JOIN messages m ON m.id = p.message_id WHERE p.channel_id = ? AND p.external_id = ?",
        (event.channel.id, event.status.external_id),
    )
    return SentMessage(*row) if row is not None else None


def route_status(tx: Tx, event: Event, sent: SentMessage, now: float) -> Event | None:
    """Apply a status to our message `sent`: the event naming it (and, for a relayed copy,
    its recipient participant), or None when it changes nothing (stale, or already recorded)."""
    assert event.status is not None
    error, detail = status_error(event.status)
    if not advance(tx, sent.id, event.status.state, error, detail, now):
        return None
    return named_status(event, sent, relay.copy_participant(tx, sent.participant_id))


def advance(
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
    match state_change(row[0], state):
        case "same":
            return False  # the provider confirming what we already recorded
        case "stale":
            history(tx, message_id, now, f"ignored:{state}", f"already {row[0]}")
            return False
    tx.write(
        "UPDATE messages SET state = ?, error = COALESCE(?, error), updated_at = ? WHERE id = ?",
        (state, json.dumps(error) if error else None, now, message_id),
    )
    history(tx, message_id, now, state, detail)
    return True
