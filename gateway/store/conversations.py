"""Group conversations in the store: each function runs inside the caller's transaction.

The decisions (which conversation an inbound message belongs to, who gets a copy, how a copy
reads) are pure functions in gateway/router/; these steps read what they need and persist what
they decide, with the events about it, in the same transaction (docs/conversations.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gateway.ids import new_id
from gateway.router.conversations import (
    Membership,
    Seat,
    conversation_for,
    recipients,
    relay_targets,
)
from gateway.router.relay import relayed
from gateway.schema import Content, ConversationEvent, Event, ParticipantRef
from gateway.store import steps
from gateway.store.database import Tx
from gateway.store.records import NewMessage, PreparedEvent, TargetsFor


class ConversationConflict(Exception):
    """What a change to a conversation would break: the API's status and `code`, the field."""

    def __init__(self, status: int, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SeatRequest:
    """A participant to add, as the API took it; `field` names it in errors (`participants[1]`,
    or empty for a body that is the participant)."""

    field: str
    role: str
    display_name: str
    user_id: str | None = None
    channel_id: str | None = None
    provider_id: str | None = None


@dataclass(frozen=True)
class ParticipantRecord:
    seat: Seat
    joined_at: float
    left_at: float | None


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    owner: str
    mode: str
    state: str
    metadata: str | None
    created_at: float
    closed_at: float | None
    participants: list[ParticipantRecord]

    def seats(self) -> list[Seat]:
        return [p.seat for p in self.participants]


@dataclass(frozen=True)
class CopyRecord:
    message_id: str
    channel_id: str
    participant: ParticipantRef
    state: str


@dataclass(frozen=True)
class ConversationMessageRecord:
    seq: int
    id: str
    author: ParticipantRef | None
    content: str
    event_id: str | None
    created_at: float
    copies: list[CopyRecord]


_PARTICIPANT = (
    "SELECT id, conversation_id, channel_id, provider_id, role, display_name, user_id,"
    " joined_at, left_at FROM participants"
)


def _participant(row: Sequence[Any]) -> ParticipantRecord:
    seat = Seat(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[8] is None)
    return ParticipantRecord(seat, float(row[7]), steps.optional_float(row[8]))


def load(tx: Tx, conversation_id: str) -> ConversationRecord | None:
    row = tx.one(
        "SELECT id, owner, mode, state, metadata, created_at, closed_at FROM conversations"
        " WHERE id = ?",
        (conversation_id,),
    )
    if row is None:
        return None
    people = tx.all(
        _PARTICIPANT + " WHERE conversation_id = ? ORDER BY position, joined_at, id",
        (conversation_id,),
    )
    return ConversationRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        float(row[5]),
        steps.optional_float(row[6]),
        [_participant(p) for p in people],
    )


def _at(prefix: str, name: str) -> str:
    """A field's path in the request: `participants[1].user_id`, or `user_id` at the top."""
    return f"{prefix}.{name}" if prefix else name


def _resolve(tx: Tx, owner: str, request: SeatRequest) -> SeatRequest:
    """The identity a participant is reached on: the one given, or their user's first. A
    user must be the key's own (docs/users.md), and the identity given must be theirs."""
    if request.user_id is None:
        return request
    row = tx.one("SELECT id, owner, merged_into FROM users WHERE id = ?", (request.user_id,))
    if row is not None and row[2] is not None:
        row = tx.one("SELECT id, owner, merged_into FROM users WHERE id = ?", (row[2],))
    if row is None or row[1] != owner:
        raise ConversationConflict(
            422, "user_not_found", _at(request.field, "user_id"), "no user with this id"
        )
    user_id = row[0]
    identities = tx.all(
        "SELECT channel_id, provider_id FROM identities WHERE user_id = ?"
        " ORDER BY linked_at, channel_id, provider_id",
        (user_id,),
    )
    if request.channel_id is None:
        if not identities:
            raise ConversationConflict(
                422,
                "no_identity",
                _at(request.field, "identity"),
                "the user has no linked identity: give one to deliver on",
            )
        channel_id, provider_id = identities[0]
        return replace(request, user_id=user_id, channel_id=channel_id, provider_id=provider_id)
    if (request.channel_id, request.provider_id) not in {(c, p) for c, p in identities}:
        raise ConversationConflict(
            422, "not_linked", _at(request.field, "identity"), "this identity is not the user's"
        )
    return replace(request, user_id=user_id)


