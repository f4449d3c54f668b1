"""LINE Messaging API.

Webhooks:  https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects
Signature: https://developers.line.biz/en/docs/messaging-api/verify-webhook-signature/
Send API:  https://developers.line.biz/en/reference/messaging-api/#send-reply-message
           https://developers.line.biz/en/reference/messaging-api/#send-push-message
Retries:   https://developers.line.biz/en/docs/messaging-api/retrying-api-request/
Errors:    https://developers.line.biz/en/reference/messaging-api/#error-responses

One request holds up to five message objects. Within about a minute of a user's event the
free reply API answers with that event's single-use reply token; after that (or for a second
request of the same message) the push API is used, with a retry key derived from the message
id so that a retried push is never delivered twice.

Choices where LINE and the schema differ:
- Stickers are named "packageId:stickerId" in `provider_media_id` (ids also in channel_data);
  a StickerContent named that way is sent back as a native sticker.
- Media sent by users has no URL: `provider_media_id` is the message id, for the content API.
- Audio needs a duration that Media does not carry: see `LineConfig.audio_duration_ms`.
- Files cannot be sent by bots: the file name and link go as text.
- follow/unfollow are subscription events (the store then refuses sends to a blocked user);
  their `keyword` names the LINE event, as the only "word" that changed the subscription.
- join/leave/member events have no user: the sender is the group or room itself.
- Rich parts (quick replies on any message, buttons and carousel templates, the location
  quick reply) are rendered by `adapters.line.render`; LINE has no list message.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError

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
    Reading,
    SendContext,
    SendError,
    answer_json,
    json_object,
    newest_time,
    provider_id,
    request_key,
    retry_after_seconds,
    signatures_match,
)
from adapters.line import render as rich
from adapters.line.parse import event_key, parse_event
from adapters.line.payloads import Webhook
from adapters.line.render import MAX_TEXT
from adapters.payload_errors import describe, json_kind
from adapters.webhook_parts import PartReader
from gateway.downgrade.profile import (
    ButtonsProfile,
    CarouselProfile,
    Profile,
    QuickRepliesProfile,
)
from gateway.schema import (
    ChannelRef,
    Party,
)
from gateway.schema.content import Content as AnyContent

SIGNATURE_HEADER = "X-Line-Signature"
REPLY_PATH = "/v2/bot/message/reply"
PUSH_PATH = "/v2/bot/message/push"
WEBHOOK_ENDPOINT_PATH = "/v2/bot/channel/webhook/endpoint"
RETRY_KEY_HEADER = "X-Line-Retry-Key"

# Message objects per reply/push request (OpenAPI `maxItems: 5`):
# https://developers.line.biz/en/reference/messaging-api/#send-push-message
MAX_MESSAGES_PER_REQUEST = 5
# The reply token must be used "within one minute" of the webhook; LINE does not guarantee
# it later. 50 s leaves a margin for clock skew and the send itself:
# https://developers.line.biz/en/reference/messaging-api/#send-reply-message
REPLY_TOKEN_SECONDS = 50.0

# Retry keys are UUIDs we derive from (gateway message id, request index): the same request
# of the same message always carries the same key, so LINE accepts it at most once.
RETRY_KEY_NAMESPACE = uuid.UUID("6f1d2c1e-1a53-4a8e-9a43-6c0f3b7e5a21")


# What `messages` renders natively; the downgrade engine turns everything else into text.
# Rich forms (quick replies, buttons and carousel templates) are rendered in `render.py`,
# whose constants carry the doc link of each limit.
CAPABILITIES = Profile(
    channel="line",
    text_max=MAX_TEXT,
    # Postback `data` (the payload a tap brings back), max 300 characters:
    # https://developers.line.biz/en/reference/messaging-api/#postback-action
    payload_max=rich.MAX_POSTBACK_DATA,
    caption_max=MAX_TEXT,  # LINE media have no caption: it follows as a text message
    media=frozenset({"image", "video", "audio", "sticker"}),  # no file sends for bots
    location=True,
    # Buttons template: 4 actions, label 20, title 40, text 160 (60 with a title or image;
    # `render.py` sends the rest first), thumbnail image:
    # https://developers.line.biz/en/reference/messaging-api/#buttons
    buttons=ButtonsProfile(
        max_actions=rich.MAX_BUTTONS,
        label_max=rich.MAX_LABEL,
        text_max=rich.MAX_BUTTONS_TEXT,
        kinds=frozenset({"reply", "postback", "link", "call"}),
        header_max=rich.MAX_TITLE,
        media=True,
    ),
    # Quick reply: 13 items, label 20, on any message; the location action opens the
    # location picker: https://developers.line.biz/en/reference/messaging-api/#quick-reply
    # https://developers.line.biz/en/reference/messaging-api/#location-action
    quick_replies=QuickRepliesProfile(
        max_items=rich.MAX_QUICK_REPLIES,
        label_max=rich.MAX_LABEL,
        kinds=frozenset({"reply", "postback", "location_request"}),
    ),
    # No list message: https://developers.line.biz/en/reference/messaging-api/#message-objects
    list=None,
    # Carousel template: 10 columns, 3 actions each and the same number in every column,
    # title 40, text 60 (we always show a title with a text; 120 without one):
    # https://developers.line.biz/en/reference/messaging-api/#carousel
    carousel=CarouselProfile(
        max_cards=rich.MAX_COLUMNS,
        title_max=rich.MAX_TITLE,
        description_max=rich.MAX_TEXT_WITH_TITLE_OR_IMAGE,
        max_actions=rich.MAX_COLUMN_ACTIONS,
        label_max=rich.MAX_LABEL,
        kinds=frozenset({"reply", "postback", "link", "call"}),
        same_action_count=True,
    ),
    location_request=True,  # the location quick-reply action
    templates=False,  # LINE has no pre-approved templates: a template's fallback is sent
    messages_per_request=MAX_MESSAGES_PER_REQUEST,
    notes={
        "audio": "native only with `audio_duration_ms` configured (LINE needs a duration)",
        "reply": f"reply token used within {REPLY_TOKEN_SECONDS:g} s, else push",
        "carousel": "cards mixing images and none go as one buttons template per card",
    },
)


class LineConfig(ChannelConfig):
    type: Literal["line"]
    api_base_url: str = "https://api.line.me"
    # Far below LINE's 2,000 requests/s per endpoint; the development guidelines ask bots not
    # to burst: https://developers.line.biz/en/reference/messaging-api/#rate-limits
    rate_limit_per_second: float = 100.0
    channel_secret: SecretStr
    channel_access_token: SecretStr
    # LINE audio messages need their length in ms and Media carries none. When this is set,
    # audio is sent natively with this length shown to the user; when unset (the default),
    # audio goes as a text link rather than with a made-up length.
    audio_duration_ms: int | None = Field(default=None, gt=0)


def signature(channel_secret: str, body: bytes) -> str:
    """x-line-signature: base64(HMAC-SHA256(channel secret, raw body))."""
    digest = hmac.digest(channel_secret.encode(), body, "sha256")
    return base64.b64encode(digest).decode()


def retry_key(message_id: str, index: int) -> str:
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, f"{message_id}:{index}"))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


# `unfollow` ("blocked") is the opt-out and `follow` (added or unblocked) its end; so is the
# user writing to the account in their own chat with it. Not in a group: a user who blocked
# the account may still talk in a group it is in.
# https://developers.line.biz/en/reference/messaging-api/#unfollow-event
# https://developers.line.biz/en/reference/messaging-api/#follow-event
# https://developers.line.biz/en/reference/messaging-api/#source-user
OPT_INS = (
    OptIn("message", ("source_type", "user")),
    OptIn("postback", ("source_type", "user")),
)


class LineAdapter(Adapter):
    type = "line"
    config_model = LineConfig
    signature_header = SIGNATURE_HEADER
    # LINE batches events (`events[]`) and publishes no size or count limit for a webhook:
    # https://developers.line.biz/en/reference/messaging-api/#request-body
    # A text event is under 35 kB even at 5,000 characters of escaped JSON; 1 MB holds dozens.
    max_body_bytes = 1024 * 1024
    capabilities = CAPABILITIES
    opt_ins = OPT_INS
    # LINE sends no delivery or read receipts to bots: no webhook event reports them.
    # https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects
    reports_delivery = False
    # A push goes to a userId, groupId or roomId: U, C or R and 32 hex digits.
    address = AddressForm(
        r"[UCR][0-9a-f]{32}",
        "a userId, groupId or roomId: U, C or R and 32 hex digits, such as"
        " U8189cf6745fc0d808977bdb0b9f22995",
        "https://developers.line.biz/en/docs/messaging-api/getting-user-ids/",
    )
    config: LineConfig

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        if not getattr(self.config, "audio_duration_ms", None):
            # Without a duration to show, audio is better as the engine's text link.
            self.profile = replace(self.profile, media=self.profile.media - {"audio"})

    # --- inbound -------------------------------------------------------------------
    def verify(self, request: InboundRequest) -> bool:
        provided = _header(request.headers, SIGNATURE_HEADER) or ""
        expected = signature(self.config.channel_secret.get_secret_value(), request.body)
        return signatures_match(provided, expected)

    def dedupe_key(self, body: bytes) -> str:
        return self.admission(body).key

    def admission(self, body: bytes) -> Admission:
        listed = _events(json_object(body))
        if not listed:
            # The console's "Verify" button and LINE's connectivity checks: `events: []`.
            return Admission("verify:" + hashlib.sha256(body).hexdigest())
        # An event that is no object has no key: skipped, so the request is stored and the
        # normaliser keeps that event failed alone.
        keyed = [e for e in listed if isinstance(e, dict)]
        keys = [event_key(e) for e in keyed]
        # `events[].timestamp`: epoch ms; a redelivery keeps the event's own, so an old one
        # is a replay (deliveryContext.isRedelivery says only that LINE tried before).
        dated = newest_time((e.get("timestamp") for e in keyed), 1000)
        return Admission(request_key(keys, body), dated)

    def parse(self, body: bytes) -> list[ParsedEvent]:
        return self.read(body, None).all_events()

    def read(
        self, body: bytes, received_at: datetime | None, only: frozenset[str] | None = None
    ) -> Reading:
        """Each member of `events[]` read on its own: an event that cannot be read fails
        alone, kept with its path (`events[1]`) for a replay; the others' events are stored."""
        payload = json_object(body)
        listed = _events(payload)
        destination = payload.get("destination")
        if destination is not None and not isinstance(destination, str):
            # The envelope's model names what is wrong; each event is read by `parse_event`.
            try:
                Webhook.model_validate(payload)
            except ValidationError as exc:
                raise PayloadError(f"invalid payload: {describe(exc)}") from None
        bot = self._bot(destination) if destination else None
        channel = self._channel

        def read_event(raw: Any, path: str) -> list[ParsedEvent]:
            if not isinstance(raw, dict):
                raise PayloadError(f"{path}: expected an object, got {json_kind(raw)}")
            return [parse_event(raw, index, channel, bot)]

        reader = PartReader(only)
        for index, raw in enumerate(listed):
            reader.read_part(f"events[{index}]", raw, read_event)
        return reader.reading()

    # Built once, as Viber's reader does: a schema model costs a validation each time, and
    # every webhook of a channel names the same channel and (nearly always) the same bot.
    @functools.cached_property
    def _channel(self) -> ChannelRef:
        return ChannelRef(id=self.config.id, type=self.type)

    @functools.lru_cache(maxsize=4)  # noqa: B019 - one adapter per channel, a few bot ids
    def _bot(self, destination: str) -> Party:
        return Party(id=destination)

    # --- outbound ------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.channel_access_token.get_secret_value()}"}

    def render(self, content: AnyContent, context: SendContext) -> list[ProviderRequest]:
        return self.render_parts([content], context)

    def render_parts(self, parts: list[AnyContent], context: SendContext) -> list[ProviderRequest]:
        """Every part's message objects, five to a request, in order.

        Only the first request may spend the reply token (single use); every push carries a
        retry key from (message id, request index), the same on each attempt.
        """
        messages = rich.gather_quick_replies([m for part in parts for m in self.messages(part)])
        groups = [
            messages[i : i + MAX_MESSAGES_PER_REQUEST]
            for i in range(0, len(messages), MAX_MESSAGES_PER_REQUEST)
        ]
        requests = []
        for index, group in enumerate(groups):
            if index == 0 and _can_reply(context):
                assert context.reply_token is not None
                body = {"replyToken": context.reply_token, "messages": group}
                requests.append(
                    ProviderRequest("POST", REPLY_PATH, json=body, uses_reply_token=True)
                )
                continue
            requests.append(
                ProviderRequest(
                    "POST",
                    PUSH_PATH,
                    json={"to": context.recipient_id, "messages": group},
                    headers={RETRY_KEY_HEADER: retry_key(context.message_id, index)},
                )
            )
        return requests

    def messages(self, content: AnyContent) -> list[dict[str, Any]]:
        """The LINE message objects for `content`, in order (any number; grouped by 5 later)."""
        return rich.messages(content, self.config.audio_duration_ms)

    def webhook_registration(self, url: str) -> ProviderRequest:
        # https://developers.line.biz/en/reference/messaging-api/#set-webhook-endpoint-url
        return ProviderRequest("PUT", WEBHOOK_ENDPOINT_PATH, json={"endpoint": url})

    def read_registration_response(self, status: int, body: bytes) -> str:
        if 200 <= status < 300:
            return f"HTTP {status}"
        message, details = _error(answer_json(body))
        raise SendError("permanent", str(status), _describe(message, details))

    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        payload = answer_json(body)
        request_id = _header(headers, "x-line-request-id")
        if 200 <= status < 300:
            return (
                _sent_id(payload)
                or request_id
                or _raise(SendError("retry", str(status), "accepted without a message id"))
            )
        message, details = _error(payload)
        text = _describe(message, details)
        accepted = _header(headers, "x-line-accepted-request-id")
        if status == 409 and accepted:
            # The retry key was accepted before: the message went out on an earlier attempt.
            return _sent_id(payload) or accepted
        if status == 400 and "reply token" in message.lower():
            # Expired or used: the dispatcher consumed the token, so the retry goes by push.
            raise SendError("retry", "invalid_reply_token", text)
        if status == 429:
            if "monthly limit" in message.lower():
                raise SendError("permanent", "monthly_limit", text)
            raise SendError("retry", "429", text, retry_after=retry_after_seconds(headers))
        if status >= 500:
            raise SendError("retry", str(status), text, retry_after=retry_after_seconds(headers))
        raise SendError("permanent", str(status), text)

    def secrets(self) -> list[str]:
        return [
            self.config.channel_secret.get_secret_value(),
            self.config.channel_access_token.get_secret_value(),
        ]


