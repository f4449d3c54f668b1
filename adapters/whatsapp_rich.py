"""WhatsApp interactive messages: reply buttons, lists and location requests.

The downgrade engine hands these parts already within the limits of `adapters.whatsapp`'s
profile; this module only lays them out as Meta documents them and keeps the few rules the
profile cannot say (unique button titles and ids, one header, a title on every section).

Reply buttons:     https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages
List:              https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages
Location request:  https://developers.facebook.com/docs/whatsapp/cloud-api/messages/location-request-messages
Header object:     https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#header-object
"""

from __future__ import annotations

from typing import Any

from gateway.schema.content import (
    ButtonsContent,
    ListContent,
    LocationRequestAction,
    Media,
    TextContent,
)
from gateway.schema.content import Content as AnyContent
from gateway.text import split_text

# Reply buttons: "up to three", body "Maximum 1024 characters", button id "Maximum 256
# characters", label "Maximum 20 characters" and unique; footer "Maximum 60 characters".
# https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages
# A text header has at most 60 characters (image, video and document headers: buttons only):
# https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#header-object
BUTTONS_MAX = 3
BUTTON_BODY_MAX = 1024
BUTTON_ID_MAX = 256
BUTTON_TITLE_MAX = 20
HEADER_MAX = 60
FOOTER_MAX = 60
# List: body "Maximum 4096 characters", button label 20, section and row titles 24, row
# description 72, row id 200; "up to 10 sections, with up to 10 rows for all sections combined".
# https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages
LIST_BODY_MAX = 4096
LIST_BUTTON_MAX = 20
SECTION_TITLE_MAX = 24
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
LIST_ROWS_MAX = 10
LIST_SECTIONS_MAX = 10
# Location request: body "Maximum 1024 characters"; the button label is WhatsApp's own.
# https://developers.facebook.com/docs/whatsapp/cloud-api/messages/location-request-messages
LOCATION_BODY_MAX = 1024

# A message body without the envelope (`messaging_product`, `recipient_type`, `to`).
Message = dict[str, Any]

_VIDEO_SUFFIXES = (".mp4", ".3gp", ".3gpp")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def is_location_request(part: AnyContent) -> bool:
    return isinstance(part, ButtonsContent) and any(
        isinstance(a, LocationRequestAction) for a in part.actions
    )


def place_location_requests(parts: list[AnyContent]) -> list[AnyContent]:
    """The prompt that follows a location request becomes its body.

    The engine plans "send your location" as its own part, followed by the text it belongs to
    (the message the quick reply was on, or the numbered choices offered beside it). WhatsApp
    shows body text and its own "Send location" button in one message, so the last of those
    texts is the body when it fits, and any earlier ones go first.
    """
    arranged: list[AnyContent] = []
    index = 0
    while index < len(parts):
        part = parts[index]
        index += 1
        if not is_location_request(part):
            arranged.append(part)
            continue
        prompt: list[TextContent] = []
        while index < len(parts):
            following = parts[index]
            if not isinstance(following, TextContent) or following.quick_replies:
                break
            prompt.append(following)
            index += 1
        if prompt and len(prompt[-1].text) <= LOCATION_BODY_MAX:
            arranged += prompt[:-1]
            arranged.append(part.model_copy(update={"text": prompt[-1].text}))
        else:
            arranged += prompt
            arranged.append(part)
    return arranged


def location_request(body: str) -> list[Message]:
    """A message asking for the user's location; a long body's start goes first as text."""
    chunks = split_text(body.strip() or "Send location", LOCATION_BODY_MAX)
    request = {
        "type": "location_request_message",
        "body": {"text": chunks[-1]},
        "action": {"name": "send_location"},
    }
    return [*map(text_message, chunks[:-1]), _interactive(request)]


