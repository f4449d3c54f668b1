"""Users and their channel identities: API bodies and the events about them (docs/users.md).

A user is a person the platform knows; an identity is how one channel instance's provider
names them (a phone number, a Messenger PSID, a LINE userId, a WhatsApp business-scoped id).
An identity is keyed on (channel instance, provider id) and belongs to at most one user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from gateway.router.countries import ISO_COUNTRIES
from gateway.schema.content import Model

USER_EVENT_TYPES = ("user.merged", "identity.linked", "identity.unlinked", "message.failover")
UserEventType = Literal["user.merged", "identity.linked", "identity.unlinked", "message.failover"]

# What a backend may send as a user's own text fields: no control characters (PostgreSQL
# cannot store NUL), bounded so one request cannot make a row of megabytes.
_NO_CONTROLS = r"^[^\x00-\x1f\x7f]+$"


class IdentityRef(Model):
    channel: str = Field(min_length=1, description="Channel instance id from the config.")
    id: str = Field(
        min_length=1,
        max_length=256,
        pattern=_NO_CONTROLS,
        description="The id the provider gave the person (no control characters, at most 256).",
    )


class IdentityView(Model):
    channel: str
    id: str
    phone: str | None = Field(
        default=None,
        description="E.164 number, only when the provider itself sent one for this identity.",
    )
    linked_by: Literal["api", "phone"] = Field(
        description="`api`: a backend linked it; `phone`: identities.link_by_phone did."
    )
    linked_at: datetime


class UserFields(Model):
    """The fields a backend sets on a user; on update, each field given replaces the old
    value (null clears it) and fields left out are kept."""

    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=_NO_CONTROLS,
        description="The backend's own id for this person: unique among the API key's users.",
    )
    name: str | None = Field(default=None, min_length=1, max_length=256, pattern=_NO_CONTROLS)
    locale: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$",
        description="BCP 47 language tag, e.g. `en`, `pt-BR`.",
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Free-form JSON the gateway keeps and returns."
    )
    country: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description=(
            "ISO 3166-1 alpha-2 country (`JP`): picks `routing.channel_order` for sends to"
            " the user. Unset: taken from an identity's phone (docs/sending-to-users.md)."
        ),
    )
    preferred_channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A channel instance id or channel type the user prefers to be reached on.",
    )

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str | None) -> str | None:
        if value is not None and value not in ISO_COUNTRIES:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return value


class CreateUser(UserFields):
    pass


class UpdateUser(UserFields):
    pass


class MergeUsers(Model):
    user_id: str = Field(
        min_length=1,
        max_length=256,
        pattern=_NO_CONTROLS,
        description="The user merged into the one in the path, which survives.",
    )


class UserView(Model):
    id: str
    external_id: str | None = None
    name: str | None = None
    locale: str | None = None
    metadata: dict[str, Any] | None = None
    country: str | None = None
    preferred_channel: str | None = None
    identities: list[IdentityView] = []
    merged_ids: list[str] = Field(
        default=[],
        description=(
            "Users merged into this one. Their ids still answer, with this user: a backend"
            " holding one keeps working, and sees the id to keep instead."
        ),
    )
    created_at: datetime
    updated_at: datetime


class UserMessage(Model):
    id: str
    to: IdentityRef
    state: str
    created_at: datetime


class UserMessages(Model):
    """Messages this API key sent to any of the user's identities, newest first."""

    messages: list[UserMessage]


class IdentityChange(Model):
    channel: str
    id: str
    phone: str | None = None
    linked_by: Literal["api", "phone"] | None = None


class UserMerge(Model):
    merged_id: str = Field(description="The user merged away: its id now answers as `user_id`.")
    merged_external_id: str | None = None


class SentTo(Model):
    channel: str = Field(description="Channel instance id.")
    id: str = Field(description="The user's identity on it.")
    message_id: str = Field(description="The message sent there.")


class Failover(Model):
    """A message to a user went to their next identity (docs/sending-to-users.md)."""

    message_id: str = Field(description="The message as the backend sent it (the first one).")
    failed: SentTo = Field(description="Where it failed (or got no `delivered` in time).")
    next: SentTo = Field(description="Where the same content goes now.")
    reason: str


class UserEvent(Model):
    """What happened to a user: an identity linked or unlinked, or two users merged. It has no
    channel of its own (a merge belongs to none); an identity's channel is in `identity`."""

    id: str
    type: UserEventType
    timestamp: datetime
    user_id: str = Field(description="The user concerned; for a merge, the one that survives.")
    external_id: str | None = Field(default=None, description="That user's external_id.")
    identity: IdentityChange | None = None
    merge: UserMerge | None = None
    failover: Failover | None = None
