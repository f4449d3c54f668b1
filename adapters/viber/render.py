"""Viber keyboards and rich media: choices, URL buttons, location pickers and carousels.

Keyboards:  https://developers.viber.com/docs/tools/keyboards/
            https://creators.viber.com/docs/bots-api/resources/messaging/keyboards
Rich media: https://developers.viber.com/docs/api/rest-bot-api/#rich-media-message--carousel-content-message

Choices (buttons and quick replies alike) become one `keyboard` on the message: Viber shows
the last keyboard it received in place of the phone's keyboard. A carousel becomes a
`rich_media` message: one 6-column block of buttons per card (image, title and description,
one row per action), swiped sideways.

How a tap comes back: a "reply" button makes the user's app send its ActionBody to the bot
as an ordinary text message (keyboards page, "ActionType ... reply - will send a reply to
the bot"). A payload alone could not be told from typed text, so every choice button's
ActionBody is `POSTBACK_MARKER + tag + ":" + payload`, and the adapter parses a text message
starting with the marker as a `postback` carrying the payload (title: None, Viber does not
send the button's label). The tag is a keyed BLAKE2b MAC of the payload (RFC 7693's keyed
mode, a third of HMAC-SHA256's cost on every card) under a key derived from the auth token:
a user who types a marked text by hand cannot forge a postback for a payload we never offered
(such a text stays an ordinary message). Choice and URL buttons are `Silent`, so the marker
(or the URL an open-url button also reports) is not shown to the user as a message they wrote.

Every request stays within Viber's 30 KB (`fit`): a text too long to carry its keyboard is
split by bytes, with the keyboard on the last part; a carousel is spread over more messages.
Pure functions of the content; nothing here knows about the account or the recipient.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from itertools import chain
from typing import Any

from adapters.base import SendError
from gateway import json_codec
from gateway.downgrade import shorten
from gateway.downgrade.plain_text import action_line
from gateway.downgrade.split_text import split_text
from gateway.schema.content import (
    Action,
    ButtonsContent,
    CarouselItem,
    LinkAction,
    LocationRequestAction,
    is_choice,
)
from gateway.schema.content import Content as AnyContent

# The reserved prefix of every choice button's ActionBody (see the module docstring).
POSTBACK_MARKER = "gw:postback:"
TAG_LENGTH = 12  # hex digits of the MAC: 48 bits, beyond guessing by hand

# "Maximum total JSON size of the request is 30kb" (send-message page); counted as 30,000
# bytes of the compact UTF-8 JSON the transport sends, to stay clear of either reading.
MAX_REQUEST_BYTES = 30_000

# Buttons (keyboards page, "Buttons parameters"): Columns 1-6 of a 6-column grid, Rows 1-2 on a
# keyboard and 1-7 in rich media, Text "Max 250 characters" including its HTML tags.
GRID_COLUMNS = 6
MAX_BUTTON_TEXT = 250
# Labels: Viber crops text that does not fit a button with "…". 38 characters fill one
# full-width row (courier's Viber handler, handlers/viber/keyboard.go, maxRowRunes), and even
# fully HTML-escaped ("&" → "&amp;") 38 characters stay within the 250 above.
LABEL_MAX = 38
# Rows are filled edge to edge: three buttons share a row when each label has at most 8
# characters, two when each has at most 15, else a button has the row to itself (after
# courier's row packing, which fits 38 characters, padding included, in a row).
SHARED_ROW_LABEL = {3: 8, 2: 15}
# Viber documents no count of keyboard buttons. 12 full-width buttons are 12 rows, the most a
# portrait keyboard shows (Viber FAQ, as summarised in providers.md §5.3); a message with
# both buttons and quick replies carries both sets in its one keyboard (at most 24).
MAX_KEYBOARD_BUTTONS = 12
# ActionBody has no documented limit; 500 characters keeps 12 buttons (marker, 4-byte UTF-8
# characters and all) inside the 30 KB request limit.
PAYLOAD_MAX = 500
# Room a text must keep beside its keyboard when a request is split to fit 30 KB.
MIN_TEXT_BYTES = 64

# Rich media (send-message page, "Rich Media message / Carousel content message"):
# ButtonsGroupColumns 1-6, ButtonsGroupRows 1-7, "Buttons: Max of 6 * ButtonsGroupColumns *
# ButtonsGroupRows", i.e. at most six full blocks: six cards per message.
MAX_CARDS = 6
MAX_GROUP_ROWS = 7
IMAGE_ROWS = 3
# A card is image (3 rows) + title/description (at least 1 row) + one row per action: 3 actions.
CARD_MAX_ACTIONS = 3
# Title and description share one button's Text (≤ 250 with "<b></b><br>"); the adapter
# shortens further in the rare case that HTML escaping takes them past 250.
CARD_TITLE_MAX = 40
CARD_DESCRIPTION_MAX = 160
# alt_text: "Backward compatibility text, limited to 7,000 characters" (send-message page,
# as mirrored by the viber-bot SDKs' RichMediaMessage).
MAX_ALT_TEXT = 7000

# min_api_version each feature needs. Rich media: Viber 6.7+ (send-message page notes), API
# level 2, the default of the viber-bot SDKs' RichMediaMessage. location-picker: API level 3
# (keyboards page: "If you use api level 3 parameters you will have to set the
# min_api_version"; Viber 7.6+).
RICH_MEDIA_API = 2
LOCATION_PICKER_API = 3


def json_size(value: Any) -> int:
    """Bytes of `value` as the transport sends it (compact JSON, UTF-8, non-ASCII kept)."""
    return json_codec.size(value)


def string_bytes(text: str) -> int:
    """Bytes `text` adds inside a JSON string (additive, so text can be split by it)."""
    return json_size(text) - 2


_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def label(text: str) -> str:
    """Button Text is HTML (keyboards page, "Keyboard design"): escaped like courier does
    (html.escape(quote=False), done with one translate)."""
    return text.translate(_HTML) if ("&" in text or "<" in text or ">" in text) else text


def postback_mac(key: bytes) -> hashlib.blake2b:
    """The keyed MAC that tags choice buttons. Keying costs a compression of its own, so it is
    done once per adapter; each tag is computed on a copy (half the cost of a fresh one)."""
    return hashlib.blake2b(key=key, digest_size=TAG_LENGTH // 2)


def postback_tag(payload: str, mac: hashlib.blake2b) -> str:
    tag = mac.copy()
    tag.update(payload.encode())
    return tag.hexdigest()


def postback_body(payload: str, mac: hashlib.blake2b) -> str:
    """The ActionBody of a choice button: the marker, the payload's tag, the payload."""
    return f"{POSTBACK_MARKER}{postback_tag(payload, mac)}:{payload}"


