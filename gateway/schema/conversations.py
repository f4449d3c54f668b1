"""Group conversations: API bodies and the events about them (docs/conversations.md).

A conversation holds participants: each a user or a bare channel identity, with a role (a free
label: `customer`, `courier`, `agent`...), a display name, and the identity the gateway
delivers to. In `relay` mode each participant's message reaches the others on their own
channels, attributed; in `hub` mode only the backend gets it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from gateway.schema.content import Content, Model
from gateway.schema.users import IdentityRef

CONVERSATION_EVENT_TYPES = (
    "conversation.created",
    "participant.joined",
    "participant.left",
    "conversation.closed",
    "control.passed",
)
ConversationEventType = Literal[
    "conversation.created",
    "participant.joined",
    "participant.left",
    "conversation.closed",
    "control.passed",
]
ConversationMode = Literal["relay", "hub"]

# Shown to other participants in front of a relayed message: printable, one line, short.
_LABEL = r"^[^\x00-\x1f\x7f]+$"


class ParticipantRef(Model):
    """A participant as events and history name them: no address of theirs."""

    id: str
    role: str
    display_name: str
    user_id: str | None = None
    observer: bool | None = Field(
        default=None,
        description=(
            "True for a silent observer (participant.joined): they get copies of everything and"
            " are announced to no one until they speak."
        ),
    )


class NewParticipant(Model):
    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=_LABEL,
        description="A user of this API key (docs/users.md); or give only `identity`.",
    )
    identity: IdentityRef | None = Field(
        default=None,
        description=(
            "The identity to deliver on. For a user it must be one of theirs; left out, the"
            " user's first linked identity."
        ),
    )
    role: str = Field(min_length=1, max_length=64, pattern=_LABEL)
    display_name: str = Field(min_length=1, max_length=128, pattern=_LABEL)
    observer: bool = Field(
        default=False,
        description=(
            "Join silently: receive copies of everything, announced to no one; speaking makes"
            " them visible (the others are told they joined, once, before their first message)."
        ),
    )
    api_only: bool = Field(
        default=False,
        description=(
            "Reached through the API only (an agent at a console): no channel identity, no"
            " copies sent; the backend reads history and events. Give no `identity`."
        ),
    )


class CreateConversation(Model):
    mode: ConversationMode = "relay"
    participants: list[NewParticipant] = Field(default=[], max_length=100)
    metadata: dict[str, Any] | None = Field(
        default=None, description="Free-form JSON the gateway keeps and returns (an order id)."
    )


class UpdateConversation(Model):
    """PATCH: a field given replaces the old value; null clears it; a field left out stays."""

    metadata: dict[str, Any] | None = Field(
        default=None, description="Replaces the conversation's metadata whole (null clears it)."
    )


class ParticipantView(ParticipantRef):
    identity: IdentityRef | None = Field(
        description="Where copies go; null for a participant reached through the API only."
    )
    api_only: bool = False
    joined_at: datetime
    left_at: datetime | None = None


class ConversationView(Model):
    id: str
    mode: ConversationMode
    state: Literal["open", "closed"]
    metadata: dict[str, Any] | None = None
    participants: list[ParticipantView] = Field(
        default=[], description="Everyone who joined, those who left with `left_at`."
    )
    controller: str | None = Field(
        default=None,
        description=(
            "The backend in control: it gets this conversation's `message` and `postback`"
            " events, the other subscribed backends `standby` copies. Null: every subscribed"
            " backend gets them as usual."
        ),
    )
    created_at: datetime
    closed_at: datetime | None = None


class ConversationPage(Model):
    """A page of the key's conversations, newest first (GET /v1/conversations)."""

    conversations: list[ConversationView]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page; none at the end."
    )


ControlAction = Literal["pass", "take", "release"]


class ControlRequest(Model):
    """A change of the backend in control, named after Messenger's handover protocol
    (pass_thread_control, take_thread_control, release_thread_control)."""

    action: ControlAction
    backend: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description=(
            "`pass`: the backend control goes to (required). `take`: the backend taking it"
            " (left out: conversations.default_controller). `release`: the backend giving it"
            " up, which must hold it (left out: whoever holds it); control goes back to"
            " conversations.default_controller, or to no one."
        ),
    )


class ControlChange(Model):
    """What a control.passed event says: who held control, who holds it now."""

    action: ControlAction
    previous: str | None = Field(
        default=None, description="The backend that held control; absent: none did."
    )
    controller: str | None = Field(
        default=None, description="The backend in control now; absent: none is."
    )


class PostToConversation(Model):
    content: Content
    author: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=_LABEL,
        description=(
            "The participant speaking: attributed to them, and not sent back to them. Left out,"
            " the business speaks (no attribution)."
        ),
    )
    to: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Only these participants (ids); left out, everyone present but the author.",
    )
    metadata: dict[str, Any] | None = None


class CopyView(Model):
    """One relayed copy of a conversation message: an outbound message to one participant."""

    message_id: str = Field(description="GET /v1/messages/{id} shows its full history.")
    participant: ParticipantRef
    state: str = Field(description="queued, sent, delivered, read or failed.")


class PostedToConversation(Model):
    id: str = Field(description="The conversation message's id.")
    copies: list[CopyView]


class ConversationMessage(Model):
    id: str
    author: ParticipantRef | None = Field(
        default=None, description="None when the business (the backend) spoke."
    )
    content: Content
    event_id: str | None = Field(
        default=None, description="The inbound event it came as, when a participant wrote."
    )
    created_at: datetime
    copies: list[CopyView] = []


class ConversationMessages(Model):
    """A page of a conversation's messages, newest first."""

    messages: list[ConversationMessage]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page; none at the end."
    )


class ConversationEvent(Model):
    """What happened to a conversation. It has no channel of its own."""

    id: str
    type: ConversationEventType
    timestamp: datetime
    conversation_id: str
    mode: ConversationMode
    metadata: dict[str, Any] | None = None
    participant: ParticipantRef | None = Field(
        default=None, description="Who joined or left (participant.* events)."
    )
    participants: list[ParticipantRef] | None = Field(
        default=None, description="Everyone present at creation (conversation.created)."
    )
    control: ControlChange | None = Field(
        default=None, description="The change of control (control.passed)."
    )
