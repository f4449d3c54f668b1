"""What the store hands out and takes in: rows, messages, contacts and events ready to store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.ids import conversation_id
from gateway.schema import Event, EventDraft, ParticipantRef

# The backends an event of a channel goes to (the config's routing), asked inside a transaction.
TargetsFor = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class InboxRow:
    id: int
    channel_id: str
    body: bytes
    received_at: float
    attempts: int
    # The JSON paths of its parts that failed before (a replay reads only those again).
    failed_parts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FailedPartRecord:
    """A part of a webhook that could not be read while its other parts were: kept beside
    its inbox row (`inbox_failed_parts`) until a replay reads it (docs/operations.md)."""

    path: str  # where the part sits in the body: entry[0].changes[0].value.messages[1]
    reason: str  # what is wrong with it, by the path of the field at fault
    part: str  # the part as received, as JSON


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    target: str
    ref: str
    attempts: int
    created_at: float
    body: str | None = None  # the event JSON, for webhooks
    priority: int = 0  # writes.NORMAL, or writes.BULK (a broadcast's send)


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
    api_key: str = ""  # the name of the API key that created it: its owner
    participant: ParticipantRef | None = None  # a relayed copy's recipient participant


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
    # A relayed copy (docs/conversations.md): its group conversation, the conversation
    # message it copies and the participant it goes to. Other messages: the 1:1 conversation.
    conversation_id: str | None = None
    relay_of: str | None = None
    participant_id: str | None = None


@dataclass(frozen=True)
class PreparedEvent:
    """An event ready to store: its JSON is rendered before it reaches the writer thread."""

    event: Event
    dedupe_key: str
    body: str | None  # None for statuses: their message is looked up inside the transaction


@dataclass(frozen=True)
class InboundRecorded:
    """What `Store.record_inbound_batch` did: each inbox row's stored events, and the channels
    it queued sends for (replies the router made: form questions, relayed copies, failovers),
    so that only those channels' senders are woken."""

    events: dict[int, list[Event]]
    send_channels: list[str]


def conversation_of(draft: EventDraft) -> str | None:
    """A person's inbound event belongs to their 1:1 conversation; a status to none."""
    if draft.type == "status" or draft.sender is None:
        return None
    return conversation_id(draft.channel.id, draft.sender.id)


def promote(draft: EventDraft, event_id: str, raw_id: int) -> Event:
    """The event a parsed draft becomes: the gateway's id, its inbox row, its conversation."""
    # The draft is validated already: promote it without validating every field again. Its
    # __dict__ holds exactly its field values (dict(model) walks them one by one, ~3x slower).
    fields: dict[str, Any] = {**draft.__dict__, "id": event_id, "raw_id": raw_id}
    conversation = conversation_of(draft)
    if conversation is not None:
        fields["conversation_id"] = conversation
    if type(draft) is not EventDraft:
        return Event.model_construct(**fields)
    # What model_construct builds, without its walk over every field's aliases and defaults
    # (75k instructions an event, a twelfth of what normalising a webhook costs): the
    # draft's fields are Event's first ones, in its order, and Event's own follow in theirs,
    # None when not given (none has another default, an alias or a factory: test_records.py).
    values = {**draft.__dict__, "id": event_id, "conversation_id": conversation}
    values.update(author=None, raw_id=raw_id, standby=None)
    event = Event.__new__(Event)
    object.__setattr__(event, "__dict__", values)
    object.__setattr__(event, "__pydantic_fields_set__", set(fields))
    object.__setattr__(event, "__pydantic_extra__", None)
    object.__setattr__(event, "__pydantic_private__", None)
    return event


def prepare(event: Event, dedupe_key: str) -> PreparedEvent:
    if event.type == "status":
        return PreparedEvent(event, dedupe_key, None)
    if event.conversation_id is None and (conversation := conversation_of(event)) is not None:
        event = event.model_copy(update={"conversation_id": conversation})
    return PreparedEvent(event, dedupe_key, event.model_dump_json(exclude_none=True))


class StoreUnavailable(Exception):
    """The store cannot be used: it could not be opened (a database that does not answer, a
    path not writable), or it is closed."""


def is_store_error(exc: BaseException) -> bool:
    """Raised by the database under the store (disk, connection, closed), not by code above
    it: the caller may say "retry later" rather than "bug"."""
    if isinstance(exc, StoreUnavailable | sqlite3.Error | OSError):
        return True
    return type(exc).__module__.partition(".")[0] == "psycopg"  # an optional dependency


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""
