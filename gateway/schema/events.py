"""Inbound events: everything the gateway tells a backend.

Adapters produce `EventDraft`s (pure facts from the provider payload); the normaliser turns
each into an `Event` by adding what only the gateway knows (its id, the conversation, the
inbox row it came from, the gateway message a status belongs to).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from gateway.schema.broadcasts import BroadcastEvent
from gateway.schema.content import Content, Model
from gateway.schema.conversations import ConversationEvent, ParticipantRef
from gateway.schema.users import UserEvent

EventType = Literal[
    "message",
    "postback",
    "status",
    "reaction",
    "subscription",
    "referral",
    "system",
    "unsupported",
]

DeliveryState = Literal["queued", "sent", "delivered", "read", "failed"]

# A status may only move forwards: a late "delivered" never undoes "read".
STATE_RANK: dict[str, int] = {"queued": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}


class ChannelRef(Model):
    id: str
    type: str


class Party(Model):
    """A person or business on a channel, as the provider identified them.

    `id` is the address the gateway keys the person on and a backend sends to. A channel that
    knows a person by several ids keeps the long-standing one as `id` so that it stays stable
    (WhatsApp: the phone number / wa_id when Meta sends one, else the business-scoped user id)
    and carries the others beside it. `phone` is set only when the provider gave a phone number.
    """

    id: str
    name: str | None = None
    phone: str | None = Field(
        default=None, description="E.164, only when the provider gave a phone number."
    )
    user_id: str | None = Field(
        default=None,
        description=(
            "A provider's user id that is not a phone number (WhatsApp's business-scoped user id,"
            " `US.13491208655302741918`); a backend can send to it as `to.id`."
        ),
    )
    username: str | None = Field(
        default=None,
        description="The user's chosen handle (WhatsApp usernames); for display, it may change.",
    )


class EventError(Model):
    code: str
    title: str | None = None
    detail: str | None = None
    retryable: bool = False


class MessageBody(Model):
    content: Content
    reply_to: str | None = Field(
        default=None, description="Provider id of the message this one quotes or answers."
    )


class Postback(Model):
    payload: str
    title: str | None = None
    reply_to: str | None = None


class Status(Model):
    message_id: str | None = Field(
        default=None,
        description=(
            "Gateway message id. Absent only on a status for a message the gateway did not send"
            " (sent from another tool on the same number), which is held back"
            " `delivery.status_hold_seconds` first in case its send is still being recorded."
        ),
    )
    external_id: str | None = Field(
        default=None, description="The provider's message id (absent if the send never reached it)."
    )
    state: DeliveryState
    error: EventError | None = None
    participant: ParticipantRef | None = Field(
        default=None,
        description="For a relayed copy of a conversation message: the participant it went to.",
    )
    watermark: datetime | None = Field(
        default=None,
        description=(
            "Set by channels that confirm by time (Messenger): every message sent to this"
            " recipient up to the watermark reached `state`; the gateway emits one status per"
            " message it covers."
        ),
    )


class Reaction(Model):
    emoji: str | None = Field(default=None, description="None when the reaction was removed.")
    message_external_id: str


class Subscription(Model):
    state: Literal["subscribed", "unsubscribed", "help"] = Field(
        description="`help` is an SMS HELP/INFO request: the subscription is unchanged."
    )
    keyword: str | None = Field(
        default=None, description="The word that changed it (STOP, START …), when there is one."
    )


class Referral(Model):
    source: str | None = None
    source_type: str | None = None
    source_id: str | None = None
    source_url: str | None = None
    ref: str | None = None
    headline: str | None = None
    body: str | None = None
    media_url: str | None = None
    click_id: str | None = None


class System(Model):
    kind: str
    text: str | None = None
    new_id: str | None = None


class Unsupported(Model):
    provider_type: str | None = None
    reason: str


class EventDraft(Model):
    """An event as an adapter parsed it, before the gateway adds its own ids."""

    type: EventType
    channel: ChannelRef
    external_id: str | None = None
    timestamp: datetime
    sender: Party | None = None
    recipient: Party | None = None
    message: MessageBody | None = None
    postback: Postback | None = None
    status: Status | None = None
    reaction: Reaction | None = None
    subscription: Subscription | None = None
    referral: Referral | None = None
    system: System | None = None
    unsupported: Unsupported | None = None
    channel_data: dict[str, Any] | None = Field(
        default=None, description="Provider-specific extras that have no place in the schema."
    )


class Event(EventDraft):
    id: str
    conversation_id: str | None = Field(
        default=None,
        description=(
            "The person's 1:1 conversation, or the group conversation (docs/conversations.md)"
            " they wrote in as a participant."
        ),
    )
    author: ParticipantRef | None = Field(
        default=None, description="In a group conversation: the participant who wrote."
    )
    raw_id: int | None = Field(default=None, description="Inbox row the event was parsed from.")
    standby: bool | None = Field(
        default=None,
        description=(
            "True on the copy a backend not in control of the group conversation gets"
            " (docs/conversations.md, control): for its information, not to answer."
        ),
    )


class EventBatch(Model):
    """The body of every webhook the gateway posts to a backend: events of channels, events
    about users (`user.merged`, `identity.linked`, `identity.unlinked`) and about
    conversations (`conversation.created`, `participant.joined`, `participant.left`,
    `conversation.closed`) and broadcasts (`broadcast.completed`)."""

    events: list[Event | UserEvent | ConversationEvent | BroadcastEvent]
