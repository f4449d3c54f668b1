"""Messenger Platform webhook payloads, as Meta documents them.

Strict (a number is no string) and open (fields Meta adds are kept in `model_extra`, and
events this module does not name, such as handovers or policy enforcement, stay as extra
fields of the messaging item). `entry[]` and its `messaging[]` / `standby[]` are `list[Any]`
here: each item is validated on its own (adapters/webhook_parts.py), so one the adapter
cannot read fails alone.

Webhook events: https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Payload(BaseModel):
    # Lists default to None, not []: pydantic copies a mutable default for every instance,
    # which doubled the cost of validating a `value`.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class Webhook(Payload):
    """`{"object": "page", "entry": [...]}`"""

    object: str | None = None
    entry: list[Any] | None = None


class Entry(Payload):
    """`{"id": "<PAGE_ID>", "time": 1458692752478, "messaging": [...]}`; events for an app
    that does not own the thread arrive in `standby` instead."""

    id: Any = None
    time: Any = None
    messaging: list[Any] | None = None
    standby: list[Any] | None = None


class Party(Payload):
    """`sender` / `recipient`: `{"id": "<PSID or PAGE_ID>"}` (a checkbox plugin's opt-in has
    `user_ref` instead)."""

    id: str | None = None
    user_ref: str | None = None


class AdsContext(Payload):
    ad_title: str | None = None
    photo_url: str | None = None
    video_url: str | None = None


class Referral(Payload):
    """`{"ref": ..., "source": "SHORTLINK|ADS|CUSTOMER_CHAT_PLUGIN", "type": "OPEN_THREAD",
    "ad_id": ..., "ads_context_data": {...}}`
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_referrals
    """

    ref: str | None = None
    source: str | None = None
    type: str | None = None
    ad_id: str | None = None
    referer_uri: str | None = None
    ads_context_data: AdsContext | None = None


class Coordinates(Payload):
    lat: float
    long: float


class AttachmentPayload(Payload):
    """`{"url": "<CDN_URL>"}`; a sticker adds `sticker_id`, a location `coordinates`."""

    url: str | None = None
    title: str | None = None
    sticker_id: int | None = None
    coordinates: Coordinates | None = None


class Attachment(Payload):
    """`{"type": "image|video|audio|file|sticker|location|fallback|...", "payload": {...}}`"""

    type: str | None = None
    payload: AttachmentPayload | None = None
    title: str | None = None
    url: str | None = None


class QuickReply(Payload):
    payload: str | None = None


class ReplyTo(Payload):
    mid: str | None = None


class Message(Payload):
    """`{"mid": "m_...", "text": "hi", "quick_reply": {...}, "reply_to": {...},
    "attachments": [...]}`; an echo of the Page's own send has `is_echo`, `app_id`, `metadata`.
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messages
    """

    mid: str | None = None
    text: str | None = None
    is_echo: bool | None = None
    metadata: str | None = None
    quick_reply: QuickReply | None = None
    reply_to: ReplyTo | None = None
    attachments: list[Attachment] | None = None
    referral: Referral | None = None


class Postback(Payload):
    """`{"mid": ..., "title": "Start Chatting", "payload": "...", "referral": {...}}`
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_postbacks
    """

    mid: str | None = None
    title: str | None = None
    payload: str | None = None
    referral: Referral | None = None


class Optin(Payload):
    """`{"type": "notification_messages", "notification_messages_status": "STOP
    NOTIFICATIONS", ...}`; the checkbox plugin's has `user_ref`.
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_optins
    """

    type: str | None = None
    user_ref: str | None = None
    notification_messages_status: str | None = None


class Reaction(Payload):
    """`{"mid": ..., "action": "react|unreact", "emoji": ..., "reaction": "love"}`"""

    mid: str | None = None
    action: str | None = None
    emoji: str | None = None
    reaction: str | None = None


class Delivery(Payload):
    """`{"mids": [...], "watermark": 1458668856253}`: mids may be absent.
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/message-deliveries
    """

    mids: list[str] | None = None
    watermark: Any = None


class Read(Payload):
    """`{"watermark": 1458668856253}`: everything sent up to it was read."""

    watermark: Any = None


class Messaging(Payload):
    """One item of `messaging[]` (or `standby[]`): the envelope and one event.
    `timestamp` is in milliseconds, though some events give seconds, as a string too
    (adapters/meta_graph.py `meta_time` reads both)."""

    sender: Party | None = None
    recipient: Party | None = None
    timestamp: Any = None
    message: Message | None = None
    postback: Postback | None = None
    referral: Referral | None = None
    optin: Optin | None = None
    reaction: Reaction | None = None
    delivery: Delivery | None = None
    read: Read | None = None
