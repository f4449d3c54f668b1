"""LINE rich messages: quick replies, the buttons template and the carousel template.

Message objects: https://developers.line.biz/en/reference/messaging-api/#message-objects
Quick reply:     https://developers.line.biz/en/reference/messaging-api/#quick-reply
Templates:       https://developers.line.biz/en/reference/messaging-api/#template-messages
Actions:         https://developers.line.biz/en/reference/messaging-api/#action-objects
Counting:        https://developers.line.biz/en/docs/messaging-api/text-character-count/

The engine hands these parts already within the profile in `adapters.line`; what is left here
is LINE's own shape rules that a profile cannot express:
- a template's text may be 160 characters (120 in a carousel column), but only 60 once a
  title or an image is shown: a longer text goes first, as text messages, and the template
  keeps its last 60 characters' worth (cut between words);
- every column of a carousel shows an image and a title, or none does (with the same number
  of actions): a carousel whose cards mix images becomes one buttons template per card, and a
  carousel whose cards carry no action at all (LINE wants at least one) becomes text;
- a thumbnail is an HTTPS JPEG or PNG: other media go as their own message before it;
- only the last message's quick reply is shown, so quick-reply items of earlier messages (a
  location prompt) move to the last one while it has room.
Template texts and action labels count grapheme clusters and text messages and `altText`
UTF-16 code units; the engine counts code points, never fewer than graphemes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from gateway.downgrade.engine import shorten
from gateway.downgrade.plain_text import to_text
from gateway.downgrade.split_text import split_text
from gateway.schema.content import (
    Action,
    AudioContent,
    ButtonsContent,
    BuyAction,
    CallAction,
    CarouselContent,
    CarouselItem,
    FileContent,
    ImageContent,
    LinkAction,
    LocationContent,
    LocationRequestAction,
    Media,
    PostbackAction,
    ReplyAction,
    ShareAction,
    StickerContent,
    TextContent,
    VideoContent,
)
from gateway.schema.content import Content as AnyContent

# Text message: max 5000 characters, counted in UTF-16 code units (an emoji counts 2):
# https://developers.line.biz/en/reference/messaging-api/#text-message
# https://developers.line.biz/en/docs/messaging-api/text-character-count/
MAX_TEXT = 5000
# Location message title and address: max 100 characters each, both required:
# https://developers.line.biz/en/reference/messaging-api/#location-message
MAX_LOCATION_FIELD = 100
# Media URLs must be HTTPS (image, video, audio message objects):
# https://developers.line.biz/en/reference/messaging-api/#image-message
MEDIA_URL_SCHEME = "https://"
# A sticker sent back natively is named "packageId:stickerId" (see parse.py).
_STICKER_ID = re.compile(r"^(\d+):(\d+)$")

# Quick reply: at most 13 items; an action label at most 20 characters:
# https://developers.line.biz/en/reference/messaging-api/#quick-reply
# https://developers.line.biz/en/reference/messaging-api/#action-objects
MAX_QUICK_REPLIES = 13
MAX_LABEL = 20
# Postback action: `data` at most 300 characters; `displayText` (required on quick-reply
# buttons, optional elsewhere) at most 300:
# https://developers.line.biz/en/reference/messaging-api/#postback-action
MAX_POSTBACK_DATA = 300
MAX_DISPLAY_TEXT = 300
# URI action: at most 1000 characters, schemes http, https, line and tel:
# https://developers.line.biz/en/reference/messaging-api/#uri-action
MAX_URI = 1000
URI_SCHEMES = ("http", "https", "line", "tel")
# Template message: altText at most 400 characters:
# https://developers.line.biz/en/reference/messaging-api/#template-messages
MAX_ALT_TEXT = 400
# Buttons template: at most 4 actions, title 40, text 160 (60 with an image or a title);
# thumbnail HTTPS JPEG/PNG, URL at most 2000 characters:
# https://developers.line.biz/en/reference/messaging-api/#buttons
MAX_BUTTONS = 4
MAX_TITLE = 40
MAX_BUTTONS_TEXT = 160
MAX_TEXT_WITH_TITLE_OR_IMAGE = 60
MAX_IMAGE_URL = 2000
# Carousel template: at most 10 columns of at most 3 actions each, the same number in every
# column; column title 40, text 120 (60 with an image or a title); "If you use an image or
# title for a column, make sure to do the same for all other columns":
# https://developers.line.biz/en/reference/messaging-api/#carousel
MAX_COLUMNS = 10
MAX_COLUMN_ACTIONS = 3
MAX_COLUMN_TEXT = 120

THUMBNAIL_TYPES = ("image/jpeg", "image/png")
_THUMBNAIL_SUFFIXES = (".jpg", ".jpeg", ".png")
_OTHER_SUFFIXES = (".gif", ".webp", ".bmp", ".svg", ".heic", ".mp4", ".mov", ".m4v", ".webm")

Message = dict[str, Any]


_LAST_WORD_START = re.compile(r".*\s(?=\S)", re.DOTALL)


def utf16_len(text: str) -> int:
    """Length as LINE counts text messages and altText: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """At most `limit` UTF-16 code units, cut between words with an ellipsis."""
    if text.isascii():  # one unit per character, no clusters: whole words while they fit
        if len(text) <= limit:
            return text
        # The last word start (a non-space after a space) within the first limit - 1
        # characters; the ellipsis takes the last unit.
        boundary = _LAST_WORD_START.match(text, 0, limit)
        cut = text[: boundary.end()] if boundary else ""
        return (cut or text[: limit - 1]).rstrip() + "…"
    if utf16_len(text) <= limit:
        return text
    # Only the start can end up in the first chunk: split just that much (alt texts are long).
    return split_text(text[: limit + 16], limit - 1, utf16_len)[0].rstrip() + "…"


