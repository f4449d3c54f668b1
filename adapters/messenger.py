"""Facebook Messenger Platform (Send API + Page webhooks).

Webhooks: https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events
Send API: https://developers.facebook.com/docs/messenger-platform/reference/send-api/
Window:   https://developers.facebook.com/docs/messenger-platform/send-messages/message-tags
Errors:   https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import SecretStr

from adapters import messenger_rich as rich
from adapters.base import (
    AddressForm,
    Admission,
    ErrorCategory,
    ParsedEvent,
    PayloadError,
    ProviderRequest,
    SendContext,
    SendError,
    answer_json,
    json_object,
    newest_time,
    provider_id,
    request_key,
    retry_after_seconds,
)
from adapters.meta import (
    GraphAdapter,
    GraphConfig,
    graph_error,
    meta_seconds,
    meta_time,
)
from gateway.downgrade.profile import (
    ButtonsProfile,
    CarouselProfile,
    Profile,
    QuickRepliesProfile,
)
from gateway.schema import (
    ChannelRef,
    EventDraft,
    MessageBody,
    Party,
    Postback,
    Reaction,
    Referral,
    Status,
    System,
    Unsupported,
)
from gateway.schema.content import (
    AudioContent,
    FileContent,
    ImageContent,
    LocationContent,
    Media,
    StickerContent,
    TextContent,
    VideoContent,
)
from gateway.schema.content import Content as AnyContent

MAX_TEXT = rich.MAX_TEXT  # message.text: 2000 characters (link in messenger_rich)
# Standard messaging window and the HUMAN_AGENT tag's 7 days:
# https://developers.facebook.com/docs/messenger-platform/send-messages/message-tags
WINDOW_SECONDS = 24 * 3600
HUMAN_AGENT_SECONDS = 7 * 24 * 3600
MESSAGE_TAGS = frozenset(
    {"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"}
)

# Choices carried natively: postback buttons and text quick replies; URL and call buttons too.
BUTTON_KINDS = frozenset({"reply", "postback", "link", "call"})

# Everything Messenger shows natively; the engine renders the rest another way. Limits:
CAPABILITIES = Profile(
    channel="messenger",
    text_max=MAX_TEXT,
    # Postback button and quick reply payloads: "1000 character limit"
    # https://developers.facebook.com/docs/messenger-platform/reference/buttons/postback
    payload_max=1000,
    # Attachments by URL or attachment_id (max 25 MB per file, unverified); a sticker goes as
    # its image: https://developers.facebook.com/docs/messenger-platform/send-messages#sending_attachments
    media=frozenset({"image", "video", "audio", "file", "sticker"}),
    # Attachments carry no caption: the engine sends any caption as a text part of its own.
    caption_max=0,
    # Button template: text "UTF-8-encoded text of up to 640 characters", "Set of 1-3 buttons",
    # no header, footer or image:
    # https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/template/button
    # Button titles "20 character limit" (postback, URL and call buttons):
    # https://developers.facebook.com/docs/messenger-platform/reference/buttons/postback
    # https://developers.facebook.com/docs/messenger-platform/reference/buttons/url
    # https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/buttons/call
    buttons=ButtonsProfile(max_actions=3, label_max=20, text_max=640, kinds=BUTTON_KINDS),
    # "A maximum of 13 quick replies", title "20 character limit"; content_type text only:
    # the location quick reply was deprecated on July 29, 2019 and removed for all versions
    # on October 29, 2019 (so location_request stays off and is asked for in text):
    # https://developers.facebook.com/docs/messenger-platform/reference/buttons/quick-replies/
    quick_replies=QuickRepliesProfile(max_items=13, label_max=20),
    # Generic template: "Maximum of 10 elements", title and subtitle "80 character limit",
    # "Maximum of 3 buttons per element":
    # https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/template/generic
    carousel=CarouselProfile(
        max_cards=10,
        title_max=80,
        description_max=80,
        max_actions=3,
        label_max=20,
        kinds=BUTTON_KINDS,
    ),
    # No native list (the generic and button templates are the structured messages the
    # template docs list; the old list template is not relied on): lists become quick
    # replies, else numbered text.
    list=None,
    location_request=False,
    window_hours=WINDOW_SECONDS / 3600,
    notes={
        "sticker": "sent as an image attachment (the Send API has no sticker by id)",
        "location": "no native send: a text with a maps link",
        "location_request": "location quick reply removed in 2019: a text prompt",
        "list": "no native list: quick replies, else numbered text",
        "buy": "a URL button to the payment link",
        "window": "outside 24 h only with options.messaging_tag (HUMAN_AGENT up to 7 days)",
    },
)

# Error codes: https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes
RETRY_CODES = frozenset({1200, 2, 4, 613})
# (code, subcode) pairs that override the code alone.
RETRY_PAIRS = frozenset({(4, 2018354), (9, 2018352), (2, 2018344)})
PERMANENT_PAIRS = frozenset({(1, 1357046)})
# 551 "This person isn't available right now": that send fails, and no more. Messenger has
# no unsubscribe webhook; STOP NOTIFICATIONS (messaging_optins) stops marketing messages only,
# so nothing sets a lasting opt-out here (gateway/consent.py).
# https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_optins
UNREACHABLE_CODES = frozenset({551})
UNREACHABLE_PAIRS = frozenset({(100, 2018001)})  # no matching user found
RETRY_GENERIC = frozenset({1})  # "API Unknown": possibly temporary downtime

_ENVELOPE = frozenset({"sender", "recipient", "timestamp"})


class MessengerConfig(GraphConfig):
    routed_by = "page_id"

    type: Literal["messenger"]
    api_base_url: str = "https://graph.facebook.com/v21.0"
    # 300 calls/s per Page for text but 10/s for audio and video, and more than 40 msg/s
    # triggers high-volume limits (Messenger Platform rate limiting): stay well below.
    rate_limit_per_second: float = 40.0
    page_id: str
    page_access_token: SecretStr


def error_category(code: int, subcode: int | None = None) -> ErrorCategory:
    pair = (code, subcode)
    if pair in RETRY_PAIRS:
        return "retry"
    if pair in UNREACHABLE_PAIRS or code in UNREACHABLE_CODES:
        return "unreachable"
    if pair in PERMANENT_PAIRS:
        return "permanent"
    if code in RETRY_CODES or code in RETRY_GENERIC:
        return "retry"
    return "permanent"


def _hashed(prefix: str, item: Any) -> str:
    data = json.dumps(item, sort_keys=True, separators=(",", ":"))
    return f"{prefix}:" + hashlib.sha256(data.encode()).hexdigest()


def _kind(item: dict[str, Any]) -> str:
    """The event an item carries: its first key besides the sender/recipient envelope."""
    if "message" in item:
        if not isinstance(item["message"], dict):
            raise PayloadError("message is not an object")
        return "echo" if item["message"].get("is_echo") else "message"
    for key in ("postback", "referral", "optin", "reaction", "delivery", "read"):
        if key in item:
            return key
    return next((k for k in item if k not in _ENVELOPE), "unknown")


def _attachments(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The attachments as distinct parts; a sticker sent both as `sticker` and `image` (the
    2026 transition) counts once."""
    parts: list[dict[str, Any]] = []
    stickers: set[Any] = set()
    for attachment in message.get("attachments") or []:
        if not isinstance(attachment, dict):
            raise PayloadError("message.attachments is not a list of objects")
        payload = attachment.get("payload") or {}
        sticker_id = payload.get("sticker_id") if isinstance(payload, dict) else None
        if sticker_id is not None:
            if sticker_id in stickers:
                continue
            stickers.add(sticker_id)
        parts.append(attachment)
    return parts


