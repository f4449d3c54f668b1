"""Messenger Send API `message` objects for every part the downgrade engine plans.

Pure. The engine has already fitted each part to `adapters.messenger.CAPABILITIES`; this module
only spells it the way the Send API documents it:
- text → `{"text": ..}`; media → an `attachment` by URL or `attachment_id` (any caption follows
  as text: attachments carry none).
- buttons → the button template (1-3 buttons, text ≤ 640):
  https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/template/button
- carousel → the generic template, one element per card (≤ 10, title/subtitle ≤ 80, ≤ 3 buttons,
  `image_url` from the card's media URL, `default_action` from its default_url):
  https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/template/generic
- reply/postback → postback button; link (and buy) → URL button; call → call button:
  https://developers.facebook.com/docs/messenger-platform/reference/buttons/postback
  https://developers.facebook.com/docs/messenger-platform/reference/buttons/url
  https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/buttons/call
- quick replies → `content_type: "text"` quick replies on the part's last message (text or
  attachment, templates included):
  https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/quick-replies
- location, contacts and anything else → its plain text (Messenger sends neither natively).

Two things Meta refuses that the engine cannot know, handled here without losing anything:
a generic element needs a property besides its title (a card with only a title goes as a text
message in its place), and a call button needs a `+<country code><number>` (a number that is
not one goes as a line of text after the template).
"""

from __future__ import annotations

import re
from itertools import groupby
from typing import Any

from gateway.downgrade.plain_text import action_line, to_text
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
    PostbackAction,
    ReplyAction,
    StickerContent,
    TextContent,
    VideoContent,
    is_choice,
    is_media,
)
from gateway.schema.content import Content as AnyContent

# message.text "must be UTF-8 and has a 2000 character limit" (Send API reference, message
# properties): https://developers.facebook.com/docs/messenger-platform/reference/send-api/
MAX_TEXT = 2000
BUTTON_TEXT_MAX = 640  # button template text, UTF-8 (button template doc)
# Attachment types the Send API takes by URL or attachment_id; a sticker goes as its image:
# https://developers.facebook.com/docs/messenger-platform/send-messages#sending_attachments
SEND_MEDIA = {"image": "image", "video": "video", "audio": "audio", "file": "file"}
# Call button payload: "+" then country code, area code and local number (call button doc).
PHONE = re.compile(r"^\+[1-9]\d{5,14}$")
_PHONE_NOISE = re.compile(r"[\s().\-/]")

Message = dict[str, Any]
MediaPart = ImageContent | VideoContent | AudioContent | FileContent | StickerContent


def messages(content: AnyContent) -> list[Message]:
    """The `message` objects that deliver `content`, in order (one Send API call each)."""
    bodies = _bodies(content)
    if content.quick_replies:
        replies = [quick_reply(a) for a in content.quick_replies if is_choice(a)]
        others = [action_line(a) for a in content.quick_replies if not is_choice(a)]
        if others:  # never planned by the engine (quick replies here are choices only)
            bodies.append({"text": "\n".join(others)})
        if replies:
            bodies[-1] = {**bodies[-1], "quick_replies": replies}
    return bodies


def _bodies(content: AnyContent) -> list[Message]:
    if is_media(content):
        return _media(content)
    if isinstance(content, ButtonsContent):
        return button_template(content)
    if isinstance(content, CarouselContent):
        return generic_templates(content)
    if isinstance(content, TextContent):
        return texts(content.text)
    # location (no native send: a maps link), contacts, list, form response, template…
    return texts(to_text(content.model_copy(update={"quick_replies": []})))


def texts(text: str) -> list[Message]:
    return [{"text": chunk} for chunk in split_text(text, MAX_TEXT)]


def _media(content: MediaPart) -> list[Message]:
    kind = SEND_MEDIA.get(content.type, "image")
    payload: dict[str, Any] = (
        {"attachment_id": content.media.provider_media_id}
        if content.media.provider_media_id
        else {"url": content.media.url, "is_reusable": True}
    )
    attachment: Message = {"attachment": {"type": kind, "payload": payload}}
    return [attachment] + (texts(content.caption) if content.caption else [])


