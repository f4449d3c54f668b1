"""WhatsApp Cloud API webhook payloads, as Meta documents them.

Strict (a number is no string, a string no number); fields nothing reads are ignored (the
raw body is kept in the inbox). The parts a webhook batches (`entry[]`, `changes[]`, `messages[]`,
`statuses[]`, `errors[]`) are `list[Any]` here: each is validated on its own
(adapters/webhook_parts.py), so one the adapter cannot read fails alone.

Envelope: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
Messages: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from gateway.schema.content import Contact as ContactCard


class Payload(BaseModel):
    # Lists default to None, not []: pydantic copies a mutable default for every instance,
    # which doubled the cost of validating a `value`. Fields nothing reads are ignored: the
    # raw body stays in the inbox, and an unsupported message carries its part as received.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


# The envelope, entry, change and value are read once per webhook each: TypedDicts validated
# by a TypeAdapter (still strict, still pydantic's error paths) cost a third of a model.
_STRICT = ConfigDict(extra="ignore", strict=True)


@with_config(_STRICT)
class Webhook(TypedDict, total=False):
    """`{"object": "whatsapp_business_account", "entry": [...]}`
    https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components"""

    object: str | None
    entry: list[Any] | None


@with_config(_STRICT)
class Entry(TypedDict, total=False):
    """`{"id": "<WABA_ID>", "changes": [...]}` (a `time` on some fields, in seconds)."""

    id: Any
    time: Any  # read leniently, as before: a bad one falls back to the arrival time
    changes: list[Any] | None


@with_config(_STRICT)
class Change(TypedDict, total=False):
    """`{"field": "messages", "value": {...}}`; other fields (template status updates, ...)
    become `system` events carrying their value as received."""

    field: str | None
    value: Any


@with_config(_STRICT)
class Metadata(TypedDict, total=False):
    """`{"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}`"""

    display_phone_number: str | None
    phone_number_id: str | None


@with_config(_STRICT)
class Profile(TypedDict, total=False):
    """`{"name": "Sheena", "username": "@sheena"}` (a username from 2026)."""

    name: str | None
    username: str | None


@with_config(_STRICT)
class Contact(TypedDict, total=False):
    """`{"profile": {...}, "wa_id": "16505551234", "user_id": "US.13491208655302741918"}`:
    `wa_id` only when Meta may share the phone number, `user_id` the business-scoped user id.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
    """

    wa_id: str | None
    user_id: str | None
    profile: Profile | None


@with_config(_STRICT)
class Value(TypedDict, total=False):
    """`value` of a `messages` change: who it is for and the messages, statuses and errors.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
    """

    metadata: Metadata | None
    contacts: list[Contact] | None
    messages: list[Any] | None
    statuses: list[Any] | None
    errors: list[Any] | None


WEBHOOK = TypeAdapter(Webhook)
ENTRY = TypeAdapter(Entry)
CHANGE = TypeAdapter(Change)
VALUE = TypeAdapter(Value)


class ErrorData(Payload):
    details: str | None = None


class Error(Payload):
    """`{"code": 131051, "title": "Message type unknown", "message": ..., "error_data":
    {"details": ...}}` https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/errors
    """

    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None


class Text(Payload):
    body: str


class MediaObject(Payload):
    """`image`, `video`, `audio` (`voice`), `document` (`filename`), `sticker` (`animated`):
    `{"id": "<MEDIA_ID>", "mime_type": ..., "sha256": ..., "caption": ...}`; a `url` or
    `link` where Meta gives one."""

    id: str | None = None
    url: str | None = None
    link: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class Location(Payload):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class Reply(Payload):
    """An interactive `button_reply` or `list_reply`: the id the business gave the choice."""

    id: str
    title: str | None = None
    description: str | None = None


class FlowReply(Payload):
    """`nfm_reply`: a completed Flow, its answers a string of JSON.
    https://developers.facebook.com/docs/whatsapp/flows/reference/responsemsgwebhook"""

    name: str | None = None
    body: str | None = None
    response_json: Any = None  # checked by the adapter, which says what is wrong with it


class Interactive(Payload):
    type: str | None = None
    button_reply: Reply | None = None
    list_reply: Reply | None = None
    nfm_reply: FlowReply | None = None


class Button(Payload):
    """A template's quick-reply button: `{"text": "Unsubscribe", "payload": "..."}`."""

    text: str | None = None
    payload: str | None = None


class Reaction(Payload):
    """`{"message_id": "<wamid>", "emoji": "..."}`; no emoji when the reaction is removed."""

    message_id: str
    emoji: str | None = None


class System(Payload):
    """`{"type": "user_changed_number", "body": ..., "wa_id": "<new id>"}`; a
    `user_changed_user_id` names the new BSUID in `user_id`.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/system/
    """

    type: str | None = None
    body: str | None = None
    wa_id: str | None = None
    new_wa_id: str | None = None
    user_id: str | None = None


class Context(Payload):
    """A reply's `{"from": ..., "id": "<wamid quoted>"}`, and whether it was forwarded."""

    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None
    referred_product: Any = None


class Referral(Payload):
    """A message from a Click-to-WhatsApp ad."""

    source_type: str | None = None
    source_id: str | None = None
    source_url: str | None = None
    headline: str | None = None
    body: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    ctwa_clid: str | None = None


class UnsupportedType(Payload):
    type: str | None = None


class Message(Payload):
    """One of `messages[]`: `{"from": "16505551234", "id": "wamid...", "timestamp":
    "1749416383", "type": "text", "text": {"body": "hi"}}`. `from_user_id` carries the BSUID
    (and may stand alone); `group_id` is set in a group. Types this model does not name
    still validate, and become `unsupported` events with the message as received.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
    """

    id: str
    from_: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None
    timestamp: Any = None  # a string of Unix seconds; read by the adapter, which names it
    type: str | None = None
    group_id: str | None = None
    context: Context | None = None
    referral: Referral | None = None
    text: Text | None = None
    image: MediaObject | None = None
    video: MediaObject | None = None
    audio: MediaObject | None = None
    document: MediaObject | None = None
    sticker: MediaObject | None = None
    location: Location | None = None
    contacts: list[ContactCard] | None = Field(default=None, min_length=1)
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    system: System | None = None
    errors: list[Error] | None = None
    unsupported: UnsupportedType | None = None


class Status(Payload):
    """One of `statuses[]`: `{"id": "wamid...", "status": "delivered", "timestamp":
    "1750857384", "recipient_id": "16505551234"}`; `recipient_user_id` for a send to a BSUID,
    `recipient_type: group` for a send to a group.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status
    """

    id: str
    status: str | None = None
    timestamp: Any = None
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    recipient_type: str | None = None
    errors: list[Error] | None = None
