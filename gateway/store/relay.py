"""What is said in a group conversation: which one an inbound message joins, its copies to
the other participants, and the history. Each function runs inside the caller's transaction;
the decisions are the router's (gateway/router/conversations.py, relay.py), and these steps
persist them, with the inbound event, in its transaction (docs/conversations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.ids import new_id
from gateway.router.conversations import (
    DEFAULT_ANNOUNCEMENTS,
    ROUTED_TYPES,
    Announcements,
    Ask,
    Membership,
    Routed,
    RouteFacts,
    RoutingPolicy,
    Seat,
    announced_to,
    announcement,
    conversation_for,
    provider_group,
    recipients,
    relay_targets,
)
from gateway.router.relay import relayed
from gateway.schema import Content, Event, ParticipantRef
from gateway.schema.content import TextContent
from gateway.store import conversations, moderation, provider_groups, writes
from gateway.store.database import Tx
from gateway.store.records import NewMessage, PreparedEvent, TargetsFor

if TYPE_CHECKING:  # steps imports this module, and conversations imports steps: at run time
    # a name imported from conversations would be read before it is defined
    from gateway.store.conversations import ConversationRecord


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
            writes.insert_message(
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


def announce(
    tx: Tx, conversation: ConversationRecord, seat: Seat, template: str, now: float
) -> list[str]:
    """Tell the others present that `seat` joined or left (`template`), in the business's
    own voice: a conversation message without author. The channels of the copies."""
    to = announced_to(conversation.mode, conversation.seats(), seat)
    if not template or not to:
        return []
    line = TextContent(text=announcement(template, seat))
    _id, channels = _relay(tx, conversation, None, to, line, None, None, now)
    return channels


def join(
    tx: Tx,
    conversation: ConversationRecord,
    request: conversations.SeatRequest,
    targets_for: TargetsFor,
    announcements: Announcements,
    now: float,
) -> list[str]:
    """Add a participant; a visible one is announced to the others (relay mode). The channels
    of the announcement's copies."""
    joined = conversations.add(tx, conversation, request, targets_for, now)
    current = conversations.load(tx, conversation.id)
    assert current is not None
    return announce(tx, current, joined.seat, announcements.joined, now)


def leave(
    tx: Tx,
    conversation: ConversationRecord,
    participant_id: str,
    targets_for: TargetsFor,
    announcements: Announcements,
    now: float,
) -> list[str]:
    """A participant leaves; if they were visible, the others are told (relay mode)."""
    seat = conversations.remove(tx, conversation, participant_id, targets_for, now)
    return announce(tx, conversation, seat, announcements.left, now)


def speak(
    tx: Tx, conversation: ConversationRecord, seat: Seat, announcements: Announcements, now: float
) -> tuple[ConversationRecord, Seat, list[str]]:
    """A participant about to speak: a silent observer becomes visible first, and the others
    are told they joined, before any message of theirs (each recipient's sends go in the
    order queued). The conversation and seat as they are then, the channels of the copies."""
    if not seat.observer:
        return conversation, seat, []
    visible = conversations.make_visible(tx, seat)
    now_visible = conversations.load(tx, conversation.id)
    assert now_visible is not None
    return now_visible, visible, announce(tx, now_visible, visible, announcements.joined, now)


def post(
    tx: Tx,
    conversation: ConversationRecord,
    content: Content,
    author_id: str | None,
    only: Sequence[str] | None,
    now: float,
    announcements: Announcements = DEFAULT_ANNOUNCEMENTS,
) -> tuple[ConversationMessageRecord, list[str]]:
    """The backend speaks in the conversation (as `author_id` when given): the message with
    its copies, and the channels they wait on."""
    conversations.require_open(conversation)
    author = conversations.present(conversation, author_id, "author") if author_id else None
    for index, wanted in enumerate(only or ()):
        if conversations.present(conversation, wanted, f"to[{index}]").api_only:
            raise conversations.ConversationConflict(
                422,
                "api_only",
                f"to[{index}]",
                f"participant {wanted!r} is reached through the API only: no copy can go to"
                " them (they read the history)",
            )
    announced: list[str] = []
    if author is not None:
        conversation, author, announced = speak(tx, conversation, author, announcements, now)
    to = recipients(conversation.seats(), author_id, only)
    message_id, channels = _relay(tx, conversation, author, to, content, None, None, now)
    [posted] = history(tx, conversation.id, None, 1, message_id)
    return posted, announced + channels


