"""Viber callbacks → event drafts, read through their models (`payloads.py`).

A callback that cannot be read fails with the path of the field at fault
(`sender.name: expected a string, got a list`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ValidationError

from adapters.base import PayloadError, epoch_millis, json_object
from adapters.payload_errors import describe
from adapters.viber import payloads as p
from adapters.viber.render import parse_postback
from adapters.webhook_parts import adapted
from gateway.schema import (
    EventDraft,
    EventError,
    MessageBody,
    Party,
    Postback,
    Status,
    Subscription,
    System,
    Unsupported,
)
from gateway.schema.content import (
    Contact,
    ContactName,
    ContactPhone,
    ContactsContent,
    FileContent,
    ImageContent,
    LocationContent,
    Media,
    StickerContent,
    TextContent,
    VideoContent,
)
from gateway.schema.content import Content as AnyContent

_RECEIPTS: dict[str, Literal["delivered", "read", "failed"]] = {
    "delivered": "delivered",
    "seen": "read",
    "failed": "failed",
}
_MEDIA: dict[str, type[ImageContent | VideoContent | FileContent]] = {
    "picture": ImageContent,
    "video": VideoContent,
    "file": FileContent,
}
_PROFILE = ("avatar", "country", "language", "api_version")


def load(body: bytes) -> dict[str, Any]:
    """The callback as JSON; PayloadError when it is none."""
    payload = json_object(body)
    if not isinstance(payload.get("event"), str) or not payload["event"]:
        raise PayloadError("not a Viber callback (no event)")
    return payload


def token(value: Any) -> str | None:
    """The exact decimal digits of a message_token (never via float)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return value
    raise PayloadError(f"message_token {value!r} is not an integer")


def key(payload: dict[str, Any]) -> str:
    found = token(payload.get("message_token"))
    if found is not None:
        return f"{payload['event']}:{found}"
    # No token (not seen from Viber, but then the same body is the same event).
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"{payload['event']}:sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class Reader:
    """Reads one channel's callbacks: `bot` is the recipient of users' messages, `postback_mac`
    tells a tapped choice button from typed text (render.py)."""

    def __init__(self, common: dict[str, Any], bot: Party, postback_mac: hashlib.blake2b) -> None:
        self.common = common
        self.bot = bot
        self.postback_mac = postback_mac

    def draft(self, payload: dict[str, Any]) -> EventDraft:
        try:
            callback: p.Callback = adapted(p.callback_model(payload), payload)
        except ValidationError as exc:
            raise PayloadError(f"invalid payload: {describe(exc)}") from None
        common = {
            **self.common,
            "external_id": token(payload.get("message_token")),
            "timestamp": epoch_millis(callback["timestamp"]),
        }
        read: ReadOne = _READERS.get(callback["event"], Reader._unsupported)
        return read(self, callback, payload, common)

    def _message(
        self, callback: p.MessageCallback, payload: dict[str, Any], common: dict[str, Any]
    ) -> EventDraft:
        message = callback["message"]
        sender = callback["sender"]
        kind = message["type"]
        data = _profile(sender)
        if (tracking := message.get("tracking_data")) is not None:
            data["tracking_data"] = tracking
        if callback.get("silent"):
            data["silent"] = True
        common |= {"sender": _party(sender), "recipient": self.bot}
        text = message.get("text") if kind == "text" else None  # not empty: TextMessage
        tapped = parse_postback(text, self.postback_mac) if text else None
        if tapped is not None:
            # A keyboard or rich media choice button (see render.py): Viber sends its
            # ActionBody as the user's text, and the label is not part of it.
            return EventDraft(
                type="postback",
                postback=Postback(payload=tapped),
                channel_data=data or None,
                **common,
            )
        read = _CONTENTS.get(kind)
        if read is None:
            data["message"] = payload["message"]
            return EventDraft(
                type="unsupported",
                unsupported=Unsupported(
                    provider_type=kind, reason=f"message type {kind!r} is not supported"
                ),
                channel_data=data,
                **common,
            )
        content = read(message, data)
        data |= {k: v for k in ("thumbnail", "duration") if (v := message.get(k)) is not None}
        return EventDraft(
            type="message",
            message=MessageBody(content=content),
            channel_data=data or None,
            **common,
        )

    def _receipt(
        self, callback: p.Receipt, payload: dict[str, Any], common: dict[str, Any]
    ) -> EventDraft:
        external_id = common["external_id"]
        event = callback["event"]
        if external_id is None:
            raise PayloadError(f"{event} callback without a message_token")
        error = None
        if event == "failed":
            error = EventError(code="viber_failed", title=callback.get("desc") or None)
        status = Status(external_id=external_id, state=_RECEIPTS[event], error=error)
        return EventDraft(
            type="status",
            status=status,
            sender=self.bot,
            recipient=Party(id=callback["user_id"]),
            **common,
        )

    def _subscribed(
        self, callback: p.Subscribed, payload: dict[str, Any], common: dict[str, Any]
    ) -> EventDraft:
        return EventDraft(
            type="subscription",
            subscription=Subscription(state="subscribed"),
            sender=_party(callback["user"]),
            recipient=self.bot,
            channel_data=_profile(callback["user"]) or None,
            **common,
        )

    def _unsubscribed(
        self, callback: p.Unsubscribed, payload: dict[str, Any], common: dict[str, Any]
    ) -> EventDraft:
        return EventDraft(
            type="subscription",
            subscription=Subscription(state="unsubscribed"),
            sender=Party(id=callback["user_id"]),
            recipient=self.bot,
            **common,
        )

    def _conversation_started(
        self, callback: p.ConversationStarted, payload: dict[str, Any], common: dict[str, Any]
    ) -> EventDraft:
        # The user opened the chat (button or deep link). This is NOT a subscription: a user
        # with "subscribed": false may only get the one welcome message, so it is a `system`
        # event. "subscribed": true clears an opt-out (OPT_INS); false leaves it alone.
        user = callback["user"]
        context = callback.get("context")
        data = {
            "context": context,
            "subscribed": callback.get("subscribed"),
            "type": callback.get("type"),
        } | _profile(user)
        return EventDraft(
            type="system",
            system=System(kind="conversation_started", text=context or None),
            sender=_party(user),
            recipient=self.bot,
            channel_data=data,
            **common,
        )

    def _unsupported(
        self, callback: p.Callback, payload: dict[str, Any], common: dict[str, Any]
    ) -> EventDraft:
        event = callback["event"]
        return EventDraft(
            type="unsupported",
            unsupported=Unsupported(
                provider_type=f"event:{event}", reason=f"event {event!r} is not supported"
            ),
            channel_data={"payload": payload},
            **common,
        )


