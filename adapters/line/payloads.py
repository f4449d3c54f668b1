"""LINE Messaging API webhook payloads, as LINE documents them.

Request body: https://developers.line.biz/en/reference/messaging-api/#request-body
Events:       https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects

    {"destination": "U…", "events": [{"type": "message", "mode": "active",
      "timestamp": 1462629479859, "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZS",
      "deliveryContext": {"isRedelivery": false}, "replyToken": "nHuyWiB7…",
      "source": {"type": "user", "userId": "U4af49806…"},
      "message": {"id": "444573844083572737", "type": "text", "text": "Hello"}}]}

Every part is a TypedDict validated by a pydantic TypeAdapter: strict (a number is no string),
with pydantic's error paths, and fields it does not name left out (`extra="ignore"`): LINE adds
fields without notice, and the raw body (kept in the inbox) holds them all. A plain dict costs a
third of a model instance, and an event is three to five parts. Objects passed on to
`channel_data` as LINE sent them (emojis, mentionees, postback params) are typed as objects, not
modelled field by field.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

_STRICT = ConfigDict(extra="ignore", strict=True)
# A TypedDict's config is its own (a subclass does not inherit it): each class says it.
strict = with_config(_STRICT)
NonEmpty = Annotated[str, Field(min_length=1)]


class Webhook(BaseModel):
    """The request body: https://developers.line.biz/en/reference/messaging-api/#request-body

    `events` is read one event at a time (`parse.parse_event`), so it is not modelled here;
    this model is consulted only to name what is wrong with a `destination` not a string."""

    model_config = _STRICT

    destination: str | None = None  # the bot's user id


@strict
class Source(TypedDict):
    """https://developers.line.biz/en/reference/messaging-api/#source-user (and -group, -room)"""

    type: str  # "user", "group" or "room"
    userId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    roomId: NotRequired[str | None]


@strict
class DeliveryContext(TypedDict):
    """https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects"""

    isRedelivery: bool


@strict
class Event(TypedDict):
    """The properties every webhook event has; an event of a type we do not read is one of
    these: https://developers.line.biz/en/reference/messaging-api/#common-properties"""

    type: NonEmpty
    mode: NotRequired[str | None]  # "active" or "standby"
    timestamp: int  # epoch milliseconds
    source: NotRequired[Source | None]
    webhookEventId: NotRequired[str | None]
    deliveryContext: NotRequired[DeliveryContext | None]
    replyToken: NotRequired[str | None]


# --- message events: https://developers.line.biz/en/reference/messaging-api/#message-event


@strict
class Message(TypedDict):
    """A message object's common properties (also a message of a type we do not read)."""

    id: NonEmpty
    type: NonEmpty
    quoteToken: NotRequired[str | None]
    markAsReadToken: NotRequired[str | None]
    quotedMessageId: NotRequired[str | None]


@strict
class Mention(TypedDict):
    """https://developers.line.biz/en/reference/messaging-api/#wh-text (`mention`)"""

    mentionees: NotRequired[list[dict[str, Any]] | None]


@strict
class TextMessage(Message):
    """https://developers.line.biz/en/reference/messaging-api/#wh-text"""

    text: NonEmpty
    emojis: NotRequired[list[dict[str, Any]] | None]
    mention: NotRequired[Mention | None]


@strict
class ContentProvider(TypedDict):
    """https://developers.line.biz/en/reference/messaging-api/#wh-image (`contentProvider`)"""

    type: str  # "line" (fetch the bytes by message id) or "external"
    originalContentUrl: NotRequired[str | None]
    previewImageUrl: NotRequired[str | None]


@strict
class ImageSet(TypedDict):
    """Images sent together: https://developers.line.biz/en/reference/messaging-api/#wh-image"""

    id: str
    index: NotRequired[int | None]
    total: NotRequired[int | None]


@strict
class MediaMessage(Message):
    """Image, video and audio: https://developers.line.biz/en/reference/messaging-api/#wh-image
    https://developers.line.biz/en/reference/messaging-api/#wh-video
    https://developers.line.biz/en/reference/messaging-api/#wh-audio"""

    contentProvider: NotRequired[ContentProvider | None]
    duration: NotRequired[int | None]  # video and audio, in ms
    imageSet: NotRequired[ImageSet | None]  # image


