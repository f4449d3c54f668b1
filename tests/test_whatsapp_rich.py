"""WhatsApp interactive rendering beyond the golden fixtures: headers, uniqueness rules, section
titles and where a location request's prompt goes. Every body must pass the simulator's checks."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import SendContext, SendError
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER
from gateway.simulator.whatsapp import validate

from .test_whatsapp_golden import make_adapter

OPEN = SendContext("msg_1", "16505551234", now=1_700_000_060.0, last_inbound_at=1_700_000_000.0)


def render(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The send bodies (without the envelope) for `message`, engine and adapter together."""
    adapter = make_adapter()
    planned = plan(CONTENT_ADAPTER.validate_python(message), adapter.profile)
    bodies = []
    for request in adapter.render_parts(planned.parts, OPEN):
        assert request.json is not None
        validate(request.json)
        envelope = ("messaging_product", "recipient_type", "to")
        bodies.append({k: v for k, v in request.json.items() if k not in envelope})
    return bodies


def replies(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"type": "reply", "title": title, "payload": payload} for title, payload in pairs]


def test_buttons_with_text_header_and_footer() -> None:
    [body] = render(
        {
            "type": "buttons",
            "text": "Is someone home?",
            "header": "Delivery",
            "footer": "Reply any time",
            "actions": replies(("Yes", "Y"), ("No", "N")),
        }
    )
    assert body["interactive"] == {
        "type": "button",
        "header": {"type": "text", "text": "Delivery"},
        "body": {"text": "Is someone home?"},
        "footer": {"text": "Reply any time"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "Y", "title": "Yes"}},
                {"type": "reply", "reply": {"id": "N", "title": "No"}},
            ]
        },
    }


@pytest.mark.parametrize(
    ("media", "header"),
    [
        (
            {"url": "https://cdn.example.com/a.jpg"},
            {"type": "image", "image": {"link": "https://cdn.example.com/a.jpg"}},
        ),
        (
            {"url": "https://cdn.example.com/clip?v=1", "mime_type": "video/mp4"},
            {"type": "video", "video": {"link": "https://cdn.example.com/clip?v=1"}},
        ),
        (
            {"url": "https://cdn.example.com/clip.MP4"},
            {"type": "video", "video": {"link": "https://cdn.example.com/clip.MP4"}},
        ),
        (
            {"provider_media_id": "1234", "mime_type": "application/pdf", "filename": "a.pdf"},
            {"type": "document", "document": {"id": "1234", "filename": "a.pdf"}},
        ),
        ({"provider_media_id": "99"}, {"type": "image", "image": {"id": "99"}}),
    ],
)
def test_media_header_kind(media: dict[str, Any], header: dict[str, Any]) -> None:
    [body] = render(
        {"type": "buttons", "text": "Look", "media": media, "actions": replies(("Ok", "OK"))}
    )
    assert body["interactive"]["header"] == header


def test_media_and_text_header_the_text_joins_the_body() -> None:
    [body] = render(
        {
            "type": "buttons",
            "text": "Fresh today",
            "header": "Menu",
            "media": {"url": "https://cdn.example.com/a.jpg"},
            "actions": replies(("Order", "ORDER")),
        }
    )
    assert body["interactive"]["header"]["type"] == "image"
    assert body["interactive"]["body"] == {"text": "Menu\nFresh today"}


def test_media_and_text_header_with_a_full_body_the_header_goes_first() -> None:
    first, second = render(
        {
            "type": "buttons",
            "text": "x" * 1024,
            "header": "Menu",
            "media": {"url": "https://cdn.example.com/a.jpg"},
            "actions": replies(("Order", "ORDER")),
        }
    )
    assert first == {"type": "text", "text": {"preview_url": False, "body": "Menu"}}
    assert second["interactive"]["body"] == {"text": "x" * 1024}


