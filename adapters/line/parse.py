"""LINE webhook events → event drafts, one member of `events[]` at a time.

Each event is read into its TypedDict (`payloads.py`) on its own, so a part that cannot be read
fails with its path (`events[1].message.text: expected a string, got a number`) and nothing
else depends on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ValidationError

from adapters.base import ParsedEvent, PayloadError, epoch_millis
from adapters.line import payloads as p
from adapters.payload_errors import describe
from adapters.webhook_parts import adapted
from gateway.schema import (
    ChannelRef,
    EventDraft,
    MessageBody,
    Party,
    Postback,
    Subscription,
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

_ANIMATED_STICKERS = {"ANIMATION", "ANIMATION_SOUND", "POPUP", "POPUP_SOUND"}
_MEDIA: dict[str, type[ImageContent | VideoContent | AudioContent]] = {
    "image": ImageContent,
    "video": VideoContent,
    "audio": AudioContent,
}


def event_key(event: dict[str, Any]) -> str:
    """The dedupe key of one raw event: its webhookEventId, else a hash of its content."""
    event_id = event.get("webhookEventId")
    if event_id:
        return f"evt:{event_id}"
    # Old payloads without webhookEventId: the event's content identifies it.
    data = json.dumps(event, sort_keys=True, ensure_ascii=False)
    return "evt-sha256:" + hashlib.sha256(data.encode()).hexdigest()


def parse_event(
    raw: dict[str, Any], index: int, channel: ChannelRef, bot: Party | None
) -> ParsedEvent:
    """`events[index]` as a draft; PayloadError naming the path of what cannot be read."""
    try:
        event: p.Event = adapted(p.event_model(raw), raw)
    except ValidationError as exc:
        raise PayloadError(f"invalid payload: {describe(exc, f'events[{index}]')}") from None
    reader: Reader = _READERS.get(event["type"], _unsupported)
    return ParsedEvent(reader(event, raw, _common(event, channel, bot)), event_key(raw))


def _common(event: p.Event, channel: ChannelRef, bot: Party | None) -> dict[str, Any]:
    source = event.get("source")
    source_type = source["type"] if source else None
    group_id = source.get("groupId") if source and source_type == "group" else None
    room_id = source.get("roomId") if source and source_type == "room" else None
    user_id = source.get("userId") if source else None
    chat_id = group_id or room_id
    # The user when LINE names one; otherwise (join, leave, member events) the chat itself.
    sender_id = user_id or chat_id
    data: dict[str, Any] = {}
    if source_type:
        data["source_type"] = source_type
    if group_id:
        data["group_id"] = group_id
    if room_id:
        data["room_id"] = room_id
    if mode := event.get("mode"):
        data["mode"] = mode
    if (delivery := event.get("deliveryContext")) is not None:
        data["is_redelivery"] = delivery["isRedelivery"]
    if reply_token := event.get("replyToken"):
        data["reply_token"] = reply_token
        data["reply_target"] = chat_id or user_id
    common: dict[str, Any] = {
        "channel": channel,
        "external_id": event.get("webhookEventId"),
        "timestamp": epoch_millis(event["timestamp"]),
        "sender": Party(id=sender_id) if sender_id else None,
        "recipient": bot,
    }
    if data:
        common["channel_data"] = data
    return common


def _add_data(common: dict[str, Any], **values: Any) -> None:
    common["channel_data"] = {**(common.get("channel_data") or {}), **values}


Reader = Callable[[Any, dict[str, Any], dict[str, Any]], EventDraft]


def _postback(event: p.PostbackEvent, raw: dict[str, Any], common: dict[str, Any]) -> EventDraft:
    postback = event["postback"]
    if params := postback.get("params"):
        _add_data(common, params=params)
    return EventDraft(type="postback", postback=Postback(payload=postback["data"]), **common)


def _follow(event: p.FollowEvent, raw: dict[str, Any], common: dict[str, Any]) -> EventDraft:
    follow = event.get("follow")
    if follow is not None and (unblocked := follow.get("isUnblocked")) is not None:
        _add_data(common, is_unblocked=unblocked)
    return _subscription("subscribed", "follow", common)


def _unfollow(event: p.Event, raw: dict[str, Any], common: dict[str, Any]) -> EventDraft:
    return _subscription("unsubscribed", "unfollow", common)


def _subscription(
    state: Literal["subscribed", "unsubscribed"], keyword: str, common: dict[str, Any]
) -> EventDraft:
    return EventDraft(
        type="subscription", subscription=Subscription(state=state, keyword=keyword), **common
    )


def _join_or_leave(event: p.Event, raw: dict[str, Any], common: dict[str, Any]) -> EventDraft:
    kind: Literal["join", "leave"] = "join" if event["type"] == "join" else "leave"
    return EventDraft(type="system", system=System(kind=kind), **common)


def _members(members: p.Members) -> list[str]:
    return [user for m in members["members"] if (user := m.get("userId"))]


def _member_joined(
    event: p.MemberJoinedEvent, raw: dict[str, Any], common: dict[str, Any]
) -> EventDraft:
    _add_data(common, member_ids=_members(event["joined"]))
    return EventDraft(type="system", system=System(kind="member_joined"), **common)


def _member_left(
    event: p.MemberLeftEvent, raw: dict[str, Any], common: dict[str, Any]
) -> EventDraft:
    _add_data(common, member_ids=_members(event["left"]))
    return EventDraft(type="system", system=System(kind="member_left"), **common)


def _unsend(event: p.UnsendEvent, raw: dict[str, Any], common: dict[str, Any]) -> EventDraft:
    message_id = event["unsend"]["messageId"]
    if not message_id:
        raise PayloadError("unsend event without unsend.messageId")
    _add_data(common, message_id=message_id)
    return EventDraft(type="system", system=System(kind="unsend"), **common)


def _unsupported(event: p.Event, raw: dict[str, Any], common: dict[str, Any]) -> EventDraft:
    _add_data(common, event=raw)
    kind = event["type"]
    return EventDraft(
        type="unsupported",
        unsupported=Unsupported(provider_type=kind, reason=f"event type {kind!r} is not supported"),
        **common,
    )


def _message(event: p.MessageEvent, raw: dict[str, Any], common: dict[str, Any]) -> EventDraft:
    message = event["message"]
    common["external_id"] = message["id"]
    if quote_token := message.get("quoteToken"):
        _add_data(common, quote_token=quote_token)
    if read_token := message.get("markAsReadToken"):
        _add_data(common, mark_as_read_token=read_token)
    kind = message["type"]
    read = _CONTENTS.get(kind)
    if read is None:
        _add_data(common, message=raw["message"])
        return EventDraft(
            type="unsupported",
            unsupported=Unsupported(
                provider_type=f"message:{kind}",
                reason=f"message type {kind!r} is not supported",
            ),
            **common,
        )
    body = MessageBody(
        content=read(message, raw["message"], common), reply_to=message.get("quotedMessageId")
    )
    return EventDraft(type="message", message=body, **common)


# The content of a message of each type we read, from its validated part (which `event_model`
# chose by the same type) and the part as received.
ContentReader = Callable[[Any, dict[str, Any], dict[str, Any]], AnyContent]


def _text(message: p.TextMessage, raw: dict[str, Any], common: dict[str, Any]) -> AnyContent:
    if emojis := message.get("emojis"):
        _add_data(common, emojis=emojis)
    mention = message.get("mention")
    if mention is not None and (mentionees := mention.get("mentionees")):
        _add_data(common, mentionees=mentionees)
    return TextContent(text=message["text"])


def _media(message: p.MediaMessage, raw: dict[str, Any], common: dict[str, Any]) -> AnyContent:
    # The bytes are fetched later from the content API by message id:
    # https://developers.line.biz/en/reference/messaging-api/#get-content
    provider = message.get("contentProvider")
    # Passed on as LINE sent them (the models checked their shape).
    _add_data(common, content_provider=raw.get("contentProvider") or {})
    if (duration := message.get("duration")) is not None:
        _add_data(common, duration_ms=duration)
    if message.get("imageSet") is not None:
        _add_data(common, image_set=raw["imageSet"])
    url = provider.get("originalContentUrl") if provider else None
    return _MEDIA[message["type"]](media=Media(provider_media_id=message["id"], url=url))


def _file(message: p.FileMessage, raw: dict[str, Any], common: dict[str, Any]) -> AnyContent:
    media = Media(
        provider_media_id=message["id"],
        filename=message.get("fileName"),
        size=message.get("fileSize"),
    )
    return FileContent(media=media)


def _location(
    message: p.LocationMessage, raw: dict[str, Any], common: dict[str, Any]
) -> AnyContent:
    return LocationContent(
        latitude=message["latitude"],
        longitude=message["longitude"],
        name=message.get("title"),
        address=message.get("address"),
    )


def _sticker(message: p.StickerMessage, raw: dict[str, Any], common: dict[str, Any]) -> AnyContent:
    """A sticker is named by its package and sticker ids: provider_media_id "package:sticker".

    The same form renders back as a native sticker message (see `render.py`).
    """
    package_id, sticker_id = message["packageId"], message["stickerId"]
    resource_type = message.get("stickerResourceType")
    extras = {
        "package_id": package_id,
        "sticker_id": sticker_id,
        "sticker_resource_type": resource_type,
        "keywords": message.get("keywords"),
        "text": message.get("text"),
    }
    _add_data(common, **{k: v for k, v in extras.items() if v is not None})
    return StickerContent(
        media=Media(provider_media_id=f"{package_id}:{sticker_id}"),
        animated=resource_type in _ANIMATED_STICKERS,
    )


# The message types `payloads.MESSAGE_EVENTS` reads, each with its own TypedDict.
_CONTENTS: dict[str, ContentReader] = {
    "text": _text,
    "image": _media,
    "video": _media,
    "audio": _media,
    "file": _file,
    "location": _location,
    "sticker": _sticker,
}

_READERS: dict[str, Reader] = {
    "message": _message,
    "postback": _postback,
    "follow": _follow,
    "unfollow": _unfollow,
    "join": _join_or_leave,
    "leave": _join_or_leave,
    "memberJoined": _member_joined,
    "memberLeft": _member_left,
    "unsend": _unsend,
}
