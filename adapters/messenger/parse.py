"""Messenger webhooks → events: the typed payloads (payloads.py) read item by item.

Each of `entry[]` and its `messaging[]` / `standby[]` items is read on its own
(adapters/webhook_parts.py): one that cannot be read fails alone, with its JSON path.
https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import ValidationError

from adapters.base import (
    Admission,
    ParsedEvent,
    PayloadError,
    Reading,
    json_object,
    newest_time,
    request_key,
)
from adapters.messenger import payloads as fb
from adapters.meta_graph import meta_seconds, meta_time
from adapters.payload_errors import validation_reason
from adapters.webhook_parts import PartReader, adapted
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

ChannelFor = Callable[[str | None], ChannelRef]

_ENVELOPE = frozenset({"sender", "recipient", "timestamp"})
_MEDIA: dict[str, type[ImageContent | VideoContent | AudioContent | FileContent]] = {
    "image": ImageContent,
    "video": VideoContent,
    "audio": AudioContent,
    "file": FileContent,
}


def webhook(body: bytes) -> fb.Webhook:
    """The envelope, or PayloadError: a body that is not a Messenger webhook fails as a whole."""
    try:
        envelope = adapted(fb.WEBHOOK, json_object(body))
    except ValidationError as exc:
        raise PayloadError(validation_reason(exc)) from None
    if envelope.get("object") != "page":
        raise PayloadError(f"not a Messenger webhook (object={envelope.get('object')!r})")
    return envelope


def _raw_items(envelope: fb.Webhook) -> list[dict[str, Any]]:
    """Every messaging item that is an object, standby ones too (the acknowledgement path
    keys what it can read; the normaliser says what is wrong with the rest)."""
    found: list[dict[str, Any]] = []
    for entry in envelope.get("entry") or ():
        for field in ("messaging", "standby"):
            items = entry.get(field) if isinstance(entry, dict) else None
            if isinstance(items, list):
                found += [item for item in items if isinstance(item, dict)]
    return found


def admission(body: bytes) -> Admission:
    items = _raw_items(webhook(body))
    keys: list[str] = []
    for item in items:
        try:
            keys += item_keys(item)
        except PayloadError:  # an item the normaliser will keep as a failed part
            continue
    # Each item's `timestamp`, in ms or seconds (meta_time): the events' own times. The
    # entry's `time` is when Meta sent the batch, which says nothing about a replay's age.
    dated = newest_time((item.get("timestamp") for item in items), seconds=meta_seconds)
    return Admission(request_key(keys, body), dated)


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


def _sticker_id(attachment: Any) -> Any:
    payload = attachment.get("payload") if isinstance(attachment, dict) else None
    return payload.get("sticker_id") if isinstance(payload, dict) else None


def _distinct(attachments: list[Any]) -> list[int]:
    """The indexes of the attachments that are distinct parts; a sticker sent both as
    `sticker` and `image` (the 2026 transition) counts once."""
    kept: list[int] = []
    stickers: set[Any] = set()
    for i, attachment in enumerate(attachments):
        sticker_id = _sticker_id(attachment)
        if sticker_id is not None:
            if sticker_id in stickers:
                continue
            stickers.add(sticker_id)
        kept.append(i)
    return kept


def _part_count(message: dict[str, Any]) -> int:
    attachments = message.get("attachments")
    count = len(_distinct(attachments)) if isinstance(attachments, list) else 0
    return max(1, (1 if message.get("text") else 0) + count)


def item_keys(item: dict[str, Any]) -> list[str]:
    """The dedupe key of each event an item becomes, in order."""
    kind = _kind(item)
    party = item.get("sender")
    sender = party.get("id") if isinstance(party, dict) else None
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


class WebhookReader:
    """Reads one webhook body for one Messenger channel instance."""

    def __init__(self, channel_for: ChannelFor) -> None:
        self.channel_for = channel_for

    def read(self, body: bytes, only: frozenset[str] | None = None) -> Reading:
        reader = PartReader(only)
        for i, raw_entry in enumerate(webhook(body).get("entry") or ()):
            entry = reader.typed(fb.ENTRY, f"entry[{i}]", raw_entry)
            if entry is None:
                continue
            parts = (("messaging", entry.get("messaging")), ("standby", entry.get("standby")))
            for field, items in parts:
                read_item = functools.partial(self._events, entry, field == "standby")
                for k, raw in enumerate(items or ()):
                    reader.read_typed(f"entry[{i}].{field}[{k}]", raw, fb.MESSAGING, read_item)
        return reader.reading()

    def _events(
        self, entry: fb.Entry, standby: bool, item: fb.Messaging, raw: dict[str, Any], path: str
    ) -> list[ParsedEvent]:
        drafts = self._item(entry, item, raw, path)
        if standby:
            drafts = [
                d.model_copy(update={"channel_data": {**(d.channel_data or {}), "standby": True}})
                for d in drafts
            ]
        keys = item_keys(raw)
        if len(keys) != len(drafts):  # a bug here would silently drop or merge events
            raise PayloadError(f"{len(drafts)} events but {len(keys)} keys in one item")
        return [ParsedEvent(d, k) for d, k in zip(drafts, keys, strict=True)]

    def _item(
        self, entry: fb.Entry, item: fb.Messaging, raw: dict[str, Any], path: str
    ) -> list[EventDraft]:
        kind = _kind(raw)
        # The Page sends an echo and receives everything else (receipts too: from the user
        # about the Page's messages).
        if kind == "echo":
            page, user = _page(item.get("sender")), _party(item.get("recipient"))
        else:
            page, user = _page(item.get("recipient")), _party(item.get("sender"))
        given = item["timestamp"] if "timestamp" in item else entry.get("time")
        try:
            timestamp = meta_time(given)
        except PayloadError as exc:
            raise PayloadError(f"{path}.timestamp: {exc}") from None
        channel = self.channel_for(page.id if page else str(entry.get("id") or ""))
        common: dict[str, Any] = {"channel": channel, "timestamp": timestamp}
        if kind == "echo":
            message = _present(item.get("message"), f"{path}.message")
            return [_echo(message, raw["message"], {**common, "sender": page, "recipient": user})]
        if kind in ("delivery", "read"):
            receipt = _present(item.get(kind), f"{path}.{kind}")
            return _receipt(kind, receipt, {**common, "sender": page, "recipient": user})
        common |= {"sender": user, "recipient": page}
        if kind == "message":
            message = _present(item.get("message"), f"{path}.message")
            return _message(message, raw["message"], common)
        return [self._other(kind, item, raw, common, path)]

    def _other(
        self, kind: str, item: fb.Messaging, raw: dict[str, Any], common: dict[str, Any], path: str
    ) -> EventDraft:
        if kind == "postback":
            posted: fb.Postback = _present(item.get("postback"), f"{path}.postback")
            referral = posted.get("referral")
            extra = {"referral": _referral(referral)} if referral else {}
            title = posted.get("title")
            postback = Postback(payload=str(posted.get("payload") or title or ""), title=title)
            if not postback.payload:
                raise PayloadError(f"{path}.postback: without a payload or title")
            return EventDraft(
                type="postback", external_id=posted.get("mid"), postback=postback, **common, **extra
            )
        if kind == "referral":
            data_ref = _present(item.get("referral"), f"{path}.referral")
            return EventDraft(type="referral", referral=_referral(data_ref), **common)
        if kind == "reaction":
            return _reaction(_present(item.get("reaction"), f"{path}.reaction"), common, path)
        if kind == "optin":
            optin: fb.Optin = _present(item.get("optin"), f"{path}.optin")
            user_ref = optin.get("user_ref")
            if common["sender"] is None and user_ref:  # checkbox plugin: no PSID yet
                common["sender"] = Party(id=user_ref)
            status = optin.get("notification_messages_status") or optin.get("type")
            system = System(kind="optin", text=status)
            data = {"optin": raw["optin"]}
            return EventDraft(type="system", system=system, channel_data=data, **common)
        # Handovers, policy enforcement, account linking, edits…: kept visible, not dropped.
        return EventDraft(
            type="system", system=System(kind=kind), channel_data={kind: raw.get(kind)}, **common
        )


def _present(value: Any, where: str) -> Any:
    """A part the item's kind says is there: PayloadError naming it when it is null."""
    if value is None:
        raise PayloadError(f"{where}: expected an object, got null")
    return value


