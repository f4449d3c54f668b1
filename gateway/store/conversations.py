"""Group conversations in the store, and who is in them: each function runs inside the
caller's transaction, and emits the events about what it changed (docs/conversations.md).

What is said in them (routing, relayed copies, history) is in store/relay.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gateway.ids import new_id
from gateway.router.conversations import API_ONLY, Seat
from gateway.schema import ControlChange, ConversationEvent, ParticipantRef
from gateway.store import writes
from gateway.store.database import Tx
from gateway.store.records import TargetsFor


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
    observer: bool = False
    api_only: bool = False  # no channel identity: reached through the API only
    via_group: str | None = None  # a provider group's member, reached through the group


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
    controller: str | None = None

    def seats(self) -> list[Seat]:
        return [p.seat for p in self.participants]


_PARTICIPANT = (
    "SELECT id, conversation_id, channel_id, provider_id, role, display_name, user_id,"
    " joined_at, left_at, observer, via_group FROM participants"
)


def _participant(row: Sequence[Any]) -> ParticipantRecord:
    seat = Seat(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[8] is None,
        bool(row[9]),
        via_group=row[10],
    )
    return ParticipantRecord(seat, float(row[7]), writes.optional_float(row[8]))


def load(tx: Tx, conversation_id: str, *, lock: bool = False) -> ConversationRecord | None:
    """The conversation with its participants. With `lock`, for a change that depends on what
    it reads (a post, a close): on PostgreSQL a concurrent change waits for this transaction,
    and this one reads the row as that change left it, so a post never relays into a
    conversation closed meanwhile."""
    row = tx.one(
        "SELECT id, owner, mode, state, metadata, created_at, closed_at, controller"
        " FROM conversations WHERE id = ?" + (tx.dialect.for_update if lock else ""),
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
        writes.optional_float(row[6]),
        [_participant(p) for p in people],
        row[7],
    )


def at(prefix: str, name: str) -> str:
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
            422, "user_not_found", at(request.field, "user_id"), "no user with this id"
        )
    user_id = row[0]
    identities = tx.all(
        "SELECT channel_id, provider_id FROM identities WHERE user_id = ?"
        " ORDER BY linked_at, channel_id, provider_id",
        (user_id,),
    )
    if request.api_only:
        return replace(request, user_id=user_id)
    if request.channel_id is None:
        if not identities:
            raise ConversationConflict(
                422,
                "no_identity",
                at(request.field, "identity"),
                "the user has no linked identity: give one to deliver on",
            )
        channel_id, provider_id = identities[0]
        return replace(request, user_id=user_id, channel_id=channel_id, provider_id=provider_id)
    if (request.channel_id, request.provider_id) not in {(c, p) for c, p in identities}:
        raise ConversationConflict(
            422, "not_linked", at(request.field, "identity"), "this identity is not the user's"
        )
    return replace(request, user_id=user_id)


def _join(
    tx: Tx, conversation: ConversationRecord, request: SeatRequest, now: float
) -> ParticipantRecord:
    request = _resolve(tx, conversation.owner, request)
    participant_id = new_id("par")
    if request.api_only:
        request = replace(request, channel_id=API_ONLY, provider_id=participant_id)
    assert request.channel_id is not None and request.provider_id is not None
    seat = Seat(
        participant_id,
        conversation.id,
        request.channel_id,
        request.provider_id,
        request.role,
        request.display_name,
        request.user_id,
        observer=request.observer,
        via_group=request.via_group,
    )
    inserted = tx.execute(
        "INSERT INTO participants (id, conversation_id, channel_id, provider_id, user_id, role,"
        " display_name, position, joined_at, observer, via_group)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
            int(seat.observer),
            seat.via_group,
        ),
    )
    if inserted == 0:  # the unique index decides, atomically: no check-then-insert race
        raise ConversationConflict(
            409,
            "already_participant",
            at(request.field, "identity"),
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
    controller: str | None = None,
    group: tuple[str, str] | None = None,
) -> ConversationRecord:
    """A new conversation, with `requests` present. A provider group's (`group`: its channel
    and id) is made once: if it exists already, that one is returned, and nothing is emitted."""
    inserted = tx.execute(
        "INSERT INTO conversations (id, owner, mode, metadata, state, created_at,"
        " last_active_at, controller, group_channel_id, group_id)"
        " VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (conversation_id, owner, mode, metadata, now, now, controller, *(group or (None, None))),
    )
    if inserted == 0:
        assert group is not None, f"conversation id {conversation_id} taken"
        row = tx.one(
            "SELECT id FROM conversations WHERE group_channel_id = ? AND group_id = ?", group
        )
        existing = load(tx, row[0]) if row is not None else None
        assert existing is not None
        return existing
    for request in requests:
        current = load(tx, conversation_id)
        assert current is not None
        _join(tx, current, request, now)
    created = load(tx, conversation_id)
    assert created is not None
    people = [p.seat.ref(presence=True) for p in created.participants]
    _emit(tx, "conversation.created", created, now, targets_for, participants=people)
    return created


def require_open(conversation: ConversationRecord) -> None:
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
    require_open(conversation)
    joined = _join(tx, conversation, request, now)
    _emit(tx, "participant.joined", conversation, now, targets_for, joined.seat.ref(presence=True))
    return joined


def present(conversation: ConversationRecord, participant_id: str, field: str) -> Seat:
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
) -> Seat:
    """They leave: the seat they held."""
    seat = present(conversation, participant_id, "participant_id")
    tx.execute("UPDATE participants SET left_at = ? WHERE id = ?", (now, seat.id))
    _emit(tx, "participant.left", conversation, now, targets_for, seat.ref())
    return seat


def make_visible(tx: Tx, seat: Seat) -> Seat:
    """A silent observer speaks: from now on they are a participant like the others."""
    tx.execute("UPDATE participants SET observer = 0 WHERE id = ?", (seat.id,))
    return replace(seat, observer=False)


def set_controller(
    tx: Tx,
    conversation: ConversationRecord,
    action: str,
    controller: str | None,
    targets_for: TargetsFor,
    now: float,
) -> None:
    """Hand control to `controller` (None: no one); emits control.passed."""
    tx.execute(
        "UPDATE conversations SET controller = ? WHERE id = ?", (controller, conversation.id)
    )
    change = ControlChange(action=action, previous=conversation.controller, controller=controller)
    _emit(tx, "control.passed", conversation, now, targets_for, control=change)


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


def _emit(
    tx: Tx,
    event_type: str,
    conversation: ConversationRecord,
    now: float,
    targets_for: TargetsFor,
    participant: ParticipantRef | None = None,
    participants: list[ParticipantRef] | None = None,
    control: ControlChange | None = None,
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
        control=control,
    )
    writes.emit_channelless(tx, event, "", "conversation", targets_for, now)


def set_metadata(tx: Tx, conversation: ConversationRecord, metadata: str | None) -> None:
    """Replace its metadata (None clears it). Open or closed: it is the backend's own record."""
    tx.execute("UPDATE conversations SET metadata = ? WHERE id = ?", (metadata, conversation.id))


