"""The socket protocol's frames (docs/web-channel.md), as models: one JSON object a frame.

Client → gateway frames are validated here, so a wrong one is refused with the field at fault
(close code 4003). Frames that are events for the backends (message, postback, form_response,
typing, ack, read) are stored in the inbox as an `InboundBody`, raw first like any webhook, and
`WebAdapter.parse` turns that into the events.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from gateway.schema.content import JsonObject, LocationContent, Name, TextContent

# A client's id for what it sends: the dedupe key of its frame (a resend after a reconnect is
# stored once) and the event's external id, which the backend names in a read action.
ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
EventId = Annotated[int, Field(ge=1)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthFrame(_Frame):
    """The first frame of a connection: nothing else is read before it."""

    type: Literal["auth"]
    token: Annotated[str, Field(max_length=2048)]
    # The last event id this device saw: the log resumes after it (0: from the start).
    last_event_id: Annotated[int, Field(ge=0)] = 0


class MessageFrame(_Frame):
    type: Literal["message"]
    id: ClientId
    content: Annotated[TextContent | LocationContent, Field(discriminator="type")]


class PostbackFrame(_Frame):
    """A tap on a button, quick reply, list row or card action."""

    type: Literal["postback"]
    id: ClientId
    payload: Annotated[str, Field(min_length=1, max_length=1000)]
    title: Annotated[str, Field(max_length=200)] | None = None
    reply_to: Annotated[str, Field(max_length=64)] | None = None  # the tapped message's external id


class FormResponseFrame(_Frame):
    type: Literal["form_response"]
    id: ClientId
    form_id: Name  # the form message's id (its `message_id` in the message frame)
    values: JsonObject


class TypingFrame(_Frame):
    type: Literal["typing"]
    state: Literal["on", "off"]


class AckFrame(_Frame):
    """The device shows the message: it is `delivered`."""

    type: Literal["ack"]
    event_id: EventId


class ReadFrame(_Frame):
    """The user has seen every message up to this one: they are `read`."""

    type: Literal["read"]
    event_id: EventId


ClientFrame = Annotated[
    AuthFrame
    | MessageFrame
    | PostbackFrame
    | FormResponseFrame
    | TypingFrame
    | AckFrame
    | ReadFrame,
    Field(discriminator="type"),
]
CLIENT_FRAME: TypeAdapter[Any] = TypeAdapter(ClientFrame)
UserFrame = MessageFrame | PostbackFrame | FormResponseFrame | TypingFrame


def read_frame(text: str | bytes) -> AuthFrame | UserFrame | AckFrame | ReadFrame:
    """One client frame; ValueError naming the field at fault."""
    try:
        frame: AuthFrame | UserFrame | AckFrame | ReadFrame = CLIENT_FRAME.validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "frame"
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            where = f"{where}.type" if first["loc"] else "type"
        raise ValueError(f"{where}: {first['msg']}") from None
    return frame


# --- the inbox body: what the gateway stores for the adapter to parse -----------------------


# Any date a datetime holds comfortably (2100-01-01): a stored item's `at` past it is refused.
LAST_DATE = 4_102_444_800


class StatusNote(_Frame):
    """A delivery state the gateway observed for one log entry (ack, read, offline timeout)."""

    external_id: Annotated[str, Field(min_length=1, max_length=64)]
    message_id: Annotated[str, Field(min_length=1, max_length=64)]
    state: Literal["delivered", "read", "failed"]
    error_code: str | None = None
    error_title: str | None = None


class InboundBody(_Frame):
    """One stored inbound item of the web channel: from a verified connection of `user`, or a
    status the gateway itself decided (`status`). `at` is when it happened, epoch seconds."""

    user: Annotated[str, Field(min_length=1, max_length=128)]
    at: Annotated[float, Field(ge=0, le=LAST_DATE)]
    frame: (
        Annotated[
            MessageFrame | PostbackFrame | FormResponseFrame | TypingFrame,
            Field(discriminator="type"),
        ]
        | None
    ) = None
    status: StatusNote | None = None

    @model_validator(mode="after")
    def _one_of_frame_or_status(self) -> InboundBody:
        if (self.frame is None) == (self.status is None):
            raise ValueError("exactly one of frame and status is required")
        return self

    def dedupe_key(self) -> str:
        if self.status is not None:
            return f"{self.status.state}:{self.status.external_id}"
        frame = self.frame
        if isinstance(frame, TypingFrame) or frame is None:
            return f"typing:{self.user}:{self.at!r}"  # ephemeral: never the same twice
        return f"{frame.type}:{self.user}:{frame.id}"