def _events(payload: dict[str, Any]) -> list[Any]:
    """The raw members of `events[]`, each read on its own."""
    listed = payload.get("events")
    if not isinstance(listed, list):
        raise PayloadError("not a LINE webhook (no events list)")
    return listed


def _can_reply(context: SendContext) -> bool:
    return (
        context.reply_token is not None
        and context.reply_token_at is not None
        and context.now - context.reply_token_at < REPLY_TOKEN_SECONDS
    )


def _raise(error: SendError) -> str:
    raise error


def _sent_id(payload: dict[str, Any]) -> str | None:
    sent = payload.get("sentMessages")
    if isinstance(sent, list) and sent and isinstance(sent[0], dict):
        return provider_id(sent[0].get("id"))
    return None


def _error(payload: dict[str, Any]) -> tuple[str, list[str]]:
    """(message, ["property: message", ...]) from a LINE error body."""
    listed = payload.get("details")
    details = [
        f"{d.get('property')}: {d.get('message')}" if d.get("property") else str(d.get("message"))
        for d in (listed if isinstance(listed, list) else [])
        if isinstance(d, dict)
    ]
    return str(payload.get("message") or "unknown error"), details


def _describe(message: str, details: list[str]) -> str:
    return f"{message} ({'; '.join(details)})" if details else message


ADAPTER = LineAdapter