_MEMBERSHIPS = (
    "SELECT p.id, p.conversation_id, p.channel_id, p.provider_id, p.role, p.display_name,"
    " p.user_id, c.mode, c.last_active_at, p.observer, c.controller FROM participants p"
    " JOIN conversations c ON c.id = p.conversation_id"
    " WHERE p.left_at IS NULL AND c.state = 'open' AND p.channel_id <> ''"
    " AND p.via_group IS NULL"
    " AND ((p.channel_id = ? AND p.provider_id = ?)"
    " OR p.user_id IN (SELECT user_id FROM identities WHERE channel_id = ? AND provider_id = ?))"
)
# The conversation of a message of ours a person quotes: a relayed copy or a conversation
# message sent to a participant (only those name their participant).
_QUOTED = (
    "SELECT m.conversation_id FROM message_parts p JOIN messages m ON m.id = p.message_id"
    " WHERE p.channel_id = ? AND p.external_id = ? AND m.participant_id IS NOT NULL"
)


def _reply_to(event: Event) -> str | None:
    if event.message is not None:
        return event.message.reply_to
    return event.postback.reply_to if event.postback is not None else None


def facts(tx: Tx, event: Event, memberships: Sequence[Membership], now: float) -> RouteFacts:
    """What the router weighs for a sender present in `memberships`: the conversation of
    the message they quote, and when each conversation last had them in it: a copy sent to
    them, or their own message (so that their next one, after an answer to the question,
    follows it)."""
    quoted = _reply_to(event)
    row = tx.one(_QUOTED, (event.channel.id, quoted)) if quoted else None
    seats = [m.seat.id for m in memberships]
    among = writes.in_list(seats)
    addressed = tx.all(
        "SELECT conversation_id, MAX(created_at) FROM ("
        "SELECT conversation_id, created_at FROM messages WHERE participant_id IN "
        + among
        + " UNION ALL SELECT conversation_id, created_at FROM conversation_messages"
        " WHERE author IN " + among + ") AS t GROUP BY conversation_id",
        seats + seats,
    )
    return RouteFacts(now, row[0] if row else None, {r[0]: float(r[1]) for r in addressed})


def joined(prepared: PreparedEvent, membership: Membership) -> PreparedEvent:
    """The event as said in `membership`'s conversation, by its participant."""
    routed = prepared.event.model_copy(
        update={
            "conversation_id": membership.seat.conversation_id,
            "author": membership.seat.ref(),
        }
    )
    return PreparedEvent(routed, prepared.dedupe_key, routed.model_dump_json(exclude_none=True))


def memberships_of(tx: Tx, channel_id: str, sender_id: str) -> list[Membership]:
    """The open conversations a sender is present in, by their identity or their user's."""
    ids = (channel_id, sender_id)
    return [
        Membership(
            Seat(r[0], r[1], r[2], r[3], r[4], r[5], r[6], observer=bool(r[9])),
            r[7],
            float(r[8]),
            r[10],
        )
        for r in tx.all(_MEMBERSHIPS, ids + ids)
    ]


