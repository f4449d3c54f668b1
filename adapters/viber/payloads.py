"""Viber REST bot callbacks, as Viber documents them.

Callbacks: https://developers.viber.com/docs/api/rest-bot-api/#callbacks

    {"event": "message", "timestamp": 1457764197627, "chat_hostname": "SN-376_",
     "message_token": 4912661846655238145,
     "sender": {"id": "01234567890A=", "name": "John McClane", "api_version": 1},
     "message": {"type": "text", "text": "a message to the service"}}

One callback per request. Each part is a TypedDict validated by a pydantic TypeAdapter: strict
(a number is no string), with pydantic's error paths, and fields it does not name left out:
Viber adds fields without notice, and they are kept in the raw callback (an unsupported
message carries its raw part; the inbox keeps the raw body). A plain dict costs a third of a
model instance. `message_token` is a 64-bit integer read before the model (`parse.token`): it
must stay exact, never pass through a float.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

# A TypedDict's config is its own (a subclass does not inherit it): each class says it.
strict = with_config(ConfigDict(extra="ignore", strict=True))
NonEmpty = Annotated[str, Field(min_length=1)]


@strict
class User(TypedDict):
    """The sender of a message, or the user of subscribed and conversation_started:
    https://developers.viber.com/docs/api/rest-bot-api/#receive-message-from-user"""

    id: NonEmpty
    name: NotRequired[str | None]
    avatar: NotRequired[str | None]
    country: NotRequired[str | None]
    language: NotRequired[str | None]
    api_version: NotRequired[int | None]


@strict
class Callback(TypedDict):
    """What every callback has; one of an event we do not read is one of these:
    https://developers.viber.com/docs/api/rest-bot-api/#callbacks"""

    event: str
    timestamp: int  # epoch milliseconds
    chat_hostname: NotRequired[str | None]
    silent: NotRequired[bool | None]


# --- messages: https://developers.viber.com/docs/api/rest-bot-api/#receive-message-from-user
# A message's fields in the order they are checked (the first error is the one named): its
# type, its text, then what any message may carry. A TypedDict cannot narrow a field of its
# base, so a text message takes its `text` from a part of its own.


@strict
class _Kind(TypedDict):
    type: str


@strict
class _Caption(TypedDict):
    text: NotRequired[str | None]  # the text, or a media message's caption


@strict
class _Text(TypedDict):
    text: NonEmpty


@strict
class _Shown(TypedDict):
    tracking_data: NotRequired[Any]  # our own, sent back as it was sent
    thumbnail: NotRequired[str | None]
    duration: NotRequired[int | None]


@strict
class Message(_Kind, _Caption, _Shown):
    """A message's common fields (also one of a type we do not read)."""


@strict
class TextMessage(_Kind, _Text, _Shown):
    """A text message: its text is required and not empty."""


@strict
class MediaMessage(Message):
    """picture, video and file: the media URL, a file's name and size in bytes."""

    media: NonEmpty
    file_name: NotRequired[str | None]
    size: NotRequired[int | None]


@strict
class StickerMessage(Message):
    sticker_id: int
    media: NotRequired[str | None]


@strict
class ContactCard(TypedDict):
    name: NotRequired[str | None]
    phone_number: NotRequired[str | None]
    avatar: NotRequired[str | None]


@strict
class ContactMessage(Message):
    contact: ContactCard


@strict
class Place(TypedDict):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    address: NotRequired[str | None]


@strict
class LocationMessage(Message):
    location: Place


@strict
class UrlMessage(Message):
    media: NonEmpty  # the URL


# A message callback per message type: the common fields, the sender, then `message`.
@strict
class _Sent(Callback):
    sender: User


@strict
class MessageCallback(_Sent):
    message: Message


@strict
class TextCallback(_Sent):
    message: TextMessage


@strict
class MediaCallback(_Sent):
    message: MediaMessage


@strict
class StickerCallback(_Sent):
    message: StickerMessage


@strict
class ContactCallback(_Sent):
    message: ContactMessage


@strict
class LocationCallback(_Sent):
    message: LocationMessage


@strict
class UrlCallback(_Sent):
    message: UrlMessage


# --- other callbacks


@strict
class Receipt(Callback):
    """delivered, seen and failed:
    https://developers.viber.com/docs/api/rest-bot-api/#message-receipts-callbacks"""

    user_id: NonEmpty
    desc: NotRequired[str | None]  # failed: why


@strict
class Subscribed(Callback):
    """https://developers.viber.com/docs/api/rest-bot-api/#subscribed"""

    user: User


@strict
class Unsubscribed(Callback):
    """https://developers.viber.com/docs/api/rest-bot-api/#unsubscribed"""

    user_id: NonEmpty


@strict
class ConversationStarted(Callback):
    """https://developers.viber.com/docs/api/rest-bot-api/#conversation-started"""

    type: NotRequired[str | None]  # "open"
    context: NotRequired[str | None]  # the deep link's context parameter
    user: User
    subscribed: NotRequired[bool | None]


MESSAGE_CALLBACK = TypeAdapter(MessageCallback)
CALLBACK = TypeAdapter(Callback)
_MEDIA_CALLBACK = TypeAdapter(MediaCallback)
_RECEIPT = TypeAdapter(Receipt)

# The reader of each message type we read; any other type is read as `MessageCallback`.
MESSAGES: dict[str, TypeAdapter[Any]] = {
    "text": TypeAdapter(TextCallback),
    "picture": _MEDIA_CALLBACK,
    "video": _MEDIA_CALLBACK,
    "file": _MEDIA_CALLBACK,
    "sticker": TypeAdapter(StickerCallback),
    "contact": TypeAdapter(ContactCallback),
    "location": TypeAdapter(LocationCallback),
    "url": TypeAdapter(UrlCallback),
}

# The reader of each callback we read; any other event is read as `Callback`.
CALLBACKS: dict[str, TypeAdapter[Any]] = {
    "delivered": _RECEIPT,
    "seen": _RECEIPT,
    "failed": _RECEIPT,
    "subscribed": TypeAdapter(Subscribed),
    "unsubscribed": TypeAdapter(Unsubscribed),
    "conversation_started": TypeAdapter(ConversationStarted),
}


def callback_model(payload: dict[str, Any]) -> TypeAdapter[Any]:
    """The TypeAdapter that reads `payload`, by its event (and a message's type)."""
    event = payload["event"]
    if event == "message":
        message = payload.get("message")
        kind = message.get("type") if isinstance(message, dict) else None
        return MESSAGES.get(kind, MESSAGE_CALLBACK) if isinstance(kind, str) else MESSAGE_CALLBACK
    return CALLBACKS.get(event, CALLBACK)
