"""The router's conversation decisions, as tables, without I/O: which conversation an inbound
message goes to, who gets a copy, and how each copy is attributed."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.router.conversations import (
    Membership,
    Seat,
    conversation_for,
    recipients,
    relay_targets,
)
from gateway.router.relay import relayed
from gateway.schema import CONTENT_ADAPTER, ParticipantRef

JASPER = ParticipantRef(id="par_j", role="courier", display_name="Jasper")


def seat(pid: str, conversation: str = "conv_A", present: bool = True) -> Seat:
    return Seat(pid, conversation, "wa", f"id-{pid}", "customer", pid.title(), None, present)


SEATS = [seat("a"), seat("b"), seat("c"), seat("gone", present=False)]


@pytest.mark.parametrize(
    ("memberships", "chosen"),
    [
        ([], None),
        ([Membership(seat("a", "conv_A"), "relay", 5.0)], "conv_A"),
        (
            [
                Membership(seat("a", "conv_A"), "relay", 5.0),
                Membership(seat("a", "conv_B"), "hub", 9.0),
            ],
            "conv_B",
        ),
        (  # a tie: the newer conversation (ids are time-ordered)
            [
                Membership(seat("a", "conv_B"), "relay", 5.0),
                Membership(seat("a", "conv_A"), "relay", 5.0),
            ],
            "conv_B",
        ),
        ([Membership(seat("a", "conv_A", present=False), "relay", 5.0)], None),
    ],
)
def test_which_conversation_an_inbound_message_joins(
    memberships: list[Membership], chosen: str | None
) -> None:
    found = conversation_for(memberships)
    assert (found.seat.conversation_id if found else None) == chosen


@pytest.mark.parametrize(
    ("author", "only", "expected"),
    [
        ("a", None, ["b", "c"]),
        (None, None, ["a", "b", "c"]),
        (None, ["c", "gone"], ["c"]),
        ("a", ["a", "b"], ["b"]),
    ],
)
def test_who_gets_a_copy(author: str | None, only: list[str] | None, expected: list[str]) -> None:
    assert [s.id for s in recipients(SEATS, author, only)] == expected


def test_hub_mode_relays_nothing() -> None:
    assert [s.id for s in relay_targets("relay", SEATS, "b")] == ["a", "c"]
    assert relay_targets("hub", SEATS, "b") == []
    assert relay_targets("relay", SEATS, "b", "form_response") == []


def content(**fields: Any) -> Any:
    return CONTENT_ADAPTER.validate_python(fields)


CARD = {"title": "Funghi", "actions": [{"type": "reply", "title": "Order", "payload": "F"}]}


@pytest.mark.parametrize(
    ("given", "source", "expected"),
    [
        (
            {"type": "text", "text": "stuck in traffic"},
            "sms",
            [{"type": "text", "text": "Jasper (courier): stuck in traffic"}],
        ),
        (
            {"type": "image", "media": {"url": "https://x/1.jpg"}, "caption": "the door"},
            "sms",
            [
                {
                    "type": "image",
                    "media": {"url": "https://x/1.jpg"},
                    "caption": "Jasper (courier): the door",
                }
            ],
        ),
        (
            {"type": "image", "media": {"url": "https://x/1.jpg"}},
            "sms",
            [{"type": "image", "media": {"url": "https://x/1.jpg"}, "caption": "Jasper (courier)"}],
        ),
        (  # by its URL alone on another channel: its media id is the other provider's
            {"type": "image", "media": {"url": "https://x/1.jpg", "provider_media_id": "ME1"}},
            "sms",
            [{"type": "image", "media": {"url": "https://x/1.jpg"}, "caption": "Jasper (courier)"}],
        ),
        (  # another provider's media id cannot be fetched on this channel
            {"type": "image", "media": {"provider_media_id": "1234"}},
            "wa-other",
            [{"type": "text", "text": "Jasper (courier): sent an image"}],
        ),
        (  # on the channel it came in on, it can
            {"type": "video", "media": {"provider_media_id": "1234"}},
            "wa",
            [
                {
                    "type": "video",
                    "media": {"provider_media_id": "1234"},
                    "caption": "Jasper (courier)",
                }
            ],
        ),
        (
            {"type": "sticker", "media": {"url": "https://x/s.webp"}},
            "sms",
            [
                {"type": "text", "text": "Jasper (courier):"},
                {"type": "sticker", "media": {"url": "https://x/s.webp"}},
            ],
        ),
        (
            {"type": "location", "latitude": 1.0, "longitude": 2.0},
            "sms",
            [
                {
                    "type": "location",
                    "latitude": 1.0,
                    "longitude": 2.0,
                    "name": "Jasper (courier)",
                }
            ],
        ),
        (  # a carousel's lead line says who offers it; the cards are unchanged
            {"type": "carousel", "items": [CARD]},
            None,
            [{"type": "carousel", "text": "Jasper (courier)", "items": [CARD]}],
        ),
        (
            {"type": "buttons", "text": "Ready?", "actions": CARD["actions"]},
            None,
            [{"type": "buttons", "text": "Jasper (courier): Ready?", "actions": CARD["actions"]}],
        ),
        (
            {"type": "contacts", "contacts": [{"name": {"formatted_name": "Ana"}}]},
            "sms",
            [
                {"type": "text", "text": "Jasper (courier):"},
                {"type": "contacts", "contacts": [{"name": {"formatted_name": "Ana"}}]},
            ],
        ),
    ],
)
def test_how_a_copy_is_attributed(
    given: dict[str, Any], source: str | None, expected: list[dict[str, Any]]
) -> None:
    copies = relayed(content(**given), JASPER, "wa", source)
    assert [
        c.model_dump(exclude_none=True, exclude_defaults=True) | {"type": c.type} for c in copies
    ] == [
        content(**e).model_dump(exclude_none=True, exclude_defaults=True) | {"type": e["type"]}
        for e in expected
    ]


def test_the_business_speaks_unattributed() -> None:
    carousel = content(type="carousel", text="Tonight", items=[CARD])
    assert relayed(carousel, None, "wa") == [carousel]
    # A backend's own media id is passed on as given: what it names is its business.
    image = content(type="image", media={"provider_media_id": "1"})
    assert relayed(image, None, "sms") == [image]
