"""WhatsApp interactive messages: reply buttons, lists, media carousels and location requests.

The downgrade engine hands these parts already within the limits of `adapters.whatsapp`'s
profile; this module only lays them out as Meta documents them and keeps the few rules the
profile cannot say (unique button titles and ids, one header, a title on every section).

Reply buttons:     https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages
List:              https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages
Media carousel:    https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-media-carousel-messages
Location request:  https://developers.facebook.com/docs/whatsapp/cloud-api/messages/location-request-messages
Header object:     https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#header-object
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.downgrade.media import media_kind
from gateway.downgrade.split_text import split_text
from gateway.schema.content import (
    Action,
    ButtonsContent,
    CarouselContent,
    CarouselItem,
    LinkAction,
    ListContent,
    LocationRequestAction,
    Media,
    TextContent,
)
from gateway.schema.content import Content as AnyContent

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
# Media carousel: "between 2 and 10 cards"; main body "required", "Maximum 1024 characters", no
# main header, footer or buttons; card header image or video, the same on every card; card body
# "Max 160 characters, and up to 2 line breaks"; "either one URL button, or one or more
# quick-reply buttons", types and numbers matching across cards; quick-reply id 256, label 20.
# https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-media-carousel-messages
CAROUSEL_CARDS_MIN = 2
CAROUSEL_CARDS_MAX = 10
CAROUSEL_BODY_MAX = 1024
CARD_BODY_MAX = 160
CARD_LINE_BREAKS_MAX = 2
# "One or more": Meta's examples and the BSP guides (jelou: "up to two buttons") show two.
CARD_BUTTONS_MAX = 2
# A card's body is "*title*" and its description on the next line: the title's share of 160.
CARD_TITLE_MAX = 60
CARD_DESCRIPTION_MAX = CARD_BODY_MAX - CARD_TITLE_MAX - len("**\n")
# Location request: body "Maximum 1024 characters"; the button label is WhatsApp's own.
# https://developers.facebook.com/docs/whatsapp/cloud-api/messages/location-request-messages
LOCATION_BODY_MAX = 1024

# A message body without the envelope (`messaging_product`, `recipient_type`, `to`).
Message = dict[str, Any]


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
    buttons = _buttons(content.actions, "reply")
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


def _buttons(actions: Sequence[Action], kind: str) -> list[dict[str, Any]]:
    """Reply (or quick-reply) buttons with unique ids and unique titles, as Meta requires.

    Two actions with the same payload would be the same button: the first is kept (the
    payload, which is what the tap reports, stays reachable). Equal titles get a counter.
    """
    seen_ids: set[str] = set()
    titles: set[str] = set()
    buttons = []
    for action in actions:
        payload = getattr(action, "payload", None) or action.title
        if payload in seen_ids:
            continue
        seen_ids.add(payload)
        title = _unique(action.title, titles, BUTTON_TITLE_MAX)
        titles.add(title)
        buttons.append({"type": kind, kind: {"id": payload, "title": title}})
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
    kind = media_kind(media)
    source: dict[str, Any] = (
        {"id": media.provider_media_id} if media.provider_media_id else {"link": media.url}
    )
    if kind == "document" and media.filename:
        source["filename"] = media.filename
    return {"type": kind, kind: source}


def carousel(content: CarouselContent) -> Message:
    """A media carousel: the engine hands cards that carry either choices or one link, all
    alike, each with an image or video of one kind, and its body text."""
    cards = [_card(index, item) for index, item in enumerate(content.items)]
    return _interactive(
        {"type": "carousel", "body": {"text": content.text or ""}, "action": {"cards": cards}}
    )


def _card(index: int, item: CarouselItem) -> dict[str, Any]:
    # The engine hands cards of one URL button or of choices only: the first action tells.
    first = item.actions[0] if item.actions else None
    link = first if type(first) is LinkAction else None  # final: cheaper than isinstance
    card: dict[str, Any] = {"card_index": index}
    if link is not None:
        card["type"] = "cta_url"
    assert item.media is not None  # the profile requires media on every card
    card["header"] = media_header(item.media)
    card["body"] = {"text": card_body(item.title, item.description)}
    if link is not None:
        parameters = {"display_text": link.title, "url": link.url}
        card["action"] = {"name": "cta_url", "parameters": parameters}
    else:
        card["action"] = {"buttons": _buttons(item.actions, "quick_reply")}
    return card


def card_body(title: str, description: str | None) -> str:
    """The title in bold, then the description; lines past the card's two line breaks join
    the last one (a description may carry the card's links, one per line)."""
    text = title if "*" in title else f"*{title}*"
    if not description:
        return text
    first, newline, rest = description.partition("\n")
    if not newline:
        return f"{text}\n{first}"
    rest = rest.replace("\n", " ")
    return f"{text}\n{first}\n{rest}"


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
