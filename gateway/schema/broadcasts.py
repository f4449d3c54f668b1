"""Audiences ("groups" in the API) and broadcasts: API bodies and the event they end with
(docs/broadcasts.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.schema.content import Content, JsonObject, Model, TemplateRef
from gateway.schema.limits import Bound, ContentBound
from gateway.schema.users import IdentityRef

BROADCAST_EVENT_TYPES = ("broadcast.completed",)
# Inline members of one broadcast request at most; larger audiences go through a group's
# import (POST /v1/groups/{id}/members/import, streamed).
MAX_INLINE_MEMBERS = 10_000
MAX_MEMBERS_PER_REQUEST = 1_000

MemberState = Literal[
    "queued", "sent", "delivered", "read", "failed", "skipped", "cancelled", "expired"
]


class Member(Model):
    """A user (`user_id`: reached on their preferred identity) or a bare identity."""

    user_id: str | None = Field(default=None, min_length=1, max_length=256)
    identity: IdentityRef | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Member:
        if (self.user_id is None) == (self.identity is None):
            raise ValueError("give either user_id or identity")
        return self


class CreateGroup(Model):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    members: Annotated[list[Member], Bound(MAX_MEMBERS_PER_REQUEST)] = []


class AddMembers(Model):
    members: Annotated[list[Member], Bound(MAX_MEMBERS_PER_REQUEST)] = Field(min_length=1)


class GroupView(Model):
    id: str
    name: str | None = None
    size: int
    created_at: datetime


class MemberView(Model):
    user_id: str | None = None
    identity: IdentityRef | None = None
    added_at: datetime


class MemberPage(Model):
    members: list[MemberView]
    next_cursor: str | None = None


class MembersAdded(Model):
    added: int = Field(description="Members new to the group.")
    already: int = Field(description="Members the group had already.")


class RowProblem(Model):
    line: int
    message: str


class ImportResult(Model):
    added: int
    already: int
    refused: list[RowProblem] = Field(
        description="Rows not imported, by line number (the first line is 1): the first 1,000."
    )
    refused_total: int = Field(description="Rows not imported, all of them.")


class BroadcastOptions(Model):
    schedule_at: datetime | None = Field(
        default=None, description="Send from this time on (default: at once)."
    )
    ttl: int | None = Field(
        default=None,
        gt=0,
        le=30 * 86400,
        description="Seconds after schedule_at (or acceptance) past which nothing more is sent.",
    )
    template: dict[str, TemplateRef] | None = Field(
        default=None,
        description=(
            "Per channel id, the template sent to members whose window there is closed"
            " (WhatsApp's 24 hours); it must be listed in that channel's `templates` config."
        ),
    )


class CreateBroadcast(Model):
    group_id: str | None = Field(default=None, min_length=1, max_length=256)
    members: Annotated[list[Member], Bound(MAX_INLINE_MEMBERS)] | None = None
    content: Annotated[Content, ContentBound()]
    options: BroadcastOptions | None = None
    metadata: JsonObject | None = None

    @model_validator(mode="after")
    def _one_audience(self) -> CreateBroadcast:
        if (self.group_id is None) == (self.members is None):
            raise ValueError("give either group_id or members")
        return self


class BroadcastCounts(Model):
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    expired: int = 0


class BroadcastMemberView(Model):
    user_id: str | None = None
    identity: IdentityRef | None = Field(
        default=None, description="The identity the copy went to (or the member's, if skipped)."
    )
    state: MemberState
    reason: str | None = Field(default=None, description="Why the member was skipped.")
    message_id: str | None = None


class BroadcastView(Model):
    id: str
    group_id: str | None = None
    state: Literal["accepted", "sending", "completed", "cancelled"]
    audience_size: int
    expanded: int = Field(description="Members handled so far (queued or skipped).")
    counts: BroadcastCounts
    members: list[BroadcastMemberView] = []
    next_cursor: str | None = None
    schedule_at: datetime
    expires_at: datetime | None = None
    created_at: datetime
    finished_at: datetime | None = None


class BroadcastAccepted(Model):
    id: str
    state: Literal["accepted"] = "accepted"
    audience_size: int


class BroadcastEvent(Model):
    """A broadcast ended: every member's copy left (or failed), or it was cancelled."""

    id: str
    type: Literal["broadcast.completed"]
    timestamp: datetime
    broadcast_id: str
    cancelled: bool = False
    counts: BroadcastCounts
