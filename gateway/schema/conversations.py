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
)
ConversationEventType = Literal[
    "conversation.created", "participant.joined", "participant.left", "conversation.closed"
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
    identity: IdentityRef
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
    created_at: datetime
    closed_at: datetime | None = None


class ConversationPage(Model):
    """A page of the key's conversations, newest first (GET /v1/conversations)."""

    conversations: list[ConversationView]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page; none at the end."
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
