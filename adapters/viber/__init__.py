"""Viber REST Bot API.

Callbacks:  https://developers.viber.com/docs/api/rest-bot-api/#callbacks
Send API:   https://developers.viber.com/docs/api/rest-bot-api/#send-message
            https://creators.viber.com/docs/bots-api/resources/messaging/send-message
Webhooks:   https://creators.viber.com/docs/bots-api/getting-started/web-hooks
Errors:     https://developers.viber.com/docs/api/rest-bot-api/#error-codes

Viber posts one event per request, signed with the bot's auth token. `message_token` is a
64-bit integer: it is kept as its exact decimal string everywhere (`json.loads` reads JSON
integers as exact Python ints; a float would lose the low digits above 2**53).

Choices worth knowing:
* `webhook` (Viber's check after set_webhook) is answered 200 and kept in the inbox like any
  callback, but parses to no event: it is a handshake, not a conversation fact.
* `conversation_started` is a `system` event (kind "conversation_started"), never a
  subscription: the user opened the chat but may not be subscribed ("subscribed": false),
  and then only a welcome message may reach them. `subscribed`/`unsubscribed` are
  `subscription` events; the store remembers the opt-out so later sends fail fast.
* Opt-outs (gateway/consent.py): only `unsubscribed` sets a lasting one. A send refused with
  5 or 6 fails, and that is all: the user may simply not have subscribed yet. A message from
  the user (which subscribes them), `subscribed`, or `conversation_started` with
  "subscribed": true clears it.
* Outbound, a video without `Media.size`, or a file without size or filename, goes as text
  with its link (Viber requires them and the adapter does no I/O to find them out). Audio
  goes as a file (Viber has no audio type).
* Choices (buttons, quick replies, location requests) become a keyboard on the message and a
  carousel a `rich_media` message (adapters/viber/render.py); a tapped choice comes back as a
  text message carrying a reserved marker and is parsed as a `postback`. Lists are not
  native: the engine offers their rows as keyboard choices or numbered text.
* Every request stays within Viber's 30 KB: a text too long to carry its keyboard in 30 KB
  is split (the keyboard goes with the last part), a carousel is spread over more messages.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr

from adapters.base import (
    Adapter,
    AddressForm,
    Admission,
    ChannelConfig,
    InboundRequest,
    OptIn,
    ParsedEvent,
    PayloadError,
    ProviderRequest,
    SendContext,
    SendError,
    answer_json,
    newest_time,
    retry_after_seconds,
    signatures_match,
)
from adapters.viber import render as rich
from adapters.viber.parse import Reader, key, load
from adapters.viber.parse import token as parse_token
from gateway.downgrade.plain_text import to_text
from gateway.downgrade.profile import (
    ButtonsProfile,
    CarouselProfile,
    Profile,
    QuickRepliesProfile,
)
from gateway.downgrade.split_text import split_text
from gateway.schema import (
    ChannelRef,
    Party,
)
from gateway.schema.content import (
    AudioContent,
    ButtonsContent,
    CarouselContent,
    Contact,
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

SIGNATURE_HEADER = "X-Viber-Content-Signature"
AUTH_HEADER = "X-Viber-Auth-Token"

# Text: 7,000 characters. Viber's own REST page lists it with the text message type; confirmed
# by courier's Viber handler (maxMsgLength) and https://www.infobip.com/docs/viber/bots/message-types
MAX_TEXT = 7000
# Picture `text` (the caption): 512 characters, https://www.infobip.com/docs/viber/bots/message-types
MAX_CAPTION = 512
# sender.name: "Required. Max 28 characters." (send-message page on creators.viber.com)
MAX_SENDER_NAME = 28
# File name: 256 characters, https://www.infobip.com/docs/viber/bots/message-types
MAX_FILE_NAME = 256
# Contact card fields (REST page, contact message) [name 28 / phone 18: UNVERIFIED].
MAX_CONTACT_NAME = 28
MAX_CONTACT_PHONE = 18

# Media kinds and byte limits (REST page, message types; https://www.infobip.com/docs/viber/bots/message-types).
MEDIA_LIMITS: dict[str, tuple[tuple[str, ...], int]] = {
    "picture": (("image/jpeg", "image/png", "image/gif"), 1024 * 1024),
    "video": (("video/mp4",), 26 * 1024 * 1024),
    "file": ((), 50 * 1024 * 1024),
}

# Everything Viber shows natively; the engine turns the rest (lists, call and share buttons,
# templates) into what is here. Limits and their sources: adapters/viber/render.py.
CHOICES = frozenset({"reply", "postback"})
CAPABILITIES = Profile(
    channel="viber",
    text_max=MAX_TEXT,
    caption_max=MAX_CAPTION,
    payload_max=rich.PAYLOAD_MAX,  # ActionBody: no documented limit, see render.py
    media=frozenset({"image", "video", "audio", "file", "sticker"}),
    location=True,
    contacts=True,
    # Keyboard buttons https://developers.viber.com/docs/tools/keyboards/#buttons-parameters
    # reply → "reply", link → "open-url", location_request → "location-picker". No call
    # button (open-url with tel: is not documented), no share, no payments.
    buttons=ButtonsProfile(
        max_actions=rich.MAX_KEYBOARD_BUTTONS,
        label_max=rich.LABEL_MAX,
        text_max=MAX_TEXT,  # the keyboard rides on a text message
        kinds=CHOICES | {"link", "location_request"},
    ),
    # Quick replies are the same keyboard (it stays until the next keyboard replaces it).
    quick_replies=QuickRepliesProfile(
        max_items=rich.MAX_KEYBOARD_BUTTONS,
        label_max=rich.LABEL_MAX,
        kinds=CHOICES | {"link", "location_request"},
    ),
    # Rich media https://developers.viber.com/docs/api/rest-bot-api/#rich-media-message--carousel-content-message
    carousel=CarouselProfile(
        max_cards=rich.MAX_CARDS,
        title_max=rich.CARD_TITLE_MAX,
        description_max=rich.CARD_DESCRIPTION_MAX,
        max_actions=rich.CARD_MAX_ACTIONS,
        label_max=rich.LABEL_MAX,
        kinds=CHOICES | {"link"},  # no location-picker in rich media (send-message page)
    ),
    location_request=True,  # a keyboard with one location-picker button
    shared_keyboard=True,  # buttons and quick replies are the same keyboard
    notes={
        "keyboard": "the last keyboard sent stays until replaced; taps come back as postbacks",
        "location_request": f"needs min_api_version {rich.LOCATION_PICKER_API} (Viber 7.6+)",
        "carousel": f"rich media needs min_api_version {rich.RICH_MEDIA_API} (Viber 6.7+)",
    },
)

# Callbacks we ask for; `message`, `subscribed`, `unsubscribed` and `webhook` always come.
# https://creators.viber.com/docs/bots-api/getting-started/web-hooks
EVENT_TYPES = ("delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started")

# Status codes: https://developers.viber.com/docs/api/rest-bot-api/#error-codes
STATUS_NAMES: dict[int, str] = {
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    7: "publicAccountBlocked",
    8: "publicAccountNotFound",
    9: "publicAccountSuspended",
    10: "webhookNotSet",
    11: "receiverNoSuitableDevice",
    12: "tooManyRequests",
    13: "apiVersionNotSupported",
    14: "incompatibleWithVersion",
    15: "publicAccountNotAuthorized",
    16: "inchatReplyPublicAccountLimit",
    17: "noPublicChat",
    18: "cannotSendBroadcast",
    19: "broadcastNotAllowed",
    20: "unsupportedCountry",
    21: "paymentUnsupported",
    22: "freeMessagesExceeded",
    23: "noBalance",
}
RETRY_STATUSES = frozenset({12})
# The user cannot be messaged now: not on Viber, or not subscribed to the bot (never yet, or
# no longer). Not an opt-out: writing to the bot subscribes them ("a user's first message
# makes them subscribed"), and only an `unsubscribed` callback says they left for good.
NOT_SUBSCRIBED_STATUSES = frozenset({5, 6})
NOT_SUBSCRIBED_HINT = (
    "not on Viber or not subscribed to the bot; they can be messaged once they write to it"
)

# What clears an opt-out besides `subscribed`: the user's message or tapped button (a user's
# first message subscribes them, with no `subscribed` callback), or opening the chat while
# subscribed (`conversation_started` carries "subscribed"): the "Callbacks" section of
# https://developers.viber.com/docs/api/rest-bot-api/#callbacks
OPT_INS = (
    OptIn("message"),
    OptIn("postback"),
    OptIn("conversation_started", ("subscribed", True)),
)


class ViberConfig(ChannelConfig):
    type: Literal["viber"]
    api_base_url: str = "https://chatapi.viber.com/pa"
    # Viber publishes no numeric rate limit (error 12 signals it); stay well under the usual.
    rate_limit_per_second: float = 20.0
    auth_token: SecretStr
    sender_name: str = Field(min_length=1, max_length=MAX_SENDER_NAME)
    sender_avatar: str | None = Field(default=None, pattern=r"^https?://\S+$")
    min_api_version: int = Field(default=1, ge=1)


def signature(auth_token: str, body: bytes) -> str:
    """X-Viber-Content-Signature: lowercase hex HMAC-SHA256 of the raw body, no prefix."""
    return hmac.digest(auth_token.encode(), body, "sha256").hex()


def error_category(status: int) -> Literal["retry", "permanent", "unreachable"]:
    if status in RETRY_STATUSES:
        return "retry"
    if status in NOT_SUBSCRIBED_STATUSES:
        return "unreachable"
    return "permanent"


class ViberAdapter(Adapter):
    type = "viber"
    config_model = ViberConfig
    signature_header = SIGNATURE_HEADER
    # One event per request (providers.md §5.1), a text at most 7,000 characters (escaped
    # JSON: 12 bytes each at worst, 84 kB): https://developers.viber.com/docs/api/rest-bot-api/#callbacks
    max_body_bytes = 256 * 1024
    capabilities = CAPABILITIES
    opt_ins = OPT_INS
    # Viber user ids are base64 (a 16-byte id: 24 characters ending in ==; the docs' sample
    # 01234567890A=), and Viber never says more of their form: any base64 is accepted.
    address = AddressForm(
        r"[A-Za-z0-9+/]+={0,2}",
        "a Viber user id: base64, such as 01234567890A= or d3jxe61Z4W73nmNkjYGgZg==",
        "https://developers.viber.com/docs/api/rest-bot-api/#send-message",
    )
    config: ViberConfig

    @functools.cached_property
    def _sender(self) -> dict[str, str]:
        """The `sender` of every message (config only; shared by requests, never changed)."""
        sender = {"name": self.config.sender_name}
        if self.config.sender_avatar:
            sender["avatar"] = self.config.sender_avatar
        return sender

    @functools.cached_property
    def _postback_mac(self) -> hashlib.blake2b:
        return rich.postback_mac(self._postback_key)

    @functools.cached_property
    def _postback_key(self) -> bytes:
        """The key that tags choice buttons (render.py), derived from the auth token so it
        differs from the webhook signature key; empty when rendering without credentials."""
        token = getattr(self.config, "auth_token", None)
        secret = token.get_secret_value().encode() if token is not None else b""
        return hmac.new(secret, b"gateway:viber-postback", hashlib.sha256).digest()

    # --- inbound -------------------------------------------------------------------
    def verify(self, request: InboundRequest) -> bool:
        provided = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
        expected = signature(self.config.auth_token.get_secret_value(), request.body)
        return bool(provided) and signatures_match(provided, expected)

    def dedupe_key(self, body: bytes) -> str:
        return self.admission(body).key

    def admission(self, body: bytes) -> Admission:
        # One event per request: the key is the event name and its message_token; `timestamp`
        # is epoch ms (providers.md §5.1).
        payload = load(body)
        return Admission(key(payload), newest_time([payload.get("timestamp")], 1000))

    def parse(self, body: bytes) -> list[ParsedEvent]:
        payload = load(body)
        dedupe_key = key(payload)
        if payload["event"] == "webhook":
            # The check Viber makes on set_webhook: answered 200 at ingress and kept in the
            # inbox, but it says nothing about any conversation, so it yields no event.
            return []
        return [ParsedEvent(self._reader.draft(payload), dedupe_key)]

    @functools.cached_property
    def _reader(self) -> Reader:
        common = {"channel": ChannelRef(id=self.config.id, type=self.type)}
        return Reader(common, Party(id=self.config.id), self._postback_mac)

    # --- outbound ------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {AUTH_HEADER: self.config.auth_token.get_secret_value()}

    def render(self, content: AnyContent, context: SendContext) -> list[ProviderRequest]:
        base: dict[str, Any] = {
            "receiver": context.recipient_id,
            "min_api_version": self.config.min_api_version,
            "sender": self._sender,
            # Echoed back in the user's reply (channel_data.tracking_data).
            "tracking_data": context.message_id,
        }
        try:
            board = rich.keyboard_for(content, self._postback_mac)
        except rich.UnsupportedAction as exc:
            raise SendError(
                "permanent", "unsupported_action", f"Viber has no button for a {exc} action"
            ) from None

        def finish(body: dict[str, Any], keyboard: dict[str, Any] | None) -> dict[str, Any]:
            request = {**base, **body}
            needs = rich.RICH_MEDIA_API if body["type"] == "rich_media" else 1
            if keyboard:
                needs = max(needs, rich.api_level(keyboard))
                request["keyboard"] = keyboard
            if needs > base["min_api_version"]:
                request["min_api_version"] = needs
            return request

        notes: list[str] = []
        measured: set[int] = set()  # bodies known to fit even with the keyboard

        def fits(body: dict[str, Any]) -> bool:
            if rich.json_size(finish(body, board)) > rich.MAX_REQUEST_BYTES:
                return False
            measured.add(id(body))
            return True

        if type(content) is CarouselContent:  # final class: cheaper than a failing isinstance
            bodies = _texts(content.text or "")
            cards, notes = rich.rich_media_bodies(list(content.items), fits, self._postback_mac)
            bodies += cards
        else:
            bodies = _bodies(content)
            note = _fallback_note(content, bodies)
            notes = [note] if note else []
        requests = rich.fit(
            [(b, board if i == len(bodies) - 1 else None) for i, b in enumerate(bodies)],
            finish,
            notes,
            measured,
        )
        out = [ProviderRequest("POST", "/send_message", json=r) for r in requests]
        if notes and out:
            out[0] = out[0]._replace(note="; ".join(notes))
        return out

    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        if status == 429 or status >= 500:
            raise SendError(
                "retry",
                str(status),
                f"HTTP {status} from Viber",
                retry_after=retry_after_seconds(headers),
            )
        if not 200 <= status < 300:
            raise SendError("permanent", str(status), f"HTTP {status} from Viber")
        payload = answer_json(body)
        code = payload.get("status")
        if not isinstance(code, int) or isinstance(code, bool):  # False == 0 in Python
            raise SendError("retry", "unreadable", "Viber answered without a status")
        if code == 0:
            try:
                token = parse_token(payload.get("message_token"))
            except PayloadError:  # not a number: no id we could match statuses with
                token = None
            if token is None:
                raise SendError("retry", "0", "accepted without a message_token")
            return token
        title = str(payload.get("status_message") or STATUS_NAMES.get(code, "generalError"))
        if code in NOT_SUBSCRIBED_STATUSES:
            title = f"{title}: {NOT_SUBSCRIBED_HINT}"
        raise SendError(
            error_category(code), str(code), title, retry_after=retry_after_seconds(headers)
        )

    def webhook_registration(self, url: str) -> ProviderRequest:
        body = {"url": url, "event_types": list(EVENT_TYPES), "send_name": True, "send_photo": True}
        return ProviderRequest("POST", "/set_webhook", json=body)

    def read_registration_response(self, status: int, body: bytes) -> str:
        if not 200 <= status < 300:
            raise SendError("permanent", str(status), f"HTTP {status} from Viber")
        payload = answer_json(body)
        code = payload.get("status")
        if code == 0:
            types = payload.get("event_types") or []
            return "ok, event types: " + ", ".join(str(t) for t in types)
        title = str(payload.get("status_message") or "set_webhook refused")
        raise SendError("permanent", str(code), title)

    def secrets(self) -> list[str]:
        return [self.config.auth_token.get_secret_value()]


# --- outbound helpers ------------------------------------------------------------------


def _bodies(content: AnyContent) -> list[dict[str, Any]]:
    """The type-specific part of each send_message body for `content`."""
    if isinstance(content, TextContent):
        return _texts(content.text)
    if isinstance(content, ButtonsContent):
        return _buttons_bodies(content)
    native = _media_bodies(content)
    if native is not None:
        return native
    if isinstance(content, LocationContent):
        where = {"lat": content.latitude, "lon": content.longitude}
        label = "\n".join(p for p in (content.name, content.address) if p)
        return [{"type": "location", "location": where}, *_texts(label)]
    if isinstance(content, ContactsContent):
        return _contact_bodies(content)
    return _texts(to_text(content.model_copy(update={"quick_replies": []})))


def _buttons_bodies(content: ButtonsContent) -> list[dict[str, Any]]:
    # Header and footer have no place of their own (the profile says so): they frame the
    # text. The actions are the message's keyboard (_keyboard).
    text = "\n".join(p for p in (content.header, content.text, content.footer) if p)
    if content.media is not None and content.media.url:
        return [{"type": "picture", "text": "", "media": content.media.url}, *_texts(text)]
    return _texts(text)


def _media_bodies(content: AnyContent) -> list[dict[str, Any]] | None:
    """A media message in Viber's own form, or None when Viber cannot take it as one (it then
    goes as text, with a note: _fallback_note)."""
    if isinstance(content, ImageContent) and content.media.url:
        caption = content.caption or ""
        if len(caption) > MAX_CAPTION:
            return [{"type": "picture", "text": "", "media": content.media.url}, *_texts(caption)]
        return [{"type": "picture", "text": caption, "media": content.media.url}]
    if isinstance(content, VideoContent) and content.media.url and content.media.size:
        # Viber needs the byte size of a video; without it the link goes as text instead.
        body = {"type": "video", "media": content.media.url, "size": content.media.size}
        return [body, *_texts(content.caption or "")]
    if isinstance(content, FileContent | AudioContent) and _file_ok(content.media):
        # Viber has no audio type: audio goes as a file. Size and file_name are required;
        # without them the link goes as text instead.
        body = {
            "type": "file",
            "media": content.media.url,
            "size": content.media.size,
            "file_name": content.media.filename,
        }
        return [body, *_texts(content.caption or "")]
    if isinstance(content, StickerContent) and (content.media.provider_media_id or "").isdigit():
        return [{"type": "sticker", "sticker_id": int(content.media.provider_media_id or 0)}]
    return None


def _contact_bodies(content: ContactsContent) -> list[dict[str, Any]]:
    # One contact card per message: further contacts follow as further messages.
    bodies: list[dict[str, Any]] = []
    for contact in content.contacts:
        card = _contact_card(contact)
        bodies += [card] if card else _texts(to_text(ContactsContent(contacts=[contact])))
    return bodies


def _fallback_note(content: AnyContent, bodies: list[dict[str, Any]]) -> str | None:
    """Why media went as a text link (kept in the message history), or None."""
    if not bodies or bodies[0]["type"] != "text":
        return None
    return _FALLBACK_NOTES.get(content.type)


_FILE_NOTE = (
    " sent as a text link: Viber needs its size and file name"
    f" (media.size, media.filename of at most {MAX_FILE_NAME} characters)"
)
_FALLBACK_NOTES = {
    "video": "video sent as a text link: Viber needs its size in bytes (media.size)",
    "file": "file" + _FILE_NOTE,
    "audio": "audio" + _FILE_NOTE,
    "sticker": "sticker sent as text: Viber needs a numeric sticker id (media.provider_media_id)",
    "image": "image sent as text: Viber needs a public URL (media.url)",
}


def _texts(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": chunk} for chunk in split_text(text, MAX_TEXT)] if text else []


def _file_ok(media: Media) -> bool:
    return bool(
        media.url and media.size and media.filename and len(media.filename) <= MAX_FILE_NAME
    )


def _contact_card(contact: Contact) -> dict[str, Any] | None:
    """Viber's contact message holds a name and one phone number; richer cards go as text."""
    name = contact.name.formatted_name
    extra = contact.emails or contact.addresses or contact.urls or contact.org or contact.birthday
    if len(contact.phones) != 1 or extra or len(name) > MAX_CONTACT_NAME:
        return None
    phone = contact.phones[0].phone
    if len(phone) > MAX_CONTACT_PHONE:
        return None
    return {"type": "contact", "contact": {"name": name, "phone_number": phone}}


ADAPTER = ViberAdapter