def reply_buttons(content: ButtonsContent) -> list[Message]:
    """A reply-buttons message. With a media header, a text header joins the body (a message
    has one header), or goes first as text when the body has no room for it."""
    buttons = _buttons(content)
    before: list[Message] = []
    interactive: dict[str, Any] = {"type": "button"}
    body = content.text
    if content.media is not None:
        interactive["header"] = media_header(content.media)
        if content.header:
            joined = f"{content.header}\n{body}"
            if len(joined) <= BUTTON_BODY_MAX:
                body = joined
            else:
                before.append(text_message(content.header))
    elif content.header:
        interactive["header"] = {"type": "text", "text": content.header}
    interactive["body"] = {"text": body}
    if content.footer:
        interactive["footer"] = {"text": content.footer}
    interactive["action"] = {"buttons": buttons}
    return [*before, _interactive(interactive)]


def _buttons(content: ButtonsContent) -> list[dict[str, Any]]:
    """Reply buttons with unique ids and unique titles, as Meta requires.

    Two actions with the same payload would be the same button: the first is kept (the
    payload, which is what the tap reports, stays reachable). Equal titles get a counter.
    """
    seen_ids: set[str] = set()
    titles: set[str] = set()
    buttons = []
    for action in content.actions:
        payload = getattr(action, "payload", None) or action.title
        if payload in seen_ids:
            continue
        seen_ids.add(payload)
        title = _unique(action.title, titles, BUTTON_TITLE_MAX)
        titles.add(title)
        buttons.append({"type": "reply", "reply": {"id": payload, "title": title}})
    return buttons


def _unique(title: str, taken: set[str], limit: int) -> str:
    if title not in taken:
        return title
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = title[: limit - len(suffix)].rstrip() + suffix
        if candidate not in taken:
            return candidate
        number += 1


def media_header(media: Media) -> dict[str, Any]:
    """An image, video or document header; the kind from the MIME type, else the URL."""
    kind = _media_kind(media)
    source: dict[str, Any] = (
        {"id": media.provider_media_id} if media.provider_media_id else {"link": media.url}
    )
    if kind == "document" and media.filename:
        source["filename"] = media.filename
    return {"type": kind, kind: source}


def _media_kind(media: Media) -> str:
    mime = (media.mime_type or "").lower()
    if mime.startswith("video/"):
        return "video"
    if mime.startswith("image/"):
        return "image"
    if mime:
        return "document"
    path = (media.url or "").split("?", 1)[0].lower()
    if path.endswith(_VIDEO_SUFFIXES):
        return "video"
    if path.endswith(_IMAGE_SUFFIXES) or not media.filename:
        return "image"
    return "document"


def interactive_list(content: ListContent) -> Message:
    """An interactive list. Every section gets a title (the list page marks it required), and
    a row id used twice keeps its first row: the id is what the user's pick reports."""
    button = content.button.strip() or "Options"
    seen: set[str] = set()
    sections = []
    untitled = sum(1 for s in content.sections if not s.title)
    for number, section in enumerate(content.sections, 1):
        rows = []
        for item in section.items:
            if item.payload in seen:
                continue
            seen.add(item.payload)
            row = {"id": item.payload, "title": item.title}
            if item.description:
                row["description"] = item.description
            rows.append(row)
        if not rows:
            continue
        title = section.title or (button if untitled == 1 else f"{button} {number}")
        sections.append({"title": title[:SECTION_TITLE_MAX], "rows": rows})
    interactive: dict[str, Any] = {"type": "list"}
    if content.header:
        interactive["header"] = {"type": "text", "text": content.header}
    interactive["body"] = {"text": content.text}
    if content.footer:
        interactive["footer"] = {"text": content.footer}
    interactive["action"] = {"button": button, "sections": sections}
    return _interactive(interactive)


def text_message(body: str) -> Message:
    """A text message; WhatsApp previews the first link when asked to."""
    return {"type": "text", "text": {"preview_url": "http" in body, "body": body}}


def _interactive(interactive: dict[str, Any]) -> Message:
    return {"type": "interactive", "interactive": interactive}