def _join(
    tx: Tx, conversation: ConversationRecord, request: SeatRequest, now: float
) -> ParticipantRecord:
    request = _resolve(tx, conversation.owner, request)
    assert request.channel_id is not None and request.provider_id is not None
    seat = Seat(
        new_id("par"),
        conversation.id,
        request.channel_id,
        request.provider_id,
        request.role,
        request.display_name,
        request.user_id,
    )
    inserted = tx.execute(
        "INSERT INTO participants (id, conversation_id, channel_id, provider_id, user_id, role,"
        " display_name, position, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (
            seat.id,
            seat.conversation_id,
            seat.channel_id,
            seat.provider_id,
            seat.user_id,
            seat.role,
            seat.display_name,
            len(conversation.participants),
            now,
        ),
    )
    if inserted == 0:  # the unique index decides, atomically: no check-then-insert race
        raise ConversationConflict(
            409,
            "already_participant",
            _at(request.field, "identity"),
            "this identity is present in the conversation already",
        )
    return ParticipantRecord(seat, now, None)


def create(
    tx: Tx,
    conversation_id: str,
    owner: str,
    mode: str,
    metadata: str | None,
    requests: Sequence[SeatRequest],
    targets_for: TargetsFor,
    now: float,
) -> ConversationRecord:
    tx.execute(
        "INSERT INTO conversations (id, owner, mode, metadata, state, created_at,"
        " last_active_at) VALUES (?, ?, ?, ?, 'open', ?, ?)",
        (conversation_id, owner, mode, metadata, now, now),
    )
    for request in requests:
        current = load(tx, conversation_id)
        assert current is not None
        _join(tx, current, request, now)
    created = load(tx, conversation_id)
    assert created is not None
    people = [p.seat.ref() for p in created.participants]
    _emit(tx, "conversation.created", created, now, targets_for, participants=people)
    return created


def _require_open(conversation: ConversationRecord) -> None:
    if conversation.state != "open":
        raise ConversationConflict(
            409, "conversation_closed", "conversation", "this conversation is closed"
        )


def add(
    tx: Tx,
    conversation: ConversationRecord,
    request: SeatRequest,
    targets_for: TargetsFor,
    now: float,
) -> ParticipantRecord:
    _require_open(conversation)
    joined = _join(tx, conversation, request, now)
    _emit(tx, "participant.joined", conversation, now, targets_for, joined.seat.ref())
    return joined


def _present(conversation: ConversationRecord, participant_id: str, field: str) -> Seat:
    for present in conversation.participants:
        if present.seat.id == participant_id and present.seat.present:
            return present.seat
    raise ConversationConflict(
        404 if field == "participant_id" else 422,
        "participant_not_found",
        field,
        f"no participant {participant_id!r} present in this conversation",
    )


def remove(
    tx: Tx,
    conversation: ConversationRecord,
    participant_id: str,
    targets_for: TargetsFor,
    now: float,
) -> None:
    seat = _present(conversation, participant_id, "participant_id")
    tx.execute("UPDATE participants SET left_at = ? WHERE id = ?", (now, seat.id))
    _emit(tx, "participant.left", conversation, now, targets_for, seat.ref())


def close(tx: Tx, conversation: ConversationRecord, targets_for: TargetsFor, now: float) -> bool:
    """Close it: no message is relayed in it any more. False when it was closed already."""
    if conversation.state != "open":
        return False
    tx.execute(
        "UPDATE conversations SET state = 'closed', closed_at = ? WHERE id = ?",
        (now, conversation.id),
    )
    _emit(tx, "conversation.closed", conversation, now, targets_for)
    return True


