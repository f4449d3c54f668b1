"""Backend API request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from gateway.schema.content import Content, JsonObject, Model, TemplateRef
from gateway.schema.events import DeliveryState, EventError
from gateway.schema.limits import Bound, ContentBound


class Recipient(Model):
    # A channel id is at most 63 characters (ChannelConfig.id).
    channel: Annotated[str, Bound(64)] = Field(
        min_length=1, description="Channel instance id from the config."
    )
    # No provider id holds a control character, and PostgreSQL cannot store NUL: refused here
    # (422) rather than stored altered and sent to nobody.
    id: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The user's id on that channel (no control characters, at most 256).",
    )


class UserRecipient(Model):
    user: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description=(
            "A user of this API key (`usr_...`): the gateway picks which of their identities"
            " to send to, and fails over to the next (docs/sending-to-users.md)."
        ),
    )


def _recipient_kind(value: Any) -> str:
    """`{"user": ...}` names a user; anything else an identity (and is checked as one)."""
    if isinstance(value, dict):
        return "to:user" if "user" in value else "to:identity"
    return "to:user" if isinstance(value, UserRecipient) else "to:identity"


AnyRecipient = Annotated[
    Annotated[Recipient, Tag("to:identity")] | Annotated[UserRecipient, Tag("to:user")],
    Discriminator(_recipient_kind),
]


class SendOptions(Model):
    messaging_tag: str | None = Field(
        default=None,
        pattern=r"^[A-Z_]{1,64}$",
        description=(
            "Messenger message tag (e.g. CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE,"
            " ACCOUNT_UPDATE, HUMAN_AGENT) for a send outside the 24-hour window."
        ),
    )

    template: TemplateRef | None = Field(
        default=None,
        description=(
            "WhatsApp template to send instead when the 24-hour customer service window is"
            " closed (free-form content is refused there)."
        ),
    )

    failover: bool | None = Field(
        default=None,
        description=(
            "To a user: when the send fails, or is not delivered in time, send the same"
            " content to their next identity. Unset: the config's routing.failover."
        ),
    )
    adaptation: Literal["strict", "lenient"] | None = Field(
        default=None,
        description=(
            "`strict`: refuse (422) rather than downgrade the content for the channel;"
            " `lenient` (the default): downgrade, and record each downgrade in the history."
        ),
    )


class SendMessage(Model):
    to: AnyRecipient
    content: Annotated[Content, ContentBound()]
    options: SendOptions | None = None
    metadata: JsonObject | None = Field(
        default=None, description="Kept with the message and shown with it; never sent."
    )


class MessageAccepted(Model):
    id: str
    status: DeliveryState


class HistoryEntry(Model):
    at: datetime
    state: str
    detail: str | None = None


class MessageView(Model):
    id: str
    to: Recipient
    content: Content
    state: DeliveryState
    external_ids: list[str] = []
    error: EventError | None = None
    conversation_id: str | None = None
    options: SendOptions | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime
    history: list[HistoryEntry]


class FieldProblem(Model):
    field: str
    message: str


class ErrorBody(Model):
    error: str
    message: str
    problems: list[FieldProblem] = []
