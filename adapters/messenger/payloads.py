"""Messenger Platform webhook payloads, as Meta documents them.

Strict (a number is no string); fields nothing reads are ignored (the raw body is kept in
the inbox, and events this module does not name, such as handovers or policy enforcement,
are read from the messaging item as received). `entry[]` and its `messaging[]` /
`standby[]` are `list[Any]` here: each item is validated on its own
(adapters/webhook_parts.py), so one the adapter cannot read fails alone.

Each part is a TypedDict validated by a TypeAdapter, as WhatsApp's (adapters/whatsapp/
payloads.py): a third of what a model instance costs, and whether a field was sent at all is
whether its key is in the dict.

Webhook events: https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events
"""

from __future__ import annotations

from typing import Any, Required

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

_STRICT = ConfigDict(extra="ignore", strict=True)


@with_config(_STRICT)
class Webhook(TypedDict, total=False):
    """`{"object": "page", "entry": [...]}`"""

    object: str | None
    entry: list[Any] | None


@with_config(_STRICT)
class Entry(TypedDict, total=False):
    """`{"id": "<PAGE_ID>", "time": 1458692752478, "messaging": [...]}`; events for an app
    that does not own the thread arrive in `standby` instead."""

    id: Any
    time: Any
    messaging: list[Any] | None
    standby: list[Any] | None


@with_config(_STRICT)
class Party(TypedDict, total=False):
    """`sender` / `recipient`: `{"id": "<PSID or PAGE_ID>"}` (a checkbox plugin's opt-in has
    `user_ref` instead)."""

    id: str | None
    user_ref: str | None


@with_config(_STRICT)
class AdsContext(TypedDict, total=False):
    ad_title: str | None
    photo_url: str | None
    video_url: str | None


@with_config(_STRICT)
class Referral(TypedDict, total=False):
    """`{"ref": ..., "source": "SHORTLINK|ADS|CUSTOMER_CHAT_PLUGIN", "type": "OPEN_THREAD",
    "ad_id": ..., "ads_context_data": {...}}`
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_referrals
    """

    ref: str | None
    source: str | None
    type: str | None
    ad_id: str | None
    referer_uri: str | None
    ads_context_data: AdsContext | None


@with_config(_STRICT)
class Coordinates(TypedDict, total=False):
    lat: Required[float]
    long: Required[float]


@with_config(_STRICT)
class AttachmentPayload(TypedDict, total=False):
    """`{"url": "<CDN_URL>"}`; a sticker adds `sticker_id`, a location `coordinates`."""

    url: str | None
    title: str | None
    sticker_id: int | None
    coordinates: Coordinates | None


@with_config(_STRICT)
class Attachment(TypedDict, total=False):
    """`{"type": "image|video|audio|file|sticker|location|fallback|...", "payload": {...}}`"""

    type: str | None
    payload: AttachmentPayload | None
    title: str | None
    url: str | None


@with_config(_STRICT)
class QuickReply(TypedDict, total=False):
    payload: str | None


@with_config(_STRICT)
class ReplyTo(TypedDict, total=False):
    mid: str | None


@with_config(_STRICT)
class Message(TypedDict, total=False):
    """`{"mid": "m_...", "text": "hi", "quick_reply": {...}, "reply_to": {...},
    "attachments": [...]}`; an echo of the Page's own send has `is_echo`, `app_id`, `metadata`.
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messages
    """

    mid: str | None
    text: str | None
    is_echo: bool | None
    metadata: str | None
    quick_reply: QuickReply | None
    reply_to: ReplyTo | None
    attachments: list[Attachment] | None
    referral: Referral | None


@with_config(_STRICT)
class Postback(TypedDict, total=False):
    """`{"mid": ..., "title": "Start Chatting", "payload": "...", "referral": {...}}`
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_postbacks
    """

    mid: str | None
    title: str | None
    payload: str | None
    referral: Referral | None


@with_config(_STRICT)
class Optin(TypedDict, total=False):
    """`{"type": "notification_messages", "notification_messages_status": "STOP
    NOTIFICATIONS", ...}`; the checkbox plugin's has `user_ref`.
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_optins
    """

    type: str | None
    user_ref: str | None
    notification_messages_status: str | None


@with_config(_STRICT)
class Reaction(TypedDict, total=False):
    """`{"mid": ..., "action": "react|unreact", "emoji": ..., "reaction": "love"}`"""

    mid: str | None
    action: str | None
    emoji: str | None
    reaction: str | None


@with_config(_STRICT)
class Delivery(TypedDict, total=False):
    """`{"mids": [...], "watermark": 1458668856253}`: mids may be absent.
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/message-deliveries
    """

    mids: list[str] | None
    watermark: Any


@with_config(_STRICT)
class Read(TypedDict, total=False):
    """`{"watermark": 1458668856253}`: everything sent up to it was read."""

    watermark: Any


@with_config(_STRICT)
class Messaging(TypedDict, total=False):
    """One item of `messaging[]` (or `standby[]`): the envelope and one event.
    `timestamp` is in milliseconds, though some events give seconds, as a string too
    (adapters/meta_graph.py `meta_time` reads both)."""

    sender: Party | None
    recipient: Party | None
    timestamp: Any
    message: Message | None
    postback: Postback | None
    referral: Referral | None
    optin: Optin | None
    reaction: Reaction | None
    delivery: Delivery | None
    read: Read | None


WEBHOOK = TypeAdapter(Webhook)
ENTRY = TypeAdapter(Entry)
MESSAGING = TypeAdapter(Messaging)
