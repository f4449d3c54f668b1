"""LINE Messaging API webhook payloads, as LINE documents them.

Request body: https://developers.line.biz/en/reference/messaging-api/#request-body
Events:       https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects

    {"destination": "U…", "events": [{"type": "message", "mode": "active",
      "timestamp": 1462629479859, "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZS",
      "deliveryContext": {"isRedelivery": false}, "replyToken": "nHuyWiB7…",
      "source": {"type": "user", "userId": "U4af49806…"},
      "message": {"id": "444573844083572737", "type": "text", "text": "Hello"}}]}

Models are strict (a number is no string) and ignore fields they do not name (`extra="ignore"`):
LINE adds fields without notice, and the raw body (kept in the inbox) holds them all. Objects passed on to `channel_data` as LINE sent them
(emojis, mentionees, postback params) are typed as objects, not modelled field by field.
"""

from __future__ import annotations

from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Webhook(Payload):
    """The request body: https://developers.line.biz/en/reference/messaging-api/#request-body

    `events` is read one event at a time (`parse.parse_event`), so it is not modelled here."""

    destination: str | None = None  # the bot's user id


# Source and DeliveryContext are on every event: validated into TypedDicts (still typed and
# strict, with pydantic's error paths), a plain dict costs a third of a model instance.
@with_config(ConfigDict(extra="ignore", strict=True))
class Source(TypedDict):
    """https://developers.line.biz/en/reference/messaging-api/#source-user (and -group, -room)"""

    type: str  # "user", "group" or "room"
    userId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    roomId: NotRequired[str | None]


@with_config(ConfigDict(extra="ignore", strict=True))
class DeliveryContext(TypedDict):
    """https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects"""

    isRedelivery: bool


class Event(Payload):
    """The properties every webhook event has; an event of a type we do not read is one of
    these: https://developers.line.biz/en/reference/messaging-api/#common-properties"""

    type: str = Field(min_length=1)
    mode: str | None = None  # "active" or "standby"
    timestamp: int  # epoch milliseconds
    source: Source | None = None
    webhookEventId: str | None = None
    deliveryContext: DeliveryContext | None = None
    replyToken: str | None = None


# --- message events: https://developers.line.biz/en/reference/messaging-api/#message-event


class Message(Payload):
    """A message object's common properties (also a message of a type we do not read)."""

    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    quoteToken: str | None = None
    markAsReadToken: str | None = None
    quotedMessageId: str | None = None


class Mention(Payload):
    """https://developers.line.biz/en/reference/messaging-api/#wh-text (`mention`)"""

    mentionees: list[dict[str, Any]] | None = None


class TextMessage(Message):
    """https://developers.line.biz/en/reference/messaging-api/#wh-text"""

    text: str = Field(min_length=1)
    emojis: list[dict[str, Any]] | None = None
    mention: Mention | None = None


class ContentProvider(Payload):
    """https://developers.line.biz/en/reference/messaging-api/#wh-image (`contentProvider`)"""

    type: str  # "line" (fetch the bytes by message id) or "external"
    originalContentUrl: str | None = None
    previewImageUrl: str | None = None


class ImageSet(Payload):
    """Images sent together: https://developers.line.biz/en/reference/messaging-api/#wh-image"""

    id: str
    index: int | None = None
    total: int | None = None


class MediaMessage(Message):
    """Image, video and audio: https://developers.line.biz/en/reference/messaging-api/#wh-image
    https://developers.line.biz/en/reference/messaging-api/#wh-video
    https://developers.line.biz/en/reference/messaging-api/#wh-audio"""

    contentProvider: ContentProvider | None = None
    duration: int | None = None  # video and audio, in ms
    imageSet: ImageSet | None = None  # image


class FileMessage(Message):
    """https://developers.line.biz/en/reference/messaging-api/#wh-file"""

    fileName: str | None = None
    fileSize: int | None = None


class LocationMessage(Message):
    """https://developers.line.biz/en/reference/messaging-api/#wh-location"""

    title: str | None = None
    address: str | None = None
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class StickerMessage(Message):
    """https://developers.line.biz/en/reference/messaging-api/#wh-sticker"""

    packageId: str
    stickerId: str
    stickerResourceType: str | None = None
    keywords: list[str] | None = None
    text: str | None = None


class MessageEvent(Event):
    message: Message


class TextEvent(MessageEvent):
    message: TextMessage


class MediaEvent(MessageEvent):
    message: MediaMessage


class FileEvent(MessageEvent):
    message: FileMessage


class LocationEvent(MessageEvent):
    message: LocationMessage


class StickerEvent(MessageEvent):
    message: StickerMessage


# --- other events


class PostbackContent(Payload):
    """https://developers.line.biz/en/reference/messaging-api/#postback-event"""

    data: str
    params: dict[str, Any] | None = None  # date/time picker and rich menu switch values


class PostbackEvent(Event):
    postback: PostbackContent


class Follow(Payload):
    isUnblocked: bool | None = None


class FollowEvent(Event):
    """https://developers.line.biz/en/reference/messaging-api/#follow-event"""

    follow: Follow | None = None


class Member(Payload):
    type: str | None = None
    userId: str | None = None


class Members(Payload):
    members: list[Member]


class MemberJoinedEvent(Event):
    """https://developers.line.biz/en/reference/messaging-api/#member-joined-event"""

    joined: Members


class MemberLeftEvent(Event):
    """https://developers.line.biz/en/reference/messaging-api/#member-left-event"""

    left: Members


class Unsend(Payload):
    messageId: str


class UnsendEvent(Event):
    """https://developers.line.biz/en/reference/messaging-api/#unsend-event"""

    unsend: Unsend


# The model of each message type we read; any other type is read as `MessageEvent`.
MESSAGE_EVENTS: dict[str, type[MessageEvent]] = {
    "text": TextEvent,
    "image": MediaEvent,
    "video": MediaEvent,
    "audio": MediaEvent,
    "file": FileEvent,
    "location": LocationEvent,
    "sticker": StickerEvent,
}

# The model of each event type we read; unfollow, join, leave and any other are `Event`.
EVENTS: dict[str, type[Event]] = {
    "postback": PostbackEvent,
    "follow": FollowEvent,
    "memberJoined": MemberJoinedEvent,
    "memberLeft": MemberLeftEvent,
    "unsend": UnsendEvent,
}


def event_model(event: dict[str, Any]) -> type[Event]:
    """The model that reads `event` (a raw member of `events[]`), by its type."""
    kind = event.get("type")
    if kind == "message":
        message = event.get("message")
        kind = message.get("type") if isinstance(message, dict) else None
        return MESSAGE_EVENTS.get(kind, MessageEvent) if isinstance(kind, str) else MessageEvent
    return EVENTS.get(kind, Event) if isinstance(kind, str) else Event