def label(text: str) -> str:
    return shorten(text, MAX_LABEL) or "Send location"


# --- actions ---------------------------------------------------------------------------


def action(choice: Action, *, quick_reply: bool = False) -> dict[str, Any]:
    """The LINE action object for `choice`.

    reply and postback are postback actions carrying the payload as `data`; a reply is echoed
    in the chat (`displayText`, the label), a postback is not, except on a quick-reply button
    where LINE requires `displayText`. link (and a payment link) is a URI action, call a URI
    action to `tel:`, location_request the location action (quick replies only).
    """
    if type(choice) is ReplyAction:  # the commonest first; exact types (final classes)
        title = choice.title
        return {"type": "postback", "label": title, "data": choice.payload, "displayText": title}
    if type(choice) is PostbackAction:
        made = {"type": "postback", "label": choice.title, "data": choice.payload}
        if quick_reply:
            made["displayText"] = choice.title
        return made
    if type(choice) is LinkAction or type(choice) is BuyAction:
        return {"type": "uri", "label": choice.title, "uri": choice.url}
    if type(choice) is CallAction:
        return {"type": "uri", "label": choice.title, "uri": f"tel:{choice.phone}"}
    if type(choice) is LocationRequestAction:
        return {"type": "location", "label": label(choice.title)}
    if type(choice) is ShareAction and choice.url:
        return {"type": "uri", "label": choice.title, "uri": choice.url}
    raise ValueError(f"LINE has no {choice.type} action")  # the profile never lists it


def quick_reply(actions: Sequence[Action]) -> dict[str, Any]:
    items = [{"type": "action", "action": action(a, quick_reply=True)} for a in actions]
    return {"items": items}


def with_quick_replies(messages: list[Message], actions: Sequence[Action]) -> list[Message]:
    """The quick-reply buttons go on the last message object, the one LINE shows them with."""
    if not actions or not messages:
        return messages
    last = messages[-1]
    items = (last.get("quickReply") or {}).get("items", []) + quick_reply(actions)["items"]
    return [*messages[:-1], {**last, "quickReply": {"items": items}}]


def gather_quick_replies(messages: list[Message]) -> list[Message]:
    """Quick-reply items of earlier messages join the last message's while it has room.

    LINE shows only the quick reply of the last message in the chat; the engine puts the
    sender's quick replies there, and a location prompt planned before it would be lost. A
    prompt whose whole text is its button's label has nothing left to say and goes.
    """
    if len(messages) < 2:
        return messages
    last = dict(messages[-1])
    out: list[Message] = []
    for message in messages[:-1]:
        moving = (message.get("quickReply") or {}).get("items") or []
        staying = (last.get("quickReply") or {}).get("items") or []
        if not moving or len(moving) + len(staying) > MAX_QUICK_REPLIES:
            out.append(message)
            continue
        last["quickReply"] = {"items": [*moving, *staying]}
        labels = [item["action"].get("label") for item in moving]
        if message.get("type") != "text" or labels != [message.get("text")]:
            out.append({k: v for k, v in message.items() if k != "quickReply"})
    return [*out, last]


