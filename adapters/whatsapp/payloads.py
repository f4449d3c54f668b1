"""WhatsApp Cloud API webhook payloads, as Meta documents them.

Strict (a number is no string, a string no number); fields nothing reads are ignored (the
raw body is kept in the inbox). The parts a webhook batches (`entry[]`, `changes[]`, `messages[]`,
`statuses[]`, `errors[]`) are `list[Any]` here: each is validated on its own
(adapters/webhook_parts.py), so one the adapter cannot read fails alone.

Envelope: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
Messages: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
"""

from __future__ import annotations

from typing import Annotated, Any, Required

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from gateway.schema.content import Contact as ContactCard

# Every part is a TypedDict validated by a TypeAdapter: still strict, still pydantic's error
# paths (`messages[1].text.body`), at a third of what a model instance costs (a text message:
# 6k instructions against 23k). What a model's `model_fields_set` told, whether a field was
# sent at all, is whether its key is in the dict: a TypedDict keeps only the keys it was given.
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


@with_config(_STRICT)
class ErrorData(TypedDict, total=False):
    details: str | None


@with_config(_STRICT)
class Error(TypedDict, total=False):
    """`{"code": 131051, "title": "Message type unknown", "message": ..., "error_data":
    {"details": ...}}` https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/errors
    """

    code: int | None
    title: str | None
    message: str | None
    error_data: ErrorData | None


@with_config(_STRICT)
class Text(TypedDict):
    body: str


@with_config(_STRICT)
class MediaObject(TypedDict, total=False):
    """`image`, `video`, `audio` (`voice`), `document` (`filename`), `sticker` (`animated`):
    `{"id": "<MEDIA_ID>", "mime_type": ..., "sha256": ..., "caption": ...}`; a `url` or
    `link` where Meta gives one."""

    id: str | None
    url: str | None
    link: str | None
    mime_type: str | None
    sha256: str | None
    caption: str | None
    filename: str | None
    voice: bool | None
    animated: bool | None


@with_config(_STRICT)
class Location(TypedDict, total=False):
    latitude: Required[float]
    longitude: Required[float]
    name: str | None
    address: str | None
    url: str | None


@with_config(_STRICT)
class Reply(TypedDict, total=False):
    """An interactive `button_reply` or `list_reply`: the id the business gave the choice."""

    id: Required[str]
    title: str | None
    description: str | None


@with_config(_STRICT)
class FlowReply(TypedDict, total=False):
    """`nfm_reply`: a completed Flow, its answers a string of JSON.
    https://developers.facebook.com/docs/whatsapp/flows/reference/responsemsgwebhook"""

    name: str | None
    body: str | None
    response_json: Any  # checked by the adapter, which says what is wrong with it


@with_config(_STRICT)
class Interactive(TypedDict, total=False):
    type: str | None
    button_reply: Reply | None
    list_reply: Reply | None
    nfm_reply: FlowReply | None


@with_config(_STRICT)
class Button(TypedDict, total=False):
    """A template's quick-reply button: `{"text": "Unsubscribe", "payload": "..."}`."""

    text: str | None
    payload: str | None


@with_config(_STRICT)
class Reaction(TypedDict, total=False):
    """`{"message_id": "<wamid>", "emoji": "..."}`; no emoji when the reaction is removed."""

    message_id: Required[str]
    emoji: str | None


@with_config(_STRICT)
class System(TypedDict, total=False):
    """`{"type": "user_changed_number", "body": ..., "wa_id": "<new id>"}`; a
    `user_changed_user_id` names the new BSUID in `user_id`.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/system/
    """

    type: str | None
    body: str | None
    wa_id: str | None
    new_wa_id: str | None
    user_id: str | None


@with_config(_STRICT)
class Context(TypedDict, total=False):
    """A reply's `{"from": ..., "id": "<wamid quoted>"}`, and whether it was forwarded."""

    id: str | None
    forwarded: bool | None
    frequently_forwarded: bool | None
    referred_product: Any


@with_config(_STRICT)
class Referral(TypedDict, total=False):
    """A message from a Click-to-WhatsApp ad."""

    source_type: str | None
    source_id: str | None
    source_url: str | None
    headline: str | None
    body: str | None
    image_url: str | None
    video_url: str | None
    ctwa_clid: str | None


@with_config(_STRICT)
class UnsupportedType(TypedDict, total=False):
    type: str | None


# `from` is a Python keyword: a TypedDict can name it only in the functional form.
_From = TypedDict("_From", {"from": str | None}, total=False)


@with_config(_STRICT)
class Message(_From, total=False):
    """One of `messages[]`: `{"from": "16505551234", "id": "wamid...", "timestamp":
    "1749416383", "type": "text", "text": {"body": "hi"}}`. `from_user_id` carries the BSUID
    (and may stand alone); `group_id` is set in a group. Types this model does not name
    still validate, and become `unsupported` events with the message as received.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
    """

    id: Required[str]
    from_user_id: str | None
    timestamp: Any  # a string of Unix seconds; read by the adapter, which names it
    type: str | None
    group_id: str | None
    context: Context | None
    referral: Referral | None
    text: Text | None
    image: MediaObject | None
    video: MediaObject | None
    audio: MediaObject | None
    document: MediaObject | None
    sticker: MediaObject | None
    location: Location | None
    contacts: Annotated[list[ContactCard] | None, Field(min_length=1)]
    interactive: Interactive | None
    button: Button | None
    reaction: Reaction | None
    system: System | None
    errors: list[Error] | None
    unsupported: UnsupportedType | None


@with_config(_STRICT)
class Status(TypedDict, total=False):
    """One of `statuses[]`: `{"id": "wamid...", "status": "delivered", "timestamp":
    "1750857384", "recipient_id": "16505551234"}`; `recipient_user_id` for a send to a BSUID,
    `recipient_type: group` for a send to a group.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status
    """

    id: Required[str]
    status: str | None
    timestamp: Any
    recipient_id: str | None
    recipient_user_id: str | None
    recipient_type: str | None
    errors: list[Error] | None


WEBHOOK = TypeAdapter(Webhook)
ENTRY = TypeAdapter(Entry)
CHANGE = TypeAdapter(Change)
VALUE = TypeAdapter(Value)
MESSAGE = TypeAdapter(Message)
STATUS = TypeAdapter(Status)
ERROR = TypeAdapter(Error)