def _template(payload: dict[str, Any]) -> Message:
    return {"attachment": {"type": "template", "payload": payload}}


# --- buttons -----------------------------------------------------------------------------
def phone_number(phone: str) -> str | None:
    """`phone` as the call button wants it (+ and digits only), or None when it is not one."""
    digits = _PHONE_NOISE.sub("", phone)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return digits if PHONE.match(digits) else None


def button(action: Action) -> dict[str, Any] | None:
    """The Messenger button for `action`, or None when Messenger has no button for it.
    Exact type tests (the schema's classes are final): a failing isinstance is slow."""
    if is_choice(action):
        return {"type": "postback", "title": action.title, "payload": action.payload}
    if type(action) is LinkAction or type(action) is BuyAction:
        return {"type": "web_url", "url": action.url, "title": action.title}
    if type(action) is CallAction and (number := phone_number(action.phone)):
        return {"type": "phone_number", "title": action.title, "payload": number}
    return None


def _buttons(actions: list[Action]) -> tuple[list[dict[str, Any]], list[str]]:
    """Native buttons, and the lines of text for actions that cannot be one."""
    native: list[dict[str, Any]] = []
    lines: list[str] = []
    for action in actions:
        made = button(action)
        if made is None:
            lines.append(action_line(action))
        else:
            native.append(made)
    return native, lines


def button_template(content: ButtonsContent) -> list[Message]:
    """Text above 1-3 buttons. A header or footer (none on Messenger) joins the text; media
    (the template has no image) goes first as its own attachment."""
    text = "\n".join(p for p in (content.header, content.text, content.footer) if p)
    native, lines = _buttons(list(content.actions))
    before = _media(ImageContent(media=content.media)) if content.media else []
    if not native:
        return before + texts("\n".join([text, *lines]))
    chunks = split_text(text, BUTTON_TEXT_MAX)
    before += [{"text": chunk} for chunk in chunks[:-1]]
    template = _template({"template_type": "button", "text": chunks[-1], "buttons": native})
    return before + [template] + (texts("\n".join(lines)) if lines else [])


# --- carousel ----------------------------------------------------------------------------
def element(item: CarouselItem) -> tuple[dict[str, Any], list[str]]:
    """One generic template element (keys in the documented order) and any text lines."""
    made: dict[str, Any] = {"title": item.title}
    if item.media is not None and item.media.url:
        made["image_url"] = item.media.url
    if item.description:
        made["subtitle"] = item.description
    if item.default_url:
        made["default_action"] = {"type": "web_url", "url": item.default_url}
    native, lines = _buttons(item.actions)
    if native:
        made["buttons"] = native
    return made, [f"{item.title}: {line}" for line in lines] if lines else lines


def generic_templates(content: CarouselContent) -> list[Message]:
    """Cards in order: runs of elements as generic templates; a card Meta would refuse (only a
    title) as a text message in its place. `image_url` takes a URL only, so an image known
    by its attachment id alone goes as an attachment just before its card's template."""
    bodies: list[Message] = []
    if content.text:
        bodies += texts(content.text)
    cards = [(item, *element(item)) for item in content.items]
    for has_detail, group in groupby(cards, key=lambda card: len(card[1]) > 1):
        run = list(group)
        for item, _made, _lines in run:
            if item.media is not None and not item.media.url:
                bodies += _media(ImageContent(media=item.media))
        lines = [line for _item, _made, extra in run for line in extra]
        if has_detail:
            elements = [made for _item, made, _lines in run]
            bodies.append(_template({"template_type": "generic", "elements": elements}))
        else:
            lines = [item.title for item, _made, _lines in run] + lines
        if lines:
            bodies += texts("\n".join(lines))
    return bodies


# --- quick replies -----------------------------------------------------------------------
def quick_reply(action: Action) -> dict[str, Any]:
    assert isinstance(action, ReplyAction | PostbackAction)
    return {"content_type": "text", "title": action.title, "payload": action.payload}