def route(
    tx: Tx,
    prepared: PreparedEvent,
    policy: RoutingPolicy,
    targets_for: TargetsFor,
    now: float,
) -> tuple[PreparedEvent, Membership | None, Ask | None]:
    """An inbound message or postback from a participant of an open conversation joins it
    (gateway/router/conversations.py chooses which): its conversation id is the group's, and
    it names its author. One said in a provider group joins the group's conversation. When
    no rule decides, the Ask says which conversations to offer. Anyone else stays in their
    1:1 conversation."""
    event = prepared.event
    if event.type not in ROUTED_TYPES or event.sender is None:
        return prepared, None, None
    group = provider_group(event.channel_data)
    if group is not None:
        membership = provider_groups.member(tx, event, group, policy, targets_for, now)
        return (joined(prepared, membership) if membership else prepared), membership, None
    memberships = memberships_of(tx, event.channel.id, event.sender.id)
    if not memberships:
        return prepared, None, None
    # Present in one: nothing to weigh, and no query spent on it (most senders, most times).
    known = facts(tx, event, memberships, now) if len(memberships) > 1 else RouteFacts(now)
    decision = conversation_for(memberships, known, policy)
    # Closed by a request that committed after the memberships were read: among the others
    # (and a question offers only conversations still open).
    while decision is not None:
        chosen = [decision.membership] if isinstance(decision, Routed) else decision.options
        closed = {
            m.seat.conversation_id for m in chosen if not _still_open(tx, m.seat.conversation_id)
        }
        if not closed:
            break
        memberships = [m for m in memberships if m.seat.conversation_id not in closed]
        decision = conversation_for(memberships, known, policy)
    if isinstance(decision, Ask):
        return prepared, None, decision
    if decision is None:
        return prepared, None, None
    return joined(prepared, decision.membership), decision.membership, None


def _still_open(tx: Tx, conversation_id: str) -> bool:
    """Whether it is open, its row locked on PostgreSQL till the event commits: a close
    waits, so nothing is relayed into a conversation once it is closed."""
    row = tx.one(
        "SELECT state FROM conversations WHERE id = ?" + tx.dialect.for_update, (conversation_id,)
    )
    return row is not None and row[0] == "open"


def relay_inbound(
    tx: Tx,
    event: Event,
    membership: Membership,
    now: float,
    announcements: Announcements = DEFAULT_ANNOUNCEMENTS,
) -> list[str]:
    """A participant's new message: kept in the conversation's history, and in `relay` mode
    copied to every other participant present (a silent observer who writes becomes visible
    first). The channels of the copies."""
    if event.type != "message" or event.message is None:
        tx.execute(
            "UPDATE conversations SET last_active_at = ? WHERE id = ?",
            (now, membership.seat.conversation_id),
        )
        return []
    if not moderation.admits(tx, event, membership, now):  # a community's gate
        tx.execute(
            "UPDATE conversations SET last_active_at = ? WHERE id = ?",
            (now, membership.seat.conversation_id),
        )
        return []
    return relay_message(
        tx, membership.seat, event.message.content, event.id, event.channel.id, now, announcements
    )


def relay_message(
    tx: Tx,
    seat: Seat,
    content: Content,
    event_id: str | None,
    source_channel: str | None,
    now: float,
    announcements: Announcements = DEFAULT_ANNOUNCEMENTS,
) -> list[str]:
    """What `seat` said, kept in the history and copied as the conversation's mode says (a
    message a community's moderation held, when it is released). The channels of the copies."""
    conversation = conversations.load(tx, seat.conversation_id)
    assert conversation is not None
    conversation, author, announced = speak(tx, conversation, seat, announcements, now)
    to = relay_targets(conversation.mode, conversation.seats(), author.id, content.type)
    _id, channels = _relay(tx, conversation, author, to, content, event_id, source_channel, now)
    return announced + channels


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
        " WHERE m.relay_of IN " + writes.in_list(ids) + " ORDER BY p.position, m.created_at, m.id",
        ids,
    ):
        copies[relay_of].append(CopyRecord(message_id, channel_id, participant_ref(person), state))
    return [
        ConversationMessageRecord(
            int(r[0]),
            r[1],
            participant_ref(r[2:6]) if r[2] is not None else None,
            r[6],
            r[7],
            float(r[8]),
            copies[r[1]],
        )
        for r in rows
    ]


def participant_ref(row: Sequence[Any]) -> ParticipantRef:
    """A participant as events name them, from (id, role, display_name, user_id)."""
    return ParticipantRef(id=row[0], role=row[1], display_name=row[2], user_id=row[3])


def copy_participant(tx: Tx, participant_id: str | None) -> ParticipantRef | None:
    """The recipient participant of a relayed copy, for its status events."""
    if participant_id is None:
        return None
    row = tx.one(
        "SELECT id, role, display_name, user_id FROM participants WHERE id = ?", (participant_id,)
    )
    return participant_ref(row) if row is not None else None