# --- media -----------------------------------------------------------------------------


def thumbnail(media: Media | None) -> str | None:
    """The URL when `media` can be a template thumbnail (HTTPS, JPEG or PNG), else None."""
    if media is None or not media.url or not media.url.startswith("https://"):
        return None
    if len(media.url) > MAX_IMAGE_URL:
        return None
    if media.mime_type:
        return media.url if media.mime_type.lower() in THUMBNAIL_TYPES else None
    url = media.url
    if "?" not in url and "#" not in url and not url.lower().endswith(_OTHER_SUFFIXES):
        return url  # the path is the URL's tail, so it has no other media's suffix either
    path = urlsplit(url).path.lower()
    if path.endswith(_OTHER_SUFFIXES):
        return None
    return media.url


def media_part(media: Media) -> AnyContent:
    """Media that cannot be a thumbnail, as its own part (a message, or a link as text)."""
    if (media.mime_type or "").startswith("video/"):
        return VideoContent(media=media)
    return ImageContent(media=media)


# --- templates -------------------------------------------------------------------------


def alt_text(*lines: str | None) -> str:
    """What LINE shows in notifications, the chat list and where templates cannot show."""
    return clip("\n".join(line for line in lines if line), MAX_ALT_TEXT)


def is_location_prompt(content: ButtonsContent) -> bool:
    return all(isinstance(a, LocationRequestAction) for a in content.actions)


def location_prompt(content: ButtonsContent) -> Message:
    """A location request: its text with LINE's location quick-reply button."""
    return {"type": "text", "text": content.text, "quickReply": quick_reply(content.actions)}


def buttons(content: ButtonsContent) -> list[AnyContent | Message]:
    """Parts to send before the template (text that does not fit, media that cannot be its
    thumbnail), then the buttons template message. Location requests become quick replies.
    """
    requests = [a for a in content.actions if isinstance(a, LocationRequestAction)]
    actions = [a for a in content.actions if not isinstance(a, LocationRequestAction)]
    before: list[AnyContent | Message] = []
    image = thumbnail(content.media)
    if content.media is not None and image is None:
        before.append(media_part(content.media))
    title, text = content.header, content.text
    if (title or image) and len(text) > MAX_TEXT_WITH_TITLE_OR_IMAGE:
        folded = f"{title}\n{text}"
        if title and not image and len(folded) <= MAX_BUTTONS_TEXT:
            title, text = None, folded
        else:
            *first, text = split_text(text, MAX_TEXT_WITH_TITLE_OR_IMAGE)
            before += [TextContent(text=chunk) for chunk in first]
    template: dict[str, Any] = {"type": "buttons"}
    if image:
        template["thumbnailImageUrl"] = image
    if title:
        template["title"] = title
    template |= {"text": text, "actions": [action(a) for a in actions]}
    message: Message = {
        "type": "template",
        "altText": alt_text(content.header, content.text),
        "template": template,
    }
    return [*before, *with_quick_replies([message], requests)]


def carousel(content: CarouselContent) -> list[AnyContent | Message]:
    """The carousel template, or what LINE's column rules leave (see the module doc)."""
    items = content.items
    images: list[str | None] = []
    tappable = titled = False
    for item in items:  # one pass for what decides the layout: every carousel sent runs it
        images.append(thumbnail(item.media))
        tappable = tappable or bool(item.actions)
        titled = titled or bool(item.description)
    if not tappable:  # nothing to tap: LINE wants one per column
        return [TextContent(text=to_text(content.model_copy(update={"quick_replies": []})))]
    if any(images) and not all(images):
        return [part for item in items for part in card(item)]
    columns = []
    lines = []
    for item, image in zip(items, images, strict=True):
        lines.append(f"{item.title} - {item.description}" if item.description else item.title)
        column: dict[str, Any] = {}
        if image:
            column["thumbnailImageUrl"] = image
        if titled:
            column["title"] = item.title
        column["text"] = (item.description or item.title) if titled else item.title
        if item.default_url and _uri_ok(item.default_url):
            column["defaultAction"] = _open(item.default_url)
        column["actions"] = list(map(action, item.actions))
        columns.append(column)
    message: Message = {
        "type": "template",
        "altText": alt_text(*lines),
        "template": {"type": "carousel", "columns": columns},
    }
    return [message]