def parse_postback(text: str, mac: hashlib.blake2b) -> str | None:
    """The payload of a tapped choice button, or None for text the user typed."""
    if not text.startswith(POSTBACK_MARKER):
        return None
    tag, separator, payload = text[len(POSTBACK_MARKER) :].partition(":")
    if not separator or not payload or len(tag) != TAG_LENGTH:
        return None
    if not hmac.compare_digest(tag.encode(), postback_tag(payload, mac).encode()):
        return None
    return payload


# --- keyboards ---------------------------------------------------------------------------


def keyboard(actions: list[Action], mac: hashlib.blake2b) -> dict[str, Any]:
    """A keyboard with one button per action, in order, each row filled edge to edge."""
    buttons: list[dict[str, Any]] = []
    start = 0
    while start < len(actions):
        per_row = next(
            (
                n
                for n, longest in SHARED_ROW_LABEL.items()
                if len(row := actions[start : start + n]) == n
                and all(len(a.title) <= longest for a in row)
            ),
            1,
        )
        for action in actions[start : start + per_row]:
            columns = GRID_COLUMNS // per_row
            buttons.append(_action(action, mac, columns, in_keyboard=True))
        start += per_row
    return {"Type": "keyboard", "Buttons": buttons}


def _action(
    action: Action, mac: hashlib.blake2b, columns: int, *, in_keyboard: bool
) -> dict[str, Any]:
    """One button, `columns` wide and one row high. Exact type tests: the schema's classes
    are final, and a failing isinstance on a model costs five times a passing one."""
    text = label(action.title)
    if is_choice(action):
        return {
            "Columns": columns,
            "Rows": 1,
            "ActionType": "reply",
            "ActionBody": postback_body(action.payload, mac),
            "Text": text,
            "Silent": True,
        }
    if type(action) is LinkAction:
        return {
            "Columns": columns,
            "Rows": 1,
            "ActionType": "open-url",
            "ActionBody": action.url,
            "Text": text,
            "Silent": True,
        }
    if type(action) is LocationRequestAction and in_keyboard:
        # "location-picker ... require[s] adding any text in the ActionBody parameter"; the
        # user's pick arrives as an ordinary location message. Not allowed in rich media.
        return {
            "Columns": columns,
            "Rows": 1,
            "ActionType": "location-picker",
            "ActionBody": "location",
            "Text": text,
        }
    raise UnsupportedAction(action.type)