def _part_count(message: dict[str, Any]) -> int:
    return max(1, (1 if message.get("text") else 0) + len(_attachments(message)))


def item_keys(item: dict[str, Any]) -> list[str]:
    """The dedupe key of each event `parse` makes from one messaging item, in order."""
    kind = _kind(item)
    sender = (item.get("sender") or {}).get("id")
    if kind in ("message", "echo"):
        message = item["message"]
        mid = message.get("mid")
        first = f"mid:{mid}" if mid else _hashed(kind, item)
        single = kind == "echo" or isinstance(message.get("quick_reply"), dict)
        count = 1 if single else _part_count(message)
        return [first] + [f"{first}:{i}" for i in range(1, count)]
    if kind == "postback" and isinstance(item["postback"], dict) and item["postback"].get("mid"):
        return [f"mid:{item['postback']['mid']}"]
    if kind in ("delivery", "read"):
        receipt = item[kind] if isinstance(item[kind], dict) else {}
        watermark = receipt.get("watermark")
        mids = (receipt.get("mids") or []) if kind == "delivery" else []
        return [f"delivery:{mid}" for mid in mids] + [f"{kind}:{sender}:{watermark}"]
    if kind == "reaction" and isinstance(item["reaction"], dict):
        reaction = item["reaction"]
        return [
            f"reaction:{sender}:{reaction.get('mid')}:{reaction.get('action')}"
            f":{item.get('timestamp')}"
        ]
    return [_hashed(kind, item)]


