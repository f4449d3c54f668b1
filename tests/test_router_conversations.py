"""The router's conversation decisions, as tables, without I/O: which conversation an inbound
message goes to, who gets a copy, and how each copy is attributed."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.router.conversations import (
    Ask,
    Membership,
    Routed,
    RouteFacts,
    RoutingPolicy,
    Seat,
    after_timeout,
    answered,
    conversation_for,
    label_of,
    provider_group,
    question_choices,
    question_text,
    recipients,
    relay_targets,
)
from gateway.router.relay import relayed
from gateway.schema import CONTENT_ADAPTER, ParticipantRef

JASPER = ParticipantRef(id="par_j", role="courier", display_name="Jasper")


def seat(pid: str, conversation: str = "conv_A", present: bool = True) -> Seat:
    return Seat(pid, conversation, "wa", f"id-{pid}", "customer", pid.title(), None, present)


SEATS = [seat("a"), seat("b"), seat("c"), seat("gone", present=False)]


def member(conversation: str, active: float, present: bool = True) -> Membership:
    return Membership(seat("a", conversation, present), "relay", active)


A, B = member("conv_A", 5.0), member("conv_B", 9.0)
POLICY = RoutingPolicy(recency_seconds=600.0)
NOW = 10_000.0


@pytest.mark.parametrize(
    ("memberships", "replied_in", "last_addressed", "expected"),
    [
        ([], None, {}, None),
        ([member("conv_A", 5.0, present=False)], None, {}, None),
        # one open conversation: no question to ask
        ([A], None, {}, ("conv_A", "only_one")),
        ([A, member("conv_B", 9.0, present=False)], None, {}, ("conv_A", "only_one")),
        # a user present in one conversation under two identities: one conversation
        ([A, Membership(seat("a2", "conv_A"), "relay", 5.0)], None, {}, ("conv_A", "only_one")),
        # reply context first: the quoted copy's conversation, whatever recency says
        ([A, B], "conv_A", {"conv_B": NOW - 1}, ("conv_A", "reply_context")),
        # a quote of something of no conversation of theirs decides nothing
        ([A, B], "conv_Z", {"conv_A": NOW - 5}, ("conv_A", "recency")),
        # recency: the one that last addressed them, within the window
        ([A, B], None, {"conv_A": NOW - 30, "conv_B": NOW - 60}, ("conv_A", "recency")),
        ([A, B], None, {"conv_A": NOW - 700, "conv_B": NOW - 600}, ("conv_B", "recency")),
        # addressed too long ago, or never: ask, most recently active first
        ([A, B], None, {"conv_A": NOW - 601}, ["conv_B", "conv_A"]),
        ([A, B], None, {}, ["conv_B", "conv_A"]),
        (  # a tie in activity: the newer conversation first (ids are time-ordered)
            [member("conv_A", 5.0), member("conv_B", 5.0)],
            None,
            {},
            ["conv_B", "conv_A"],
        ),
    ],
)
def test_which_conversation_an_inbound_message_joins(
    memberships: list[Membership],
    replied_in: str | None,
    last_addressed: dict[str, float],
    expected: tuple[str, str] | list[str] | None,
) -> None:
    found = conversation_for(memberships, RouteFacts(NOW, replied_in, last_addressed), POLICY)
    if isinstance(found, Routed):
        assert (found.membership.seat.conversation_id, found.rule) == expected
    elif isinstance(found, Ask):
        assert [m.seat.conversation_id for m in found.options] == expected
    else:
        assert expected is None


@pytest.mark.parametrize(
    ("answer", "picked"),
    [
        ("2", "conv_B"),
        (" two! ", "conv_B"),
        ("1", "conv_A"),
        ("community", "conv_B"),
        ("3", None),
        ("stuck in traffic", None),
    ],
)
def test_an_answer_to_the_question_picks_a_conversation(answer: str, picked: str | None) -> None:
    choices = question_choices([("conv_A", "Order #1234"), ("conv_B", "Community")])
    assert question_text(choices) == (
        "Which chat is this for?\n1. Order #1234\n2. Community\nReply with the number."
    )
    assert answered(answer, choices) == picked


@pytest.mark.parametrize(
    ("metadata", "label"),
    [
        ({"title": "Order #1234", "subject": "x"}, "Order #1234"),
        ({"subject": "Community"}, "Community"),
        ({"title": "  "}, "conv_A"),
        ({"order_id": "1234"}, "conv_A"),
        (None, "conv_A"),
    ],
)
def test_a_conversation_is_named_by_its_title_or_subject(
    metadata: dict[str, Any] | None, label: str
) -> None:
    assert label_of("conv_A", metadata) == label


def test_unanswered_the_held_messages_go_to_the_most_recently_active_still_open() -> None:
    assert after_timeout([A, B]) == B
    assert after_timeout([A, member("conv_B", 9.0, present=False)]) == A
    assert after_timeout([]) is None


def grouped(pid: str, group: str | None) -> Seat:
    return Seat(pid, "conv_G", "line", f"U{pid}", "member", pid, None, True, via_group=group)


def test_a_provider_groups_members_are_reached_through_the_group_only() -> None:
    group = Seat("g", "conv_G", "line", "Cgroup", "group", "Group")
    seats = [group, grouped("m1", "Cgroup"), grouped("m2", "Cgroup"), seat("sms")]
    # the backend speaks: the group and the participant it added, never a member privately
    assert [s.id for s in recipients(seats, None)] == ["g", "sms"]
    # a member speaks: their group sees it natively; the others get a copy
    assert [s.id for s in relay_targets("relay", seats, "m1")] == ["sms"]
    # the added participant speaks: the group gets it, once
    assert [s.id for s in relay_targets("relay", seats, "sms")] == ["g"]


@pytest.mark.parametrize(
    ("channel_data", "group"),
    [
        ({"source_type": "group", "group_id": "Cabc"}, "Cabc"),
        ({"source_type": "room", "room_id": "Rabc"}, "Rabc"),
        ({"group_id": "Y2FwaV9ncm91cDox"}, "Y2FwaV9ncm91cDox"),
        ({"source_type": "user"}, None),
        (None, None),
    ],
)
def test_the_provider_group_an_event_was_said_in(
    channel_data: dict[str, Any] | None, group: str | None
) -> None:
    assert provider_group(channel_data) == group


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