def card(item: CarouselItem) -> list[AnyContent | Message]:
    """One carousel card as a buttons template (title, description, image, actions, link)."""
    *before, message = buttons(
        ButtonsContent(
            header=item.title if item.description else None,
            text=item.description or item.title,
            media=item.media,
            actions=item.actions,
        )
    )
    assert isinstance(message, dict)
    if item.default_url and _uri_ok(item.default_url):
        message["template"]["defaultAction"] = _open(item.default_url)
    return [*before, message]


def _open(uri: str) -> dict[str, str]:
    return {"type": "uri", "label": "Open", "uri": uri}


def _uri_ok(uri: str) -> bool:
    return len(uri) <= MAX_URI and urlsplit(uri).scheme.lower() in URI_SCHEMES


# --- message objects: https://developers.line.biz/en/reference/messaging-api/#message-objects


def messages(content: AnyContent, audio_duration_ms: int | None) -> list[Message]:
    """The LINE message objects for `content`, in order (any number; grouped by 5 later).

    Quick replies go on the last of them: LINE shows them with the last message. Audio is
    native only with a duration to show (`LineConfig.audio_duration_ms`).
    """
    bare = content.model_copy(update={"quick_replies": []}) if content.quick_replies else content
    return with_quick_replies(_messages(bare, audio_duration_ms), content.quick_replies)


def _messages(content: AnyContent, duration: int | None) -> list[Message]:
    if type(content) is TextContent:  # the commonest parts first; exact (final) types
        return texts(content.text)
    if type(content) is CarouselContent:
        return _expand(carousel(content), duration)
    if isinstance(content, ImageContent | VideoContent) and _https(content.media):
        url = content.media.url
        media = {"type": content.type, "originalContentUrl": url, "previewImageUrl": url}
        return [media, *texts(content.caption)]
    if isinstance(content, AudioContent) and _https(content.media) and duration:
        audio = {"type": "audio", "originalContentUrl": content.media.url, "duration": duration}
        return [audio, *texts(content.caption)]
    if isinstance(content, FileContent):
        # LINE bots cannot send files: the name and a link, after any caption.
        name = content.media.filename or "File"
        link = content.media.url or f"[{content.media.provider_media_id}]"
        return texts("\n".join(p for p in (content.caption, f"{name}: {link}") if p))
    if isinstance(content, StickerContent):
        match = _STICKER_ID.match(content.media.provider_media_id or "")
        if match:
            sticker = {"type": "sticker", "packageId": match[1], "stickerId": match[2]}
            return [sticker, *texts(content.caption)]
    if isinstance(content, LocationContent):
        return [_location(content)]
    if isinstance(content, ButtonsContent):
        if is_location_prompt(content):
            return [location_prompt(content)]
        return _expand(buttons(content), duration)
    return texts(to_text(content))


def _location(content: LocationContent) -> Message:
    title = content.name or "Location"
    address = content.address or f"{content.latitude:.6f}, {content.longitude:.6f}"
    return {
        "type": "location",
        "title": clip(title, MAX_LOCATION_FIELD),
        "address": clip(address, MAX_LOCATION_FIELD),
        "latitude": content.latitude,
        "longitude": content.longitude,
    }


def _expand(parts: list[AnyContent | Message], duration: int | None) -> list[Message]:
    return [m for p in parts for m in ([p] if isinstance(p, dict) else _messages(p, duration))]


def _https(media: Media) -> bool:
    return bool(media.url and media.url.startswith(MEDIA_URL_SCHEME))


def texts(text: str | None) -> list[Message]:
    """`text` as text messages of at most MAX_TEXT UTF-16 units each; none for no text."""
    if not text:
        return []
    return [{"type": "text", "text": chunk} for chunk in split_text(text, MAX_TEXT, utf16_len)]