class MessengerAdapter(GraphAdapter):
    type = "messenger"
    config_model = MessengerConfig
    capabilities = CAPABILITIES
    # The page-scoped id (PSID) webhooks name the user by: digits.
    address = AddressForm(
        r"[0-9]{1,64}",
        "a page-scoped user id (PSID): digits, such as 6291474124214458",
        "https://developers.facebook.com/docs/messenger-platform/reference/send-api/",
    )
    config: MessengerConfig

    def routing_id(self) -> str:
        return self.config.page_id

    # --- inbound -------------------------------------------------------------------
    def dedupe_key(self, body: bytes) -> str:
        return self.admission(body).key

    def admission(self, body: bytes) -> Admission:
        items = _items(_load(body))
        keys = [key for _entry, item, _standby in items for key in item_keys(item)]
        # Each item's `timestamp`, in ms or seconds (meta_time): the events' own times. The
        # entry's `time` is when Meta sent the batch, which says nothing about a replay's age.
        dated = newest_time((item.get("timestamp") for _, item, _ in items), seconds=meta_seconds)
        return Admission(request_key(keys, body), dated)

    def parse(self, body: bytes) -> list[ParsedEvent]:
        events: list[ParsedEvent] = []
        for entry, item, standby in _items(_load(body)):
            drafts = self._item(entry, item)
            if standby:
                drafts = [
                    d.model_copy(
                        update={"channel_data": {**(d.channel_data or {}), "standby": True}}
                    )
                    for d in drafts
                ]
            keys = item_keys(item)
            if len(keys) != len(drafts):  # a bug here would silently drop or merge events
                raise PayloadError(f"{len(drafts)} events but {len(keys)} keys in one item")
            events += [ParsedEvent(d, k) for d, k in zip(drafts, keys, strict=True)]
        return events

    def _channel(self, page_id: str | None) -> ChannelRef:
        channel_id = self.routed_channel_id(page_id)
        return ChannelRef(id=channel_id, type=self.type)

    def _item(self, entry: dict[str, Any], item: dict[str, Any]) -> list[EventDraft]:
        kind = _kind(item)
        sender = _party(item.get("sender"))
        recipient = _party(item.get("recipient"))
        timestamp = meta_time(item.get("timestamp", entry.get("time")))
        if kind in ("delivery", "read"):  # from the user about the page's messages
            page, user = recipient, sender
        elif kind == "echo":  # from the page itself
            page, user = sender, recipient
        else:
            page, user = recipient, sender
        common: dict[str, Any] = {
            "channel": self._channel(page.id if page else str(entry.get("id", ""))),
            "timestamp": timestamp,
        }
        if kind == "message":
            return self._message(item["message"], {**common, "sender": user, "recipient": page})
        if kind == "echo":
            return [self._echo(item["message"], {**common, "sender": page, "recipient": user})]
        if kind in ("delivery", "read"):
            common |= {"sender": page, "recipient": user}
            return self._receipt(kind, _object(item[kind], kind), common)
        common |= {"sender": user, "recipient": page}
        if kind == "postback":
            data = _object(item["postback"], "postback")
            extra = {"referral": _referral(data["referral"])} if data.get("referral") else {}
            postback = Postback(
                payload=str(data.get("payload") or data.get("title") or ""), title=data.get("title")
            )
            if not postback.payload:
                raise PayloadError("postback without a payload or title")
            return [
                EventDraft(
                    type="postback",
                    external_id=data.get("mid"),
                    postback=postback,
                    **common,
                    **extra,
                )
            ]
        if kind == "referral":
            data = _object(item["referral"], "referral")
            return [EventDraft(type="referral", referral=_referral(data), **common)]
        if kind == "reaction":
            data = _object(item["reaction"], "reaction")
            if not data.get("mid"):
                raise PayloadError("reaction without a mid")
            reaction = Reaction(
                emoji=(data.get("emoji") or None) if data.get("action") != "unreact" else None,
                message_external_id=str(data["mid"]),
            )
            extras = {k: data[k] for k in ("action", "reaction") if k in data}
            return [EventDraft(type="reaction", reaction=reaction, channel_data=extras, **common)]
        if kind == "optin":
            data = _object(item["optin"], "optin")
            if user is None and data.get("user_ref"):  # checkbox plugin: no PSID yet
                common["sender"] = Party(id=str(data["user_ref"]))
            status = data.get("notification_messages_status")
            system = System(kind="optin", text=status or data.get("type"))
            return [
                EventDraft(type="system", system=system, channel_data={"optin": data}, **common)
            ]
        # Handovers, policy enforcement, account linking, edits…: kept visible, not dropped.
        system = System(kind=kind)
        return [
            EventDraft(type="system", system=system, channel_data={kind: item.get(kind)}, **common)
        ]

    def _message(self, message: dict[str, Any], common: dict[str, Any]) -> list[EventDraft]:
        mid = message.get("mid")
        reply_to = (message.get("reply_to") or {}).get("mid")
        common = {**common, "external_id": mid}
        if message.get("referral"):
            common["referral"] = _referral(message["referral"])
        quick_reply = message.get("quick_reply")
        if isinstance(quick_reply, dict):
            payload = quick_reply.get("payload") or message.get("text") or ""
            postback = Postback(payload=str(payload), title=message.get("text"), reply_to=reply_to)
            return [EventDraft(type="postback", postback=postback, **common)]
        drafts: list[EventDraft] = []
        if message.get("text"):
            content: AnyContent = TextContent(text=message["text"])
            body = MessageBody(content=content, reply_to=reply_to)
            drafts.append(EventDraft(type="message", message=body, **common))
        for attachment in _attachments(message):
            drafts.append(self._attachment(attachment, reply_to, common))
        if not drafts:
            reason = "message without text or attachments"
            unsupported = Unsupported(provider_type="message", reason=reason)
            drafts.append(
                EventDraft(
                    type="unsupported",
                    unsupported=unsupported,
                    channel_data={"message": message},
                    **common,
                )
            )
        return drafts

    def _attachment(
        self, attachment: dict[str, Any], reply_to: str | None, common: dict[str, Any]
    ) -> EventDraft:
        kind = str(attachment.get("type"))
        payload = attachment.get("payload") if isinstance(attachment.get("payload"), dict) else {}
        assert isinstance(payload, dict)
        url = payload.get("url")
        content: AnyContent | None = None
        if kind in ("image", "video", "audio", "file", "sticker") and url:
            media = Media(url=url)
            if kind == "sticker" or payload.get("sticker_id") is not None:
                content = StickerContent(media=media)
            elif kind == "image":
                content = ImageContent(media=media)
            elif kind == "video":
                content = VideoContent(media=media)
            elif kind == "audio":
                content = AudioContent(media=media)
            else:
                content = FileContent(media=media)
        elif kind == "location" and isinstance(payload.get("coordinates"), dict):
            point = payload["coordinates"]
            content = LocationContent(
                latitude=point["lat"],
                longitude=point["long"],
                name=attachment.get("title"),
                url=attachment.get("url"),
            )
        elif kind == "fallback" and (url or attachment.get("url")):
            # A shared link: https://developers.facebook.com/docs/sharing/web
            link = url or attachment.get("url")
            title = payload.get("title") or attachment.get("title")
            content = TextContent(text=f"{title}\n{link}" if title else str(link))
        extra: dict[str, Any] = {}
        if payload.get("sticker_id") is not None:
            extra["channel_data"] = {"sticker_id": payload["sticker_id"]}
        elif kind == "fallback":
            extra["channel_data"] = {"attachment": attachment}
        if content is None:
            unsupported = Unsupported(
                provider_type=kind, reason=f"attachment type {kind!r} is not supported"
            )
            return EventDraft(
                type="unsupported",
                unsupported=unsupported,
                channel_data={"attachment": attachment},
                **common,
            )
        body = MessageBody(content=content, reply_to=reply_to)
        return EventDraft(type="message", message=body, **common, **extra)

    def _echo(self, message: dict[str, Any], common: dict[str, Any]) -> EventDraft:
        # The page's own send, reported back: never a user message.
        data = {k: message[k] for k in ("mid", "app_id", "metadata") if k in message}
        return EventDraft(
            type="system",
            external_id=message.get("mid"),
            system=System(kind="echo", text=message.get("text")),
            channel_data=data,
            **common,
        )

    def _receipt(
        self, kind: str, receipt: dict[str, Any], common: dict[str, Any]
    ) -> list[EventDraft]:
        state: Literal["delivered", "read"] = "delivered" if kind == "delivery" else "read"
        watermark = meta_time(receipt.get("watermark"))
        mids = (receipt.get("mids") or []) if kind == "delivery" else []
        drafts = [
            EventDraft(
                type="status",
                external_id=str(mid),
                status=Status(external_id=str(mid), state=state),
                **common,
            )
            for mid in mids
        ]
        status = Status(state=state, watermark=watermark)
        drafts.append(EventDraft(type="status", status=status, **common))
        return drafts

    # --- outbound ------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        # Graph takes the Page token as a bearer header: it stays out of URLs and access logs.
        return {"Authorization": f"Bearer {self.config.page_access_token.get_secret_value()}"}

    def render(self, content: AnyContent, context: SendContext) -> list[ProviderRequest]:
        messaging = messaging_fields(context)
        recipient = {"id": context.recipient_id}
        return [
            ProviderRequest(
                "POST",
                "/me/messages",
                json={"recipient": recipient, **messaging, "message": message},
            )
            for message in rich.messages(content)
        ]

    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        payload = answer_json(body)
        if 200 <= status < 300:
            message_id = provider_id(payload.get("message_id"))
            if message_id:
                return message_id
            raise SendError("retry", str(status), "accepted without a message_id")
        code, title, _details = graph_error(payload)
        error = payload.get("error")
        subcode = error.get("error_subcode") if isinstance(error, dict) else None
        subcode = subcode if isinstance(subcode, int) else None
        label = f"{code}/{subcode}" if code and subcode else str(code or status)
        retry_after = retry_after_seconds(headers)
        category = error_category(code, subcode) if code else "permanent"
        if status == 429 or status >= 500:
            category = "retry"
        raise SendError(category, label, title, retry_after=retry_after)

    def secrets(self) -> list[str]:
        return [
            self.config.page_access_token.get_secret_value(),
            self.config.app_secret.get_secret_value(),
            self.config.verify_token.get_secret_value(),
        ]


