"""Property: whatever a backend sends, the engine + Viber's real profile + the adapter produce
send_message bodies that Viber's rules accept, checked on the rendered JSON, and every choice
offered is reachable: a button whose tap parses back to its payload, or a numbered choice."""

from __future__ import annotations

import json
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import SendContext
from adapters.viber import MAX_TEXT, ViberAdapter, ViberConfig
from adapters.viber import render as rich
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER
from gateway.simulator.viber import rich_media_cards, validate

from .test_downgrade_properties import TITLE, messages, offered

CONTEXT = SendContext("msg_prop", "01234567890A=", now=0.0)
NO_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
UNICODE = st.text(
    st.characters(codec="utf-8", exclude_categories=NO_SURROGATES), min_size=1, max_size=7000
).filter(str.strip)
PAYLOAD = st.text(
    st.characters(codec="utf-8", exclude_categories=NO_SURROGATES), min_size=1, max_size=600
)


def adapter() -> ViberAdapter:
    return ViberAdapter(
        ViberConfig(id="vb-main", type="viber", auth_token="t" * 20, sender_name="Lucky Shrub")
    )


ADAPTER = adapter()


@st.composite
def actions(draw: Any, high: int = 6) -> list[dict[str, Any]]:
    """Every action kind, with long and non-ASCII titles and payloads."""
    made: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, high))):
        kind = draw(st.sampled_from(["reply", "postback", "link", "call", "buy", "location"]))
        title = draw(TITLE)
        if kind in ("reply", "postback"):
            made.append({"type": kind, "title": title, "payload": f"{n}:" + draw(PAYLOAD)})
        elif kind == "link":
            made.append({"type": "link", "title": title, "url": f"https://x.example/{n}"})
        elif kind == "call":
            made.append({"type": "call", "title": title, "phone": "+4930123456"})
        elif kind == "buy":
            made.append(
                {
                    "type": "buy",
                    "title": title,
                    "amount": "9.50",
                    "currency": "EUR",
                    "url": "https://p.example",
                }
            )
        else:
            made.append({"type": "location_request", "title": title})
    return made


@st.composite
def rich_messages(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "buttons", "carousel", "image"]))
    if kind == "text":
        return {"type": "text", "text": draw(UNICODE), "quick_replies": draw(actions(14))}
    if kind == "buttons":
        return {"type": "buttons", "text": draw(UNICODE), "actions": draw(actions(14))}
    if kind == "image":
        return {
            "type": "image",
            "media": {"url": "https://cdn.example.com/a.jpg"},
            "caption": draw(st.none() | TITLE),
            # No payment quick replies here: on a part without text the engine builds buttons
            # with an empty text (reported; see the engine's quick_replies()).
            "quick_replies": [a for a in draw(actions(3)) if a["type"] != "buy"],
        }
    cards = draw(st.integers(1, 8))
    return {
        "type": "carousel",
        "text": draw(st.none() | TITLE),
        "items": [
            {
                "title": draw(TITLE) + draw(st.sampled_from(["", " & <co>" * 20])),
                "description": draw(st.none() | UNICODE.map(lambda t: t[:300])),
                "media": draw(st.none() | st.just({"url": f"https://cdn.example.com/{n}.jpg"})),
                "default_url": draw(st.none() | st.just(f"https://shop.example.com/{n}")),
                "actions": [
                    a for a in draw(actions(4)) if a["type"] not in ("call", "location_request")
                ],
            }
            for n in range(cards)
        ],
    }


def choices_offered(message: dict[str, Any]) -> set[str]:
    found = set()
    for action in [*message.get("actions", []), *message.get("quick_replies", [])]:
        if action["type"] in ("reply", "postback"):
            found.add(action["payload"])
    for item in message.get("items", []):
        found |= {a["payload"] for a in item["actions"] if a["type"] in ("reply", "postback")}
    for section in message.get("sections", []):
        found |= {i["payload"] for i in section["items"]}
    return found


def tapped(action_body: str) -> str | None:
    """What the adapter makes of the user's tap on a button with this ActionBody."""
    callback = {
        "event": "message",
        "timestamp": 1457764197627,
        "message_token": 5741311803571721087,
        "sender": {"id": "01234567890A="},
        "message": {"type": "text", "text": action_body},
    }
    [event] = ADAPTER.parse(json.dumps(callback).encode())
    draft = event.draft
    return draft.postback.payload if draft.type == "postback" and draft.postback else None


def check_keyboard(keyboard: dict[str, Any]) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = keyboard["Buttons"]
    assert 1 <= len(buttons) <= rich.MAX_KEYBOARD_BUTTONS
    used = 0
    for button in buttons:  # rows are filled edge to edge, never left half empty
        assert button["Rows"] == 1 and button["Columns"] in (2, 3, 6)
        used = (used + button["Columns"]) % rich.GRID_COLUMNS
        assert len(button["Text"]) <= rich.MAX_BUTTON_TEXT
    assert used == 0
    return buttons


def check_rich_media(body: dict[str, Any]) -> list[dict[str, Any]]:
    media = body["rich_media"]
    assert body["min_api_version"] >= rich.RICH_MEDIA_API
    assert len(body["alt_text"]) <= rich.MAX_ALT_TEXT
    assert media["ButtonsGroupColumns"] == 6 and 1 <= media["ButtonsGroupRows"] <= 7
    cards = rich_media_cards(media)
    assert 1 <= len(cards) <= rich.MAX_CARDS
    for card in cards:  # each card fills its block exactly, so the next starts a new one
        assert sum(b["Rows"] for b in card) == media["ButtonsGroupRows"]
        assert len([b for b in card if b["ActionType"] != "none" and "Image" not in b]) <= 4
        assert all(len(b.get("Text", "")) <= rich.MAX_BUTTON_TEXT for b in card)
    return [b for card in cards for b in card]


def check(message: dict[str, Any]) -> None:
    planned = plan(CONTENT_ADAPTER.validate_python(message), ADAPTER.profile)
    requests = ADAPTER.render_parts(planned.parts, CONTEXT)
    reachable = {c.payload for c in planned.choices}
    for request in requests:
        assert (request.method, request.path) == ("POST", "/send_message")
        body = request.json
        assert body is not None
        assert rich.json_size(body) <= rich.MAX_REQUEST_BYTES  # the transport's exact bytes
        validate(body)  # the simulator's copy of Viber's rules: counts, lengths, API levels
        buttons: list[dict[str, Any]] = []
        if body["type"] == "text":
            assert 1 <= len(body["text"]) <= MAX_TEXT
        if body["type"] == "rich_media":
            buttons += check_rich_media(body)
        if "keyboard" in body:
            buttons += check_keyboard(body["keyboard"])
            if any(b["ActionType"] == "location-picker" for b in buttons):
                assert body["min_api_version"] >= rich.LOCATION_PICKER_API
        for button in buttons:
            if button["ActionType"] == "reply":
                payload = tapped(button["ActionBody"])
                assert payload is not None
                reachable.add(payload)
    offered_here = choices_offered(message)
    assert offered_here <= reachable
    numbers = [c.number for c in planned.choices]
    assert numbers == list(range(1, len(numbers) + 1))


@settings(max_examples=200, deadline=None)
@given(messages())
def test_shared_messages_render_within_vibers_limits(message: dict[str, Any]) -> None:
    assert choices_offered(message) == offered(message)
    check(message)


@settings(max_examples=300, deadline=None)
@given(rich_messages())
def test_every_action_kind_renders_within_vibers_limits(message: dict[str, Any]) -> None:
    check(message)
