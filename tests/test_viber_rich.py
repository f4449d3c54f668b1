"""Viber keyboards and rich media at their edges: the 30 KB request limit, HTML escaping in
button text, images without a URL, actions Viber has no button for, API levels."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import ProviderRequest, SendContext, SendError
from adapters.viber import ViberAdapter, ViberConfig
from adapters.viber import render as rich
from gateway.schema import CONTENT_ADAPTER

TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
CONTEXT = SendContext("msg_1", "01234567890A=", 0.0)


def render(content: dict[str, Any], **config: Any) -> list[ProviderRequest]:
    settings = {"id": "vb-main", "type": "viber", "auth_token": TOKEN, "sender_name": "Lucky Shrub"}
    adapter = ViberAdapter(ViberConfig.model_validate(settings | config))
    return adapter.render(CONTENT_ADAPTER.validate_python(content), CONTEXT)


def reply(n: int, payload: str = "") -> dict[str, Any]:
    return {"type": "reply", "title": f"Option {n}", "payload": f"P{n}{payload}"}


def card(n: int, **extra: Any) -> dict[str, Any]:
    return {"title": f"Dish {n}", "actions": [reply(n)]} | extra


def size(request: ProviderRequest) -> int:
    return rich.json_size(request.json)


def test_a_text_too_long_for_its_keyboard_is_split_and_the_keyboard_goes_last() -> None:
    text = "😀" * 7000  # 28,000 bytes: with twelve buttons over 30 KB
    replies = [reply(n, "x" * 400) for n in range(12)]
    requests = render({"type": "text", "text": text, "quick_replies": replies})
    assert len(requests) == 2
    assert all(size(r) <= rich.MAX_REQUEST_BYTES for r in requests)
    first, last = (r.json or {} for r in requests)
    assert "keyboard" not in first and len(last["keyboard"]["Buttons"]) == 12
    assert first["text"] + last["text"] == text
    assert requests[0].note == "text sent in 2 parts to stay within Viber's 30 KB"


def test_more_than_six_cards_go_as_several_rich_media_messages() -> None:
    requests = render({"type": "carousel", "items": [card(n) for n in range(8)]})
    bodies = [r.json or {} for r in requests]
    assert [b["type"] for b in bodies] == ["rich_media", "rich_media"]
    assert [b["alt_text"].count("Dish") for b in bodies] == [6, 2]


def test_heavy_cards_are_spread_so_each_request_fits_30_kb() -> None:
    heavy = "😀" * 490  # payloads of 4-byte characters, three per card
    items = [
        card(n, actions=[reply(n * 3 + k, heavy) for k in range(3)], description="ü" * 160)
        for n in range(6)
    ]
    requests = render({"type": "carousel", "items": items})
    assert len(requests) == 2 and all(size(r) <= rich.MAX_REQUEST_BYTES for r in requests)
    assert requests[0].note == "carousel sent as 2 rich media messages: 30 KB request limit"


def test_a_card_that_cannot_fit_30_kb_is_refused() -> None:
    huge = {"url": "https://cdn.example.com/" + "a" * 31_000 + ".jpg"}
    with pytest.raises(SendError) as caught:
        render({"type": "carousel", "items": [card(1, media=huge)]})
    assert (caught.value.category, caught.value.code) == ("permanent", "3")
    assert "30 KB" in caught.value.title


def test_card_text_escaped_past_250_is_shortened_with_a_note() -> None:
    item = card(1, title="R&D " * 10, description="<>&" * 50)
    [request] = render({"type": "carousel", "items": [item]})
    texts = [b["Text"] for b in (request.json or {})["rich_media"]["Buttons"] if "Text" in b]
    assert all(len(t) <= rich.MAX_BUTTON_TEXT for t in texts)
    assert texts[0].startswith("<b>R&amp;D R&amp;D")
    assert (
        request.note
        == "card 'R&D R&D R&D R&D R&D R&D R&D R&D R&D R&D ': text shortened to Viber's 250"
    )


def test_a_card_image_without_url_is_left_out_with_a_note() -> None:
    item = card(1, media={"provider_media_id": "123"})
    [request] = render({"type": "carousel", "items": [item]})
    buttons = (request.json or {})["rich_media"]["Buttons"]
    assert [b.get("Image") for b in buttons] == [None, None]
    assert request.note == "card 'Dish 1': image left out, Viber needs its URL (media.url)"


def test_an_action_viber_has_no_button_for_is_refused() -> None:
    call = {"type": "call", "title": "Call us", "phone": "+4930123456"}
    with pytest.raises(SendError) as caught:
        render({"type": "text", "text": "Hi", "quick_replies": [call]})
    assert caught.value.category == "permanent"
    assert caught.value.title == "Viber has no button for a call action"


@pytest.mark.parametrize(
    ("configured", "content", "expected"),
    [
        (1, {"type": "carousel", "items": [card(1)]}, 2),
        (5, {"type": "carousel", "items": [card(1)]}, 5),
        (1, {"type": "text", "text": "Hi", "quick_replies": [{"type": "location_request"}]}, 3),
        (1, {"type": "text", "text": "Hi", "quick_replies": [reply(1)]}, 1),
    ],
    ids=["rich_media_2", "configured_higher_wins", "location_picker_3", "keyboard_1"],
)
def test_min_api_version_is_the_configured_one_raised_to_what_the_message_needs(
    configured: int, content: dict[str, Any], expected: int
) -> None:
    [request] = render(content, min_api_version=configured)
    assert (request.json or {})["min_api_version"] == expected


KEY = b"k" * 32
MAC = rich.postback_mac(KEY)


@pytest.mark.parametrize(
    ("text", "payload"),
    [
        (rich.postback_body("ORDER_FUNGHI", MAC), "ORDER_FUNGHI"),
        (rich.postback_body("a:b", MAC), "a:b"),  # colons in a payload survive
        (
            rich.postback_body("ORDER_FUNGHI", rich.postback_mac(b"another account")),
            None,
        ),  # not our tag
        ("gw:postback:ORDER_FUNGHI", None),  # typed by hand, no tag
        ("gw:postback:0123456789ab:REFUND", None),  # a guessed tag
        ("gw:postback:", None),
        ("GW:POSTBACK:x", None),
        ("ORDER_FUNGHI", None),
    ],
)
def test_parse_postback(text: str, payload: str | None) -> None:
    assert rich.parse_postback(text, MAC) == payload


def test_profile_limits_fit_the_30_kb_with_full_keyboards() -> None:
    # Worst case the profile allows for a keyboard: every button at its longest label (fully
    # escaped) and payload (4-byte characters), beside at least a little text.
    longest = [{"type": "reply", "title": "&" * rich.LABEL_MAX, "payload": "😀" * 500}] * 12
    board = rich.keyboard(
        CONTENT_ADAPTER.validate_python(
            {"type": "text", "text": "x", "quick_replies": longest}
        ).quick_replies,
        MAC,
    )
    assert rich.json_size(board) < rich.MAX_REQUEST_BYTES - 1000


def test_buttons_and_quick_replies_share_the_one_keyboard_buttons_first() -> None:
    content = {
        "type": "buttons",
        "text": "Pick",
        "actions": [reply(1), reply(2)],
        "quick_replies": [{"type": "location_request", "title": "Where am I"}],
    }
    [request] = render(content)
    body = request.json or {}
    assert [b["Text"] for b in body["keyboard"]["Buttons"]] == [
        "Option 1",
        "Option 2",
        "Where am I",
    ]
    assert [b["Columns"] for b in body["keyboard"]["Buttons"]] == [3, 3, 6]
    assert body["min_api_version"] == 3