def messaging_fields(context: SendContext) -> dict[str, str]:
    """`messaging_type` (and `tag`) for a send now, or SendError when the window is closed."""
    age = context.now - context.last_inbound_at if context.last_inbound_at is not None else None
    if age is not None and age <= WINDOW_SECONDS:
        return {"messaging_type": "RESPONSE"}
    tag = context.messaging_tag
    since = f"{age / 3600:.0f} hours ago" if age is not None else "never"
    if tag is None:
        raise SendError(
            "permanent",
            "window_closed",
            "Messenger's 24-hour standard messaging window is closed (the recipient last wrote"
            f" {since}); free-form messages are only allowed within 24 hours of the user's last"
            " message. Outside it, set options.messaging_tag to a message tag for a permitted"
            " non-promotional update (" + ", ".join(sorted(MESSAGE_TAGS)) + "; HUMAN_AGENT"
            " up to 7 days after the user's last message).",
        )
    if tag not in MESSAGE_TAGS:
        raise SendError(
            "permanent",
            "invalid_tag",
            f"{tag!r} is not a Messenger message tag; use one of "
            + ", ".join(sorted(MESSAGE_TAGS)),
        )
    if tag == "HUMAN_AGENT" and (age is None or age > HUMAN_AGENT_SECONDS):
        raise SendError(
            "permanent",
            "window_closed",
            "the HUMAN_AGENT tag only allows replies up to 7 days after the user's last message"
            f" (the recipient last wrote {since}); wait for the user to write again.",
        )
    return {"messaging_type": "MESSAGE_TAG", "tag": tag}