def test_equal_titles_get_a_counter_and_equal_payloads_one_button() -> None:
    [body] = render(
        {
            "type": "buttons",
            "text": "Pick",
            "actions": replies(
                ("Order now please ok", "A"), ("Order now please ok", "B"), ("X", "A")
            ),
        }
    )
    assert [b["reply"] for b in body["interactive"]["action"]["buttons"]] == [
        {"id": "A", "title": "Order now please ok"},
        {"id": "B", "title": "Order now please (2)"},
    ]


def test_untitled_sections_are_titled_and_a_repeated_row_id_is_kept_once() -> None:
    [one] = render(
        {
            "type": "list",
            "text": "Pick",
            "button": "Sizes",
            "sections": [
                {"items": [{"title": "S", "payload": "S"}, {"title": "M", "payload": "M"}]}
            ],
        }
    )
    assert one["interactive"]["action"]["sections"][0]["title"] == "Sizes"
    [two] = render(
        {
            "type": "list",
            "text": "Pick",
            "sections": [
                {"items": [{"title": "S", "payload": "S"}]},
                {"items": [{"title": "M", "payload": "M"}, {"title": "Small", "payload": "S"}]},
            ],
        }
    )
    assert two["interactive"]["action"] == {
        "button": "Options",
        "sections": [
            {"title": "Options 1", "rows": [{"id": "S", "title": "S"}]},
            {"title": "Options 2", "rows": [{"id": "M", "title": "M"}]},
        ],
    }


def test_four_to_ten_choices_are_a_list_more_are_numbered() -> None:
    [listed] = render(
        {
            "type": "text",
            "text": "Rate us",
            "quick_replies": replies(*[(f"{n} stars", f"R{n}") for n in range(1, 5)]),
        }
    )
    assert listed["interactive"]["type"] == "list"
    assert [r["id"] for r in listed["interactive"]["action"]["sections"][0]["rows"]] == [
        "R1",
        "R2",
        "R3",
        "R4",
    ]
    [numbered] = render(
        {
            "type": "buttons",
            "text": "Pick",
            "actions": replies(*[(f"n{n}", f"P{n}") for n in range(11)]),
        }
    )
    assert numbered["type"] == "text"
    assert "11. n10" in numbered["text"]["body"]


def test_location_request_takes_the_prompt_as_its_body() -> None:
    [body] = render(
        {
            "type": "text",
            "text": "Where should we deliver?",
            "quick_replies": [{"type": "location_request"}],
        }
    )
    assert body["interactive"] == {
        "type": "location_request_message",
        "body": {"text": "Where should we deliver?"},
        "action": {"name": "send_location"},
    }


def test_location_request_beside_choices_keeps_the_choices_as_buttons() -> None:
    adapter = make_adapter()
    content = CONTENT_ADAPTER.validate_python(
        {
            "type": "buttons",
            "text": "Pickup or delivery?",
            "actions": [
                *replies(("Pickup", "PICKUP")),
                {"type": "location_request", "title": "Deliver here"},
            ],
        }
    )
    planned = plan(content, adapter.profile)
    buttons, location = adapter.render_parts(planned.parts, OPEN)
    assert buttons.json is not None and location.json is not None
    validate(buttons.json)
    validate(location.json)
    assert buttons.json["interactive"]["type"] == "button"
    assert buttons.json["interactive"]["body"]["text"] == "Pickup or delivery?"
    assert location.json["interactive"] == {
        "type": "location_request_message",
        "body": {"text": "Deliver here"},
        "action": {"name": "send_location"},
    }
    assert planned.choices == []


def test_location_request_with_a_long_prompt_goes_after_it() -> None:
    prompt = "word " * 300
    text, request = render(
        {
            "type": "text",
            "text": prompt.strip(),
            "quick_replies": [{"type": "location_request", "title": "Here"}],
        }
    )
    assert text["text"]["body"] == prompt.strip()
    assert request["interactive"]["body"] == {"text": "Here"}