class UnsupportedAction(ValueError):
    """An action Viber has no button for (the profile never lets one reach `render`)."""


def keyboard_for(content: AnyContent, mac: hashlib.blake2b) -> dict[str, Any] | None:
    """The one keyboard a part carries: its buttons, then its quick replies."""
    if type(content) is ButtonsContent:  # final class: cheaper than a failing isinstance
        actions = [*content.actions, *content.quick_replies]
        return keyboard(actions, mac)
    return keyboard(content.quick_replies, mac) if content.quick_replies else None


Finish = Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]]


def fit(
    bodies: list[tuple[dict[str, Any], dict[str, Any] | None]],
    finish: Finish,
    notes: list[str],
    measured: set[int] | frozenset[int] = frozenset(),
) -> list[dict[str, Any]]:
    """Every request within Viber's 30 KB: a text too long for its keyboard is split by bytes
    (the keyboard rides on the last part); anything else that cannot fit is refused."""
    requests: list[dict[str, Any]] = []
    for body, board in bodies:
        request = finish(body, board)
        if id(body) in measured or json_size(request) <= MAX_REQUEST_BYTES:
            requests.append(request)
            continue
        budget = MAX_REQUEST_BYTES - json_size(finish({**body, "text": ""}, board))
        if body["type"] != "text" or budget < MIN_TEXT_BYTES:
            raise SendError(
                "permanent",
                "3",
                f"badData: a {body['type']} message over Viber's 30 KB request limit",
            )
        chunks = split_text(body["text"], budget, string_bytes)
        notes.append(f"text sent in {len(chunks)} parts to stay within Viber's 30 KB")
        last = len(chunks) - 1
        requests += [
            finish({**body, "text": chunk}, board if i == last else None)
            for i, chunk in enumerate(chunks)
        ]
    return requests


def api_level(keyboard: dict[str, Any] | None) -> int:
    buttons = keyboard["Buttons"] if keyboard else []
    pickers = any(b["ActionType"] == "location-picker" for b in buttons)
    return LOCATION_PICKER_API if pickers else 1


# --- rich media --------------------------------------------------------------------------


def rich_media_bodies(
    items: list[CarouselItem], fits: Callable[[dict[str, Any]], bool], mac: hashlib.blake2b
) -> tuple[list[dict[str, Any]], list[str]]:
    """`rich_media` message bodies for the cards (≤ MAX_CARDS each, each body `fits`), and
    notes on anything changed on the way (a text shortened, an image without a URL)."""
    notes: list[str] = []
    images = [item.media.url if item.media is not None else None for item in items]
    rows = group_rows(items, images)
    cards = [
        _card(item, image, rows, notes, mac) for item, image in zip(items, images, strict=True)
    ]
    bodies: list[dict[str, Any]] = []
    start = 0
    while start < len(cards):
        end = min(start + MAX_CARDS, len(cards))
        body = _rich_body(cards[start:end], rows)
        if not fits(body):  # rare: measure card by card only when a full group is too big
            end = start + 1
            while end < len(cards) and end - start < MAX_CARDS:
                if not fits(_rich_body(cards[start : end + 1], rows)):
                    break
                end += 1
            body = _rich_body(cards[start:end], rows)
        bodies.append(body)
        start = end
    if len(bodies) > (len(items) + MAX_CARDS - 1) // MAX_CARDS:
        notes.append(f"carousel sent as {len(bodies)} rich media messages: 30 KB request limit")
    return bodies, notes


