"""Viber REST bot callbacks, as Viber documents them.

Callbacks: https://developers.viber.com/docs/api/rest-bot-api/#callbacks

    {"event": "message", "timestamp": 1457764197627, "chat_hostname": "SN-376_",
     "message_token": 4912661846655238145,
     "sender": {"id": "01234567890A=", "name": "John McClane", "api_version": 1},
     "message": {"type": "text", "text": "a message to the service"}}

One callback per request. Models are strict (a number is no string) and ignore fields they do
not name: Viber adds fields without notice, and they are kept in the raw callback (an
unsupported message carries its raw part; the inbox keeps the raw body), not copied into models. `message_token` is a 64-bit
integer read before the model (`parse._token`): it must stay exact, never pass through a float.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class User(Payload):
    """The sender of a message, or the user of subscribed and conversation_started:
    https://developers.viber.com/docs/api/rest-bot-api/#receive-message-from-user"""

    id: str = Field(min_length=1)
    name: str | None = None
    avatar: str | None = None
    country: str | None = None
    language: str | None = None
    api_version: int | None = None


class Callback(Payload):
    """What every callback has; one of an event we do not read is one of these:
    https://developers.viber.com/docs/api/rest-bot-api/#callbacks"""

    event: str
    timestamp: int  # epoch milliseconds
    chat_hostname: str | None = None
    silent: bool | None = None


# --- messages: https://developers.viber.com/docs/api/rest-bot-api/#receive-message-from-user


class Message(Payload):
    """A message's common fields (also one of a type we do not read)."""

    type: str
    text: str | None = None  # the text, or a media message's caption
    tracking_data: Any = None  # our own, sent back as it was sent
    thumbnail: str | None = None
    duration: int | None = None


class TextMessage(Message):
    text: str = Field(min_length=1)


class MediaMessage(Message):
    """picture, video and file: the media URL, a file's name and size in bytes."""

    media: str = Field(min_length=1)
    file_name: str | None = None
    size: int | None = None


class StickerMessage(Message):
    sticker_id: int
    media: str | None = None


class ContactCard(Payload):
    name: str | None = None
    phone_number: str | None = None
    avatar: str | None = None


class ContactMessage(Message):
    contact: ContactCard


class Place(Payload):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str | None = None


class LocationMessage(Message):
    location: Place


class UrlMessage(Message):
    media: str = Field(min_length=1)  # the URL


class MessageCallback(Callback):
    sender: User
    message: Message


class TextCallback(MessageCallback):
    message: TextMessage


class MediaCallback(MessageCallback):
    message: MediaMessage


class StickerCallback(MessageCallback):
    message: StickerMessage


class ContactCallback(MessageCallback):
    message: ContactMessage


class LocationCallback(MessageCallback):
    message: LocationMessage


class UrlCallback(MessageCallback):
    message: UrlMessage


# --- other callbacks


class Receipt(Callback):
    """delivered, seen and failed:
    https://developers.viber.com/docs/api/rest-bot-api/#message-receipts-callbacks"""

    user_id: str = Field(min_length=1)
    desc: str | None = None  # failed: why


class Subscribed(Callback):
    """https://developers.viber.com/docs/api/rest-bot-api/#subscribed"""

    user: User


class Unsubscribed(Callback):
    """https://developers.viber.com/docs/api/rest-bot-api/#unsubscribed"""

    user_id: str = Field(min_length=1)


class ConversationStarted(Callback):
    """https://developers.viber.com/docs/api/rest-bot-api/#conversation-started"""

    type: str | None = None  # "open"
    context: str | None = None  # the deep link's context parameter
    user: User
    subscribed: bool | None = None


# The model of each message type we read; any other type is read as `MessageCallback`.
MESSAGES: dict[str, type[MessageCallback]] = {
    "text": TextCallback,
    "picture": MediaCallback,
    "video": MediaCallback,
    "file": MediaCallback,
    "sticker": StickerCallback,
    "contact": ContactCallback,
    "location": LocationCallback,
    "url": UrlCallback,
}

# The model of each callback we read; any other event is read as `Callback`.
CALLBACKS: dict[str, type[Callback]] = {
    "delivered": Receipt,
    "seen": Receipt,
    "failed": Receipt,
    "subscribed": Subscribed,
    "unsubscribed": Unsubscribed,
    "conversation_started": ConversationStarted,
}


def callback_model(payload: dict[str, Any]) -> type[Callback]:
    """The model that reads `payload`, by its event (and a message's type)."""
    event = payload["event"]
    if event == "message":
        message = payload.get("message")
        kind = message.get("type") if isinstance(message, dict) else None
        return MESSAGES.get(kind, MessageCallback) if isinstance(kind, str) else MessageCallback
    return CALLBACKS.get(event, Callback)