ReadOne = Callable[[Reader, Any, dict[str, Any], dict[str, Any]], EventDraft]

_READERS: dict[str, ReadOne] = {
    "message": Reader._message,
    "delivered": Reader._receipt,
    "seen": Reader._receipt,
    "failed": Reader._receipt,
    "subscribed": Reader._subscribed,
    "unsubscribed": Reader._unsubscribed,
    "conversation_started": Reader._conversation_started,
}


# The content of a message of each type we read, from its validated part (which
# `payloads.callback_model` chose by the same type); what else it carries goes in `data`.
ContentReader = Callable[[Any, dict[str, Any]], AnyContent]


def _text(message: p.TextMessage, data: dict[str, Any]) -> AnyContent:
    return TextContent(text=message["text"])


def _media(message: p.MediaMessage, data: dict[str, Any]) -> AnyContent:
    media = Media(
        url=message["media"], filename=message.get("file_name") or None, size=message.get("size")
    )
    return _MEDIA[message["type"]](media=media, caption=message.get("text") or None)


def _sticker(message: p.StickerMessage, data: dict[str, Any]) -> AnyContent:
    return StickerContent(
        media=Media(provider_media_id=str(message["sticker_id"]), url=message.get("media"))
    )


def _contact(message: p.ContactMessage, data: dict[str, Any]) -> AnyContent:
    card = message["contact"]
    name = card.get("name") or card.get("phone_number")
    if not name:
        raise PayloadError("contact message without name or phone_number")
    phone = card.get("phone_number")
    if avatar := card.get("avatar"):
        data["contact_avatar"] = avatar
    phones = [ContactPhone(phone=phone)] if phone else []
    return ContactsContent(contacts=[Contact(name=ContactName(formatted_name=name), phones=phones)])


def _location(message: p.LocationMessage, data: dict[str, Any]) -> AnyContent:
    where = message["location"]
    return LocationContent(
        latitude=where["lat"], longitude=where["lon"], address=where.get("address") or None
    )


def _url(message: p.UrlMessage, data: dict[str, Any]) -> AnyContent:
    data["url"] = message["media"]
    return TextContent(text=message["media"])


# The message types `payloads.MESSAGES` reads, each with its own TypedDict.
_CONTENTS: dict[str, ContentReader] = {
    "text": _text,
    "picture": _media,
    "video": _media,
    "file": _media,
    "sticker": _sticker,
    "contact": _contact,
    "location": _location,
    "url": _url,
}


def _party(user: p.User) -> Party:
    return Party(id=user["id"], name=user.get("name") or None)


def _profile(user: p.User) -> dict[str, Any]:
    return {k: v for k in _PROFILE if (v := user.get(k)) is not None}
