"""Communities: their settings (the config file's `communities` and the API's bodies) and
what the API answers about them (docs/communities.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from gateway.schema.content import Content, Model
from gateway.schema.conversations import ParticipantRef
from gateway.schema.users import IdentityRef

# Printable, one line: shown to people and matched against what they type.
_LINE = r"^[^\x00-\x1f\x7f]+$"
_LANGUAGE = r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$"


def _not_an_opt_out(text: str) -> str:
    """Opt-out and opt-in words (STOP, START, ...) stay the channels' own and global: a
    community keyword never takes one (docs/communities.md, "Opting out")."""
    from gateway.router.communities import phrase, reserved_words  # adapters import schema

    said = phrase(text)
    if not said:
        raise ValueError("must not be blank")
    if said in reserved_words() or said.split(" ")[0] in reserved_words():
        raise ValueError(
            f"{said!r} starts with an opt-out or opt-in keyword, which stays global: choose"
            " another word"
        )
    return text


Keyword = Annotated[
    str, Field(min_length=1, max_length=64, pattern=_LINE), AfterValidator(_not_an_opt_out)
]
Language = Annotated[str, Field(pattern=_LANGUAGE)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]


class KeywordSet(Model):
    """The keywords of one language. `name` is followed by the name chosen: `NAME Kenji`."""

    join: list[Keyword] = Field(default=[], max_length=10)
    leave: list[Keyword] = Field(default=[], max_length=10)
    name: list[Keyword] = Field(default=[], max_length=10)


class ModerationSettings(Model):
    """A webhook asked about each member's message before it is relayed."""

    url: str = Field(pattern=r"^https?://", max_length=2000)
    secret: SecretStr = Field(
        description="Signs each request like the backend webhooks (docs/webhooks.md).",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    on_timeout: Literal["allow", "hold"] = Field(
        default="hold",
        description="What is done with a message when the webhook does not answer in time,"
        " fails, or answers something else than allow, hold or reject.",
    )

    @model_validator(mode="after")
    def _long_secret(self) -> ModerationSettings:
        if len(self.secret.get_secret_value()) < 16:
            raise ValueError("secret must be at least 16 characters")
        return self


class CommunitySettings(Model):
    """What a community is: in the config file (with an `id`) or a POST /v1/communities body."""

    name: str = Field(min_length=1, max_length=128, pattern=_LINE)
    keywords: dict[Language, KeywordSet] = Field(
        min_length=1,
        description="Per language (`en`, `de`): the keywords that join, leave and choose a"
        " name, matched case-insensitively with the spaces trimmed.",
    )
    welcome: dict[Language, Text] = Field(
        default={}, description="Sent on joining, in the language of the keyword used."
    )
    rules: dict[Language, Text] = Field(default={}, description="Sent after the welcome.")
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, le=600, description="Messages a member may send a minute."
    )
    moderation: ModerationSettings | None = None

    @model_validator(mode="after")
    def _joinable(self) -> CommunitySettings:
        if not any(k.join for k in self.keywords.values()):
            raise ValueError("keywords: give at least one join keyword")
        return self

    def stored(self) -> dict[str, Any]:
        """As kept in the store: the moderation secret in clear (the API never shows it)."""
        data = self.model_dump(mode="json", exclude={"moderation"})
        if self.moderation is not None:
            data["moderation"] = self.moderation.model_dump(mode="json") | {
                "secret": self.moderation.secret.get_secret_value()
            }
        return data


class ModerationView(Model):
    url: str
    timeout_seconds: float
    on_timeout: Literal["allow", "hold"]


class CommunityView(Model):
    id: str
    name: str
    conversation_id: str = Field(description="Its relay conversation (docs/conversations.md).")
    keywords: dict[str, KeywordSet]
    welcome: dict[str, str] = {}
    rules: dict[str, str] = {}
    rate_limit_per_minute: int | None = None
    moderation: ModerationView | None = None
    configured: bool = Field(description="Made by the config file: change it there.")
    members: int = Field(description="Members present now.")
    created_at: datetime
    updated_at: datetime


class CommunityPage(Model):
    communities: list[CommunityView]


class NewMember(Model):
    user_id: str | None = Field(default=None, min_length=1, max_length=256, pattern=_LINE)
    identity: IdentityRef | None = None
    display_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=_LINE,
        description="Shown to the other members; left out, one is given (`Member 4821`).",
    )
    language: Language | None = Field(
        default=None, description="Of the welcome and rules sent; left out, the first given."
    )


class MemberView(Model):
    id: str = Field(description="Their participant id in the community's conversation.")
    display_name: str
    identity: IdentityRef
    user_id: str | None = None
    language: str | None = None
    joined_at: datetime
    left_at: datetime | None = None
    muted_until: datetime | None = None


class MemberPage(Model):
    members: list[MemberView]


class MuteRequest(Model):
    seconds: float = Field(gt=0, le=90 * 86400, description="How long; 90 days at most.")
    reason: str | None = Field(default=None, max_length=500, pattern=_LINE)


class ModerationAction(Model):
    """A ban, a removal or a rejection: the reason is told to the member."""

    reason: str | None = Field(default=None, max_length=500, pattern=_LINE)


class HeldMessageView(Model):
    id: str
    author: ParticipantRef
    content: Content
    state: Literal["pending", "allowed", "held", "relayed", "rejected"] = Field(
        description="`allowed`: to be relayed once the messages written before it are decided."
    )
    reason: str | None = None
    decided_by: Literal["webhook", "timeout", "api"] | None = None
    created_at: datetime
    decided_at: datetime | None = None


class HeldMessagePage(Model):
    messages: list[HeldMessageView]


class ModerationRequest(Model):
    """What the gateway posts to a community's moderation webhook: no address of anyone."""

    type: Literal["community.moderation"] = "community.moderation"
    id: str = Field(description="The same on a retry after a restart: answer it the same.")
    community: dict[str, str]
    author: ParticipantRef
    content: Content
    timestamp: datetime