def test_location_request_on_media_uses_its_title() -> None:
    image, request = render(
        {
            "type": "image",
            "media": {"url": "https://cdn.example.com/map.png"},
            "quick_replies": [{"type": "location_request", "title": "Share where you are"}],
        }
    )
    assert image["type"] == "image"
    assert request["interactive"]["body"] == {"text": "Share where you are"}


def test_interactive_outside_the_window_is_refused() -> None:
    closed = SendContext("m", "16505551234", now=1_700_100_000.0, last_inbound_at=1_700_000_000.0)
    adapter = make_adapter()
    content = CONTENT_ADAPTER.validate_python(
        {"type": "buttons", "text": "Pick", "actions": replies(("Yes", "Y"))}
    )
    with pytest.raises(SendError, match="24 hours"):
        adapter.render_parts(plan(content, adapter.profile).parts, closed)


@pytest.mark.parametrize("count", [2, 5], ids=["buttons", "list"])
def test_quick_replies_on_an_image(count: int) -> None:
    quick = replies(*[(f"Option {n}", f"P{n}") for n in range(count)])
    bodies = render(
        {"type": "image", "media": {"url": "https://cdn.example.com/a.jpg"}, "quick_replies": quick}
    )
    assert bodies[0]["type"] == "image" and bodies[1]["type"] == "interactive"


def _cards(*actions: list[dict[str, Any]], mime: str = "image/jpeg") -> dict[str, Any]:
    return {
        "type": "carousel",
        "text": "Picks",
        "items": [
            {
                "title": f"Card {n}",
                "media": {"url": f"https://cdn.example.com/{n}", "mime_type": mime},
                "actions": acts,
            }
            for n, acts in enumerate(actions)
        ],
    }


LINK = {"type": "link", "title": "Open", "url": "https://shop.example.com"}


@pytest.mark.parametrize(
    ("message", "native"),
    [
        # Quick-reply cards and one-URL cards are media carousels...
        (_cards(replies(("Buy", "B0")), replies(("Buy", "B1"))), True),
        (_cards([LINK], [LINK]), True),
        # ...cards without a button, with unlike buttons, a lone card or documents are not.
        (_cards([], []), False),
        (_cards(replies(("Buy", "B0")), [LINK]), False),
        (_cards(replies(("Buy", "B0"))), False),
        (_cards([LINK, LINK], [LINK, LINK]), False),
        (_cards(replies(("Buy", "B0")), replies(("Buy", "B1")), mime="application/pdf"), False),
    ],
)
def test_media_carousel_only_for_cards_meta_accepts(message: dict[str, Any], native: bool) -> None:
    kinds = [b["interactive"]["type"] for b in render(message) if b["type"] == "interactive"]
    assert ("carousel" in kinds) is native


def test_media_carousel_needs_one_kind_of_media_on_every_card() -> None:
    message = _cards(replies(("Buy", "B0")), replies(("Buy", "B1")))
    message["items"][1]["media"]["mime_type"] = "video/mp4"
    kinds = [b["interactive"]["type"] for b in render(message) if b["type"] == "interactive"]
    assert kinds == ["button", "button"]  # one reply-buttons message per card instead


def test_a_cards_tap_link_becomes_a_line_of_its_text() -> None:
    message = _cards(replies(("Buy", "B0")), replies(("Buy", "B1")))
    message["items"][0]["default_url"] = "https://shop.example.com/0"
    planned = plan(CONTENT_ADAPTER.validate_python(message), make_adapter().profile)
    assert [str(d) for d in planned.downgrades] == [
        "default_url → text: whatsapp carousel cards open no link when tapped"
    ]
    [body] = render(message)
    cards = body["interactive"]["action"]["cards"]
    assert cards[0]["body"]["text"] == "*Card 0*\nhttps://shop.example.com/0"
    assert cards[1]["body"]["text"] == "*Card 1*"