def _relay(
    tx: Tx,
    conversation: ConversationRecord,
    author: Seat | None,
    to: Sequence[Seat],
    content: Content,
    event_id: str | None,
    source_channel: str | None,
    now: float,
) -> tuple[str, list[str]]:
    """Keep a conversation message and queue a copy to each of `to`: (its id, the channels
    of the copies). A copy is an ordinary outbound message, sent from the business's own
    identity on the recipient's channel: the dispatcher treats it like any other."""
    message_id = new_id("cmsg")
    tx.execute(
        "INSERT INTO conversation_messages (id, conversation_id, author, event_id, content,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            message_id,
            conversation.id,
            author.id if author else None,
            event_id,
            content.model_dump_json(exclude_none=True),
            now,
        ),
    )
    tx.execute("UPDATE conversations SET last_active_at = ? WHERE id = ?", (now, conversation.id))
    ref = author.ref() if author else None
    channels = []
    for seat in to:
        for copy in relayed(content, ref, seat.channel_id, source_channel):
            steps.insert_message(
                tx,
                NewMessage(
                    id=new_id("msg"),
                    channel_id=seat.channel_id,
                    recipient_id=seat.provider_id,
                    content=copy.model_dump_json(exclude_none=True),
                    metadata=None,
                    api_key=conversation.owner,
                    idempotency_key=None,
                    request_hash="relay",
                    conversation_id=conversation.id,
                    relay_of=message_id,
                    participant_id=seat.id,
                ),
                now,
            )
            channels.append(seat.channel_id)
    return message_id, channels


def post(
    tx: Tx,
    conversation: ConversationRecord,
    content: Content,
    author_id: str | None,
    only: Sequence[str] | None,
    now: float,
) -> tuple[ConversationMessageRecord, list[str]]:
    """The backend speaks in the conversation (as `author_id` when given): the message with
    its copies, and the channels they wait on."""
    _require_open(conversation)
    author = _present(conversation, author_id, "author") if author_id else None
    for index, wanted in enumerate(only or ()):
        _present(conversation, wanted, f"to[{index}]")
    to = recipients(conversation.seats(), author_id, only)
    message_id, channels = _relay(tx, conversation, author, to, content, None, None, now)
    [posted] = history(tx, conversation.id, None, 1, message_id)
    return posted, channels


_MEMBERSHIPS = (
    "SELECT p.id, p.conversation_id, p.channel_id, p.provider_id, p.role, p.display_name,"
    " p.user_id, c.mode, c.last_active_at FROM participants p"
    " JOIN conversations c ON c.id = p.conversation_id"
    " WHERE p.left_at IS NULL AND c.state = 'open' AND ((p.channel_id = ? AND p.provider_id = ?)"
    " OR p.user_id IN (SELECT user_id FROM identities WHERE channel_id = ? AND provider_id = ?))"
)

# What a participant sends that belongs to their conversation: what they say and what they tap.
ROUTED_TYPES = frozenset({"message", "postback"})


def route(tx: Tx, prepared: PreparedEvent) -> tuple[PreparedEvent, Membership | None]:
    """An inbound message or postback from a participant of an open conversation joins it
    (gateway/router/conversations.py chooses which): its conversation id is the group's, and
    it names its author. Anyone else stays in their 1:1 conversation."""
    event = prepared.event
    if event.type not in ROUTED_TYPES or event.sender is None:
        return prepared, None
    ids = (event.channel.id, event.sender.id)
    rows = tx.all(_MEMBERSHIPS, ids + ids)
    if not rows:
        return prepared, None
    chosen = conversation_for(
        [
            Membership(Seat(r[0], r[1], r[2], r[3], r[4], r[5], r[6]), r[7], float(r[8]))
            for r in rows
        ]
    )
    if chosen is None:
        return prepared, None
    routed = event.model_copy(
        update={"conversation_id": chosen.seat.conversation_id, "author": chosen.seat.ref()}
    )
    body = routed.model_dump_json(exclude_none=True)
    return PreparedEvent(routed, prepared.dedupe_key, body), chosen