def _reaction(data: fb.Reaction, common: dict[str, Any], path: str) -> EventDraft:
    mid = data.get("mid")
    if not mid:
        raise PayloadError(f"{path}.reaction.mid: missing")
    reaction = Reaction(
        emoji=(data.get("emoji") or None) if data.get("action") != "unreact" else None,
        message_external_id=mid,
    )
    sent: Mapping[str, Any] = data
    extras = {k: sent[k] for k in ("action", "reaction") if k in sent}
    return EventDraft(type="reaction", reaction=reaction, channel_data=extras, **common)


def _message(message: fb.Message, raw: dict[str, Any], common: dict[str, Any]) -> list[EventDraft]:
    replied = message.get("reply_to")
    reply_to = replied.get("mid") if replied else None
    common = {**common, "external_id": message.get("mid")}
    if referral := message.get("referral"):
        common["referral"] = _referral(referral)
    text = message.get("text")
    if (quick_reply := message.get("quick_reply")) is not None:
        payload = quick_reply.get("payload") or text or ""
        postback = Postback(payload=payload, title=text, reply_to=reply_to)
        return [EventDraft(type="postback", postback=postback, **common)]
    drafts: list[EventDraft] = []
    if text:
        body = MessageBody(content=TextContent(text=text), reply_to=reply_to)
        drafts.append(EventDraft(type="message", message=body, **common))
    attachments = message.get("attachments") or []
    for i in _distinct(raw.get("attachments") or []):
        drafts.append(_attachment(attachments[i], raw["attachments"][i], reply_to, common))
    if not drafts:
        reason = "message without text or attachments"
        unsupported = Unsupported(provider_type="message", reason=reason)
        drafts.append(
            EventDraft(
                type="unsupported",
                unsupported=unsupported,
                channel_data={"message": raw},
                **common,
            )
        )
    return drafts