@strict
class FileMessage(Message):
    """https://developers.line.biz/en/reference/messaging-api/#wh-file"""

    fileName: NotRequired[str | None]
    fileSize: NotRequired[int | None]


@strict
class LocationMessage(Message):
    """https://developers.line.biz/en/reference/messaging-api/#wh-location"""

    title: NotRequired[str | None]
    address: NotRequired[str | None]
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]


@strict
class StickerMessage(Message):
    """https://developers.line.biz/en/reference/messaging-api/#wh-sticker"""

    packageId: str
    stickerId: str
    stickerResourceType: NotRequired[str | None]
    keywords: NotRequired[list[str] | None]
    text: NotRequired[str | None]


# A message event per message type: the same common properties, then `message` (a TypedDict
# cannot narrow a field of its base, so each names its own).
@strict
class MessageEvent(Event):
    message: Message


@strict
class TextEvent(Event):
    message: TextMessage


@strict
class MediaEvent(Event):
    message: MediaMessage


@strict
class FileEvent(Event):
    message: FileMessage


@strict
class LocationEvent(Event):
    message: LocationMessage


@strict
class StickerEvent(Event):
    message: StickerMessage


# --- other events


@strict
class PostbackContent(TypedDict):
    """https://developers.line.biz/en/reference/messaging-api/#postback-event"""

    data: str
    params: NotRequired[dict[str, Any] | None]  # date/time picker and rich menu switch values


@strict
class PostbackEvent(Event):
    postback: PostbackContent


@strict
class Follow(TypedDict):
    isUnblocked: NotRequired[bool | None]


@strict
class FollowEvent(Event):
    """https://developers.line.biz/en/reference/messaging-api/#follow-event"""

    follow: NotRequired[Follow | None]


@strict
class Member(TypedDict):
    type: NotRequired[str | None]
    userId: NotRequired[str | None]


@strict
class Members(TypedDict):
    members: list[Member]


@strict
class MemberJoinedEvent(Event):
    """https://developers.line.biz/en/reference/messaging-api/#member-joined-event"""

    joined: Members


@strict
class MemberLeftEvent(Event):
    """https://developers.line.biz/en/reference/messaging-api/#member-left-event"""

    left: Members


@strict
class Unsend(TypedDict):
    messageId: str


@strict
class UnsendEvent(Event):
    """https://developers.line.biz/en/reference/messaging-api/#unsend-event"""

    unsend: Unsend


MESSAGE_EVENT = TypeAdapter(MessageEvent)
EVENT = TypeAdapter(Event)
_MEDIA_EVENT = TypeAdapter(MediaEvent)

# The reader of each message type we read; any other type is read as `MessageEvent`.
MESSAGE_EVENTS: dict[str, TypeAdapter[Any]] = {
    "text": TypeAdapter(TextEvent),
    "image": _MEDIA_EVENT,
    "video": _MEDIA_EVENT,
    "audio": _MEDIA_EVENT,
    "file": TypeAdapter(FileEvent),
    "location": TypeAdapter(LocationEvent),
    "sticker": TypeAdapter(StickerEvent),
}

# The reader of each event type we read; unfollow, join, leave and any other are `Event`.
EVENTS: dict[str, TypeAdapter[Any]] = {
    "postback": TypeAdapter(PostbackEvent),
    "follow": TypeAdapter(FollowEvent),
    "memberJoined": TypeAdapter(MemberJoinedEvent),
    "memberLeft": TypeAdapter(MemberLeftEvent),
    "unsend": TypeAdapter(UnsendEvent),
}


def event_model(event: dict[str, Any]) -> TypeAdapter[Any]:
    """The TypeAdapter that reads `event` (a raw member of `events[]`), by its type."""
    kind = event.get("type")
    if kind == "message":
        message = event.get("message")
        kind = message.get("type") if isinstance(message, dict) else None
        return MESSAGE_EVENTS.get(kind, MESSAGE_EVENT) if isinstance(kind, str) else MESSAGE_EVENT
    return EVENTS.get(kind, EVENT) if isinstance(kind, str) else EVENT