def relay_inbound(tx: Tx, event: Event, membership: Membership, now: float) -> list[str]:
    """A participant's new message: kept in the conversation's history, and in `relay` mode
    copied to every other participant present. The channels of the copies."""
    if event.type != "message" or event.message is None:
        tx.execute(
            "UPDATE conversations SET last_active_at = ? WHERE id = ?",
            (now, membership.seat.conversation_id),
        )
        return []
    conversation = load(tx, membership.seat.conversation_id)
    assert conversation is not None
    content = event.message.content
    to = relay_targets(membership.mode, conversation.seats(), membership.seat.id, content.type)
    _id, channels = _relay(
        tx, conversation, membership.seat, to, content, event.id, event.channel.id, now
    )
    return channels


def history(
    tx: Tx, conversation_id: str, before: int | None, limit: int, message_id: str | None = None
) -> list[ConversationMessageRecord]:
    """Up to `limit` messages, newest first, from before the one with `seq` `before`; only
    the one `message_id` names when given."""
    where, params = ("", ()) if before is None else (" AND m.seq < ?", (before,))
    if message_id is not None:
        where, params = where + " AND m.id = ?", (*params, message_id)
    rows = tx.all(
        "SELECT m.seq, m.id, p.id, p.role, p.display_name, p.user_id, m.content, m.event_id,"
        " m.created_at FROM conversation_messages m LEFT JOIN participants p ON p.id = m.author"
        " WHERE m.conversation_id = ?" + where + " ORDER BY m.seq DESC LIMIT ?",
        (conversation_id, *params, limit),
    )
    ids = [r[1] for r in rows]
    copies: dict[str, list[CopyRecord]] = {i: [] for i in ids}
    for relay_of, message_id, channel_id, state, *person in tx.all(
        "SELECT m.relay_of, m.id, m.channel_id, m.state, p.id, p.role, p.display_name, p.user_id"
        " FROM messages m JOIN participants p ON p.id = m.participant_id"
        " WHERE m.relay_of IN " + steps.in_list(ids) + " ORDER BY p.position, m.created_at, m.id",
        ids,
    ):
        copies[relay_of].append(CopyRecord(message_id, channel_id, _ref(person), state))
    return [
        ConversationMessageRecord(
            int(r[0]),
            r[1],
            _ref(r[2:6]) if r[2] is not None else None,
            r[6],
            r[7],
            float(r[8]),
            copies[r[1]],
        )
        for r in rows
    ]


def _ref(row: Sequence[Any]) -> ParticipantRef:
    return ParticipantRef(id=row[0], role=row[1], display_name=row[2], user_id=row[3])


def copy_participant(tx: Tx, participant_id: str | None) -> ParticipantRef | None:
    """The recipient participant of a relayed copy, for its status events."""
    if participant_id is None:
        return None
    row = tx.one(
        "SELECT id, role, display_name, user_id FROM participants WHERE id = ?", (participant_id,)
    )
    return _ref(row) if row is not None else None


def _emit(
    tx: Tx,
    event_type: str,
    conversation: ConversationRecord,
    now: float,
    targets_for: TargetsFor,
    participant: ParticipantRef | None = None,
    participants: list[ParticipantRef] | None = None,
) -> None:
    """Store an event about the conversation; queue it for the backends that asked for it."""
    event = ConversationEvent(
        id=new_id("evt"),
        type=event_type,
        timestamp=datetime.fromtimestamp(now, UTC),
        conversation_id=conversation.id,
        mode=conversation.mode,
        metadata=json.loads(conversation.metadata) if conversation.metadata else None,
        participant=participant,
        participants=participants,
    )
    steps.emit_channelless(tx, event, "", "conversation", targets_for, now)