def _content(attachment: fb.Attachment, kind: str) -> AnyContent | None:
    payload = attachment.get("payload") or fb.AttachmentPayload()
    url = payload.get("url")
    if kind in ("image", "video", "audio", "file", "sticker") and url:
        media = Media(url=url)
        if kind == "sticker" or payload.get("sticker_id") is not None:
            return StickerContent(media=media)
        return _MEDIA[kind](media=media)
    point = payload.get("coordinates")
    if kind == "location" and point is not None:
        return LocationContent(
            latitude=point["lat"],
            longitude=point["long"],
            name=attachment.get("title"),
            url=attachment.get("url"),
        )
    link = url or attachment.get("url")
    if kind == "fallback" and link:
        # A shared link: https://developers.facebook.com/docs/sharing/web
        title = payload.get("title") or attachment.get("title")
        return TextContent(text=f"{title}\n{link}" if title else link)
    return None


def _attachment(
    attachment: fb.Attachment, raw: dict[str, Any], reply_to: str | None, common: dict[str, Any]
) -> EventDraft:
    kind = str(attachment.get("type"))
    content = _content(attachment, kind)
    if content is None:
        unsupported = Unsupported(
            provider_type=kind, reason=f"attachment type {kind!r} is not supported"
        )
        return EventDraft(
            type="unsupported",
            unsupported=unsupported,
            channel_data={"attachment": raw},
            **common,
        )
    extra: dict[str, Any] = {}
    payload = attachment.get("payload")
    sticker_id = payload.get("sticker_id") if payload else None
    if sticker_id is not None:
        extra["channel_data"] = {"sticker_id": sticker_id}
    elif kind == "fallback":
        extra["channel_data"] = {"attachment": raw}
    body = MessageBody(content=content, reply_to=reply_to)
    return EventDraft(type="message", message=body, **common, **extra)


def _echo(message: fb.Message, raw: dict[str, Any], common: dict[str, Any]) -> EventDraft:
    # The page's own send, reported back: never a user message.
    data = {k: raw[k] for k in ("mid", "app_id", "metadata") if k in raw}
    return EventDraft(
        type="system",
        external_id=message.get("mid"),
        system=System(kind="echo", text=message.get("text")),
        channel_data=data,
        **common,
    )


def _receipt(kind: str, receipt: fb.Delivery | fb.Read, common: dict[str, Any]) -> list[EventDraft]:
    state: Literal["delivered", "read"] = "delivered" if kind == "delivery" else "read"
    watermark = meta_time(receipt.get("watermark"))
    sent: Mapping[str, Any] = receipt
    mids: list[str] = (sent.get("mids") or []) if kind == "delivery" else []
    drafts = [
        EventDraft(
            type="status",
            external_id=mid,
            status=Status(external_id=mid, state=state),
            **common,
        )
        for mid in mids
    ]
    drafts.append(
        EventDraft(type="status", status=Status(state=state, watermark=watermark), **common)
    )
    return drafts


def _party(value: fb.Party | None) -> Party | None:
    party_id = value.get("id") if value is not None else None
    return Party(id=party_id) if party_id is not None else None


def _page(value: fb.Party | None) -> Party | None:
    """The Page as a party: `_party`, built once a Page rather than once an event (a Party
    costs 15k instructions, the Page is in every event, and an app serves few Pages)."""
    page_id = value.get("id") if value is not None else None
    return _page_party(page_id) if page_id is not None else None


@functools.lru_cache(maxsize=64)
def _page_party(page_id: str) -> Party:
    return Party(id=page_id)


def _referral(data: fb.Referral) -> Referral:
    ads = data.get("ads_context_data") or fb.AdsContext()
    source = data.get("source")
    return Referral(
        source="ad" if source == "ADS" else (source.lower() if source else None),
        source_type=data.get("type"),
        source_id=data.get("ad_id") or None,
        source_url=data.get("referer_uri"),
        ref=data.get("ref"),
        headline=ads.get("ad_title"),
        media_url=ads.get("photo_url") or ads.get("video_url"),
    )