@dataclass(frozen=True)
class ConversationQuery:
    """Which conversations GET /v1/conversations lists: all of `owner`'s (every key's when
    None), narrowed by each filter given; `before`: where the previous page ended."""

    owner: str | None
    state: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # (key, value): a top-level value, as text
    user_id: str | None = None
    before: tuple[float, str] | None = None  # (created_at, id) of the last one of a page


def _metadata_value(tx: Tx) -> str:
    """SQL for one top-level metadata value as text, given the key (`?`): a string as it is,
    a number as written. The key is a plain name (the API checks it), so it quotes safely."""
    if tx.dialect.name == "postgres":
        return "(metadata::jsonb ->> ?)"
    return "CAST(json_extract(metadata, '$.\"' || ? || '\"') AS TEXT)"


def page(tx: Tx, query: ConversationQuery, limit: int) -> list[ConversationRecord]:
    """Up to `limit` conversations, newest first (ids only break ties: a ULID is ordered by
    the millisecond, not within it)."""
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    for column, value in (("owner", query.owner), ("state", query.state)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.before is not None:
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [query.before[0], query.before[0], query.before[1]]
    for key, value in query.metadata:
        where.append(f"{_metadata_value(tx)} = ?")
        params += [key, value]
    if query.user_id is not None:  # a participant now or once, under this id or merged into it
        where.append(
            "EXISTS (SELECT 1 FROM participants p WHERE p.conversation_id = conversations.id"
            " AND p.user_id IN (SELECT id FROM users WHERE id = ? OR merged_into = ?))"
        )
        params += [query.user_id, query.user_id]
    rows = tx.all(
        "SELECT id FROM conversations WHERE "
        + " AND ".join(where)
        + " ORDER BY created_at DESC, id DESC LIMIT ?",
        (*params, limit),
    )
    found = [load(tx, row[0]) for row in rows]
    return [c for c in found if c is not None]