def group_rows(items: list[CarouselItem], images: list[str | None]) -> int:
    """Rows per card: image (when any card has one), two for the text, then the actions."""
    image = IMAGE_ROWS if any(images) else 0
    actions = max(len(item.actions) for item in items)
    return min(MAX_GROUP_ROWS, image + 2 + actions)


# One card: its buttons, and its alt text (the card as lines, for a Viber too old for rich
# media). A plain tuple: a NamedTuple's constructor is a Python call per card.
_Card = tuple[list[dict[str, Any]], str]


def _rich_body(cards: list[_Card], rows: int) -> dict[str, Any]:
    return {
        "type": "rich_media",
        "rich_media": {
            "Type": "rich_media",
            "ButtonsGroupColumns": GRID_COLUMNS,
            "ButtonsGroupRows": rows,
            "BgColor": "#FFFFFF",
            "Buttons": list(chain.from_iterable([buttons for buttons, _ in cards])),
        },
        "alt_text": shorten("\n".join([alt for _, alt in cards]), MAX_ALT_TEXT),
    }


def _card(
    item: CarouselItem, image: str | None, rows: int, notes: list[str], mac: hashlib.blake2b
) -> _Card:
    """One card's buttons, filling exactly `rows` rows of the 6-column block, and its alt text.
    A tap on the picture or the text opens the card's link, or does nothing. Runs for every
    card sent: built inline, the card's fields read once (a model attribute is slow to read)."""
    title, description, actions, link = item.title, item.description, item.actions, item.default_url
    if not image and item.media is not None:
        notes.append(f"card {title!r}: image left out, Viber needs its URL (media.url)")
    text = _card_markup(title, description)
    if len(text) > MAX_BUTTON_TEXT:  # only when escaping (&, <, >) lengthened the text
        text = _shortened_text(title, description or "", notes)
    text_rows = rows - len(actions) - (IMAGE_ROWS if image else 0)
    kind, target = ("open-url", link) if link else ("none", "none")
    words = {"Columns": GRID_COLUMNS, "Rows": text_rows, "ActionType": kind, "ActionBody": target,
             "Text": text, "TextVAlign": "middle", "TextHAlign": "left"}  # fmt: skip
    buttons = [words]
    if image:
        picture = {"Columns": GRID_COLUMNS, "Rows": IMAGE_ROWS, "ActionType": kind,
                   "ActionBody": target, "Image": image}  # fmt: skip
        buttons.insert(0, picture)
    alt = f"{title} - {description}" if description else title
    if link:  # Silent: the URL a tap opens is not echoed as a message the user wrote
        for button in buttons:
            button["Silent"] = True
        alt += f"\n   {link}"
    for action in actions:
        buttons.append(_action(action, mac, GRID_COLUMNS, in_keyboard=False))
        if type(action) is LinkAction:  # final class: cheaper than a failing isinstance
            alt += f"\n   {action_line(action)}"
    return buttons, alt


def _shortened_text(title: str, description: str, notes: list[str]) -> str:
    """Title and description cut until their escaped markup fits Viber's 250."""
    original = title
    text = _card_markup(title, description)
    while len(text) > MAX_BUTTON_TEXT:
        if description:
            description = shorten(description, len(description) - 1) if len(description) > 1 else ""
        else:
            title = shorten(title, len(title) - 1)
        text = _card_markup(title, description)
    notes.append(f"card {original!r}: text shortened to Viber's {MAX_BUTTON_TEXT}")
    return text


def _card_markup(title: str, description: str | None) -> str:
    if description:
        return f"<b>{label(title)}</b><br>{label(description)}"
    return f"<b>{label(title)}</b>"