def _party(value: Any) -> Party | None:
    if isinstance(value, dict) and value.get("id") is not None:
        return Party(id=str(value["id"]))
    return None


def _referral(data: Any) -> Referral:
    data = _object(data, "referral")
    ads = data.get("ads_context_data") if isinstance(data.get("ads_context_data"), dict) else {}
    source = data.get("source")
    return Referral(
        source="ad" if source == "ADS" else (str(source).lower() if source else None),
        source_type=data.get("type"),
        source_id=str(data["ad_id"]) if data.get("ad_id") else None,
        source_url=data.get("referer_uri"),
        ref=data.get("ref"),
        headline=ads.get("ad_title"),
        media_url=ads.get("photo_url") or ads.get("video_url"),
    )


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{name} is not an object")
    return value


def _load(body: bytes) -> dict[str, Any]:
    payload = json_object(body)
    if payload.get("object") != "page":
        raise PayloadError(f"not a Messenger webhook (object={payload.get('object')!r})")
    return payload


def _list(value: Any, name: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PayloadError(f"{name} is not a list of objects")
    return value


def _items(payload: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], bool]]:
    """(entry, item, is_standby) for every messaging item, in order."""
    found = []
    for entry in _list(payload.get("entry"), "entry"):
        found += [(entry, i, False) for i in _list(entry.get("messaging"), "entry[].messaging")]
        found += [(entry, i, True) for i in _list(entry.get("standby"), "entry[].standby")]
    return found


ADAPTER = MessengerAdapter
