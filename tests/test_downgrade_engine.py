"""The downgrade engine against sample profiles: what becomes what, and why."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.downgrade import (
    ButtonsProfile,
    CarouselProfile,
    Choice,
    ListProfile,
    PlanError,
    Profile,
    QuickRepliesProfile,
    match_choice,
    plan,
    shorten,
)
from gateway.schema import CONTENT_ADAPTER

TEXT_ONLY = Profile(channel="sms", text_max=1600)
MMS = Profile(channel="sms", text_max=1600, media=frozenset({"image"}))
RICH = Profile(
    channel="rich",
    text_max=2000,
    media=frozenset({"image", "video", "audio", "file"}),
    buttons=ButtonsProfile(
        max_actions=3,
        label_max=20,
        text_max=640,
        kinds=frozenset({"reply", "postback", "link", "call"}),
    ),
    quick_replies=QuickRepliesProfile(max_items=13, label_max=20),
    carousel=CarouselProfile(
        max_cards=10, title_max=80, description_max=80, max_actions=3, label_max=20
    ),
)
LISTY = Profile(
    channel="listy",
    text_max=4096,
    media=frozenset({"image"}),
    buttons=ButtonsProfile(max_actions=3, label_max=20, text_max=1024, media=True),
    list=ListProfile(
        max_rows=10, max_sections=10, row_title_max=24, row_description_max=72,
        section_title_max=24, button_max=20, text_max=1024,
    ),
)  # fmt: skip


def content(data: dict[str, Any]) -> Any:
    return CONTENT_ADAPTER.validate_python(data)


def carousel(cards: int, actions_per_card: int = 1) -> Any:
    return content(
        {
            "type": "carousel",
            "text": "Tonight's picks",
            "items": [
                {
                    "title": f"Dish {n}",
                    "description": f"Tasty {n}",
                    "media": {"url": f"https://cdn.example.com/{n}.jpg"},
                    "actions": [
                        {"type": "reply", "title": f"Order {n}.{a}", "payload": f"ORDER_{n}_{a}"}
                        for a in range(1, actions_per_card + 1)
                    ],
                }
                for n in range(1, cards + 1)
            ],
        }
    )


def test_carousel_on_sms_is_numbered_text_whose_numbers_map_to_payloads() -> None:
    result = plan(carousel(3), TEXT_ONLY)
    [part] = result.parts
    assert part.type == "text"
    assert "1. Dish 1 - Tasty 1" in part.text and "https://cdn.example.com/3.jpg" in part.text
    assert [(c.number, c.payload) for c in result.choices] == [
        (1, "ORDER_1_1"),
        (2, "ORDER_2_1"),
        (3, "ORDER_3_1"),
    ]
    assert [str(d) for d in result.downgrades] == ["carousel → numbered_text: sms has no carousel"]


def test_carousel_on_mms_sends_the_images_as_media() -> None:
    result = plan(carousel(2), MMS)
    assert [p.type for p in result.parts] == ["image", "image", "text"]
    assert "https://cdn.example.com/1.jpg" not in result.parts[-1].text


def test_native_carousel_splits_when_there_are_too_many_cards() -> None:
    result = plan(carousel(12), RICH)
    assert [p.type for p in result.parts] == ["text", "carousel", "carousel"]
    assert [len(p.items) for p in result.parts[1:]] == [10, 2]
    assert result.choices == []
    assert "carousel → 2 carousels" in str(result.downgrades[0])


def test_carousel_without_native_support_becomes_one_card_per_item() -> None:
    result = plan(carousel(2), LISTY)
    assert [p.type for p in result.parts] == ["text", "buttons", "buttons"]
    assert result.parts[1].media.url == "https://cdn.example.com/1.jpg"
    assert result.parts[1].actions[0].payload == "ORDER_1_1"


def test_carousel_cards_with_several_choices_number_each_choice() -> None:
    result = plan(carousel(2, actions_per_card=2), TEXT_ONLY)
    assert [c.title for c in result.choices] == [
        "Dish 1: Order 1.1",
        "Dish 1: Order 1.2",
        "Dish 2: Order 2.1",
        "Dish 2: Order 2.2",
    ]


def buttons(n: int, **extra: Any) -> Any:
    actions = [
        {"type": "reply", "title": f"Option {i}", "payload": f"P{i}"} for i in range(1, n + 1)
    ]
    return content({"type": "buttons", "text": "Pick one", "actions": actions, **extra})


def test_buttons_within_the_count_stay_buttons() -> None:
    result = plan(buttons(3), RICH)
    assert [p.type for p in result.parts] == ["buttons"]
    assert result.downgrades == []


def test_too_many_buttons_become_quick_replies_then_a_list_then_numbered_text() -> None:
    assert [p.quick_replies[0].payload for p in plan(buttons(5), RICH).parts] == ["P1"]
    listed = plan(buttons(5), LISTY)
    assert [p.type for p in listed.parts] == ["list"]
    assert "buttons → list: 5 choices exceed listy's 3 buttons" in map(str, listed.downgrades)
    numbered = plan(buttons(12), LISTY)
    assert numbered.parts[0].type == "text" and len(numbered.choices) == 12


def test_long_labels_are_shortened_at_a_word_and_recorded() -> None:
    data = {
        "type": "buttons",
        "text": "Confirm",
        "actions": [
            {"type": "reply", "title": "Deliver to my office address please", "payload": "OFFICE"}
        ],
    }
    result = plan(content(data), RICH)
    assert result.parts[0].actions[0].title == "Deliver to my…"
    assert result.parts[0].actions[0].payload == "OFFICE"
    assert "button label → shortened" in str(result.downgrades[0])


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 20, "short"),
        ("Deliver to my office address", 20, "Deliver to my…"),
        ("abcdefghij", 5, "abcd…"),
    ],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected
    assert len(shorten(text, limit)) <= limit


def test_buy_becomes_a_url_button_where_buttons_take_links_else_a_line_of_text() -> None:
    data = {
        "type": "buttons",
        "text": "Your order is ready",
        "actions": [
            {
                "type": "buy",
                "title": "Pay now",
                "amount": "12.50",
                "currency": "EUR",
                "url": "https://pay.example.com/o/1",
            },
        ],
    }
    rich = plan(content(data), RICH)
    assert rich.parts[0].actions[0].type == "link"
    text = plan(content(data), TEXT_ONLY)
    assert "Pay now (12.50 EUR): https://pay.example.com/o/1" in text.parts[0].text


def test_share_without_a_link_is_dropped_with_a_reason() -> None:
    data = {"type": "buttons", "text": "Like it?", "actions": [{"type": "share"}]}
    result = plan(content(data), TEXT_ONLY)
    assert "share → dropped" in " ".join(map(str, result.downgrades))


def test_list_with_descriptions_stays_numbered_where_there_is_no_list() -> None:
    data = {
        "type": "list",
        "text": "Choose a slot",
        "sections": [
            {
                "title": "Today",
                "items": [{"title": "18:00", "payload": "S1", "description": "fast"}],
            }
        ],
    }
    native = plan(content(data), LISTY)
    assert native.parts[0].type == "list"
    numbered = plan(content(data), RICH)
    assert numbered.parts[0].type == "text" and "1. 18:00 - fast" in numbered.parts[0].text
    # The reason names the descriptions: without them, the row would have been a button.
    assert [str(d) for d in numbered.downgrades] == [
        "list → numbered_text: rich has no list;"
        " rich buttons and quick replies cannot show the row descriptions"
    ]
    # Where nothing else could carry the rows, the descriptions are not why.
    assert [str(d) for d in plan(content(data), TEXT_ONLY).downgrades] == [
        "list → numbered_text: sms has no list"
    ]


def test_a_list_too_long_for_buttons_is_numbered_for_its_length_not_its_descriptions() -> None:
    rows = [{"title": f"{h}:00", "payload": f"S{h}", "description": "slot"} for h in range(10, 16)]
    data = {"type": "list", "text": "Choose a slot", "sections": [{"items": rows}]}
    no_quick_replies = RICH.narrowed({"quick_replies": False})
    assert [str(d) for d in plan(content(data), no_quick_replies).downgrades] == [
        "list → numbered_text: rich has no list"
    ]
    only_quick_replies = RICH.narrowed({"buttons": False})
    assert [str(d) for d in plan(content(data), only_quick_replies).downgrades] == [
        "list → numbered_text: rich has no list; rich quick replies cannot show the row descriptions"
    ]


def test_quick_replies_on_text_become_buttons_or_numbered_text() -> None:
    data = {
        "type": "text",
        "text": "Did it arrive?",
        "quick_replies": [
            {"type": "reply", "title": "Yes", "payload": "Y"},
            {"type": "reply", "title": "No", "payload": "N"},
        ],
    }
    assert plan(content(data), RICH).parts[0].quick_replies[1].payload == "N"
    assert plan(content(data), LISTY).parts[0].type == "buttons"
    sms = plan(content(data), TEXT_ONLY)
    assert sms.parts[0].text.startswith("Did it arrive?\n1. Yes\n2. No")
    assert [c.payload for c in sms.choices] == ["Y", "N"]


def test_template_uses_its_fallback_where_there_are_no_templates() -> None:
    data = {
        "type": "template",
        "template": {"name": "order_update", "language": "en"},
        "fallback": {"type": "text", "text": "Your order is on its way"},
    }
    assert (
        plan(content(data), Profile(channel="wa", text_max=4096, templates=True)).parts[0].type
        == "template"
    )
    result = plan(content(data), TEXT_ONLY)
    assert result.parts[0].text == "Your order is on its way"
    bare = content({"type": "template", "template": {"name": "x", "language": "en"}})
    with pytest.raises(PlanError, match="no fallback"):
        plan(bare, TEXT_ONLY)


def test_media_the_channel_cannot_send_becomes_a_link() -> None:
    data = {"type": "video", "media": {"url": "https://cdn.example.com/v.mp4"}, "caption": "Watch"}
    result = plan(content(data), MMS)
    assert result.parts[0].text == "Watch\nhttps://cdn.example.com/v.mp4"
    assert str(result.downgrades[0]) == "video → text_link: sms cannot send video"


NO_CAPTIONS = Profile(
    channel="messenger", text_max=2000, media=frozenset({"image", "audio"}), caption_max=0
)
SHORT_CAPTIONS = Profile(channel="viber", text_max=7000, media=frozenset({"image"}), caption_max=5)


@pytest.mark.parametrize(
    ("kind", "profile", "reason"),
    [
        ("image", NO_CAPTIONS, "messenger images have no caption"),
        ("audio", NO_CAPTIONS, "messenger audio messages have no caption"),
        ("image", SHORT_CAPTIONS, "longer than 5 characters"),
    ],
)
def test_a_caption_the_media_cannot_carry_follows_as_text_and_says_why(
    kind: str, profile: Profile, reason: str
) -> None:
    data = {
        "type": kind,
        "media": {"url": "https://cdn.example.com/m"},
        "caption": "Ferns in stock",
    }
    result = plan(content(data), profile)
    assert [p.type for p in result.parts] == [kind, "text"]
    assert result.parts[1].text == "Ferns in stock"
    assert [str(d) for d in result.downgrades] == [f"caption → text: {reason}"]


def test_long_text_is_split_within_the_limit() -> None:
    result = plan(content({"type": "text", "text": "word " * 400}), TEXT_ONLY)
    assert len(result.parts) == 2 and all(len(p.text) <= 1600 for p in result.parts)


def test_narrowing_a_profile_turns_features_off_and_lowers_counts() -> None:
    narrowed = RICH.narrowed({"carousel": False, "buttons": {"max_actions": 2}, "text_max": 5000})
    assert narrowed.carousel is None
    assert narrowed.buttons is not None and narrowed.buttons.max_actions == 2
    assert narrowed.text_max == 2000  # never widened


CHOICES = [Choice(1, "Margherita", "PIZZA_1"), Choice(2, "Quattro Formaggi", "PIZZA_2")]


@pytest.mark.parametrize(
    "answer",
    [
        "2",
        " 2 ",
        "#2",
        "2.",
        "(2)",
        "two",
        "Two!",
        "second",
        "2nd",
        "option 2",
        "quattro formaggi",
        "QUATTRO  FORMAGGI.",
    ],
)
def test_answers_pick_the_second_choice(answer: str) -> None:
    assert match_choice(answer, CHOICES) == CHOICES[1]


@pytest.mark.parametrize("answer", ["3", "zero", "pizza", "2 please and a coke", "", "12"])
def test_other_answers_are_ordinary_messages(answer: str) -> None:
    assert match_choice(answer, CHOICES) is None


def test_payloads_longer_than_the_channel_carries_go_numbered() -> None:
    long = "X" * 1001
    data = {
        "type": "buttons",
        "text": "Pick",
        "actions": [
            {"type": "reply", "title": "A", "payload": long},
            {"type": "reply", "title": "B", "payload": "B"},
        ],
    }
    result = plan(content(data), RICH)
    assert result.parts[0].type == "text"
    assert [c.payload for c in result.choices] == [long, "B"]
    assert "a payload is 1001 characters; rich carries at most 1000" in str(result.downgrades[0])


def test_parts_built_without_validation_equal_validated_ones() -> None:
    from gateway.downgrade.plan import built
    from gateway.schema.content import ButtonsContent, ReplyAction

    actions = [ReplyAction(title="Order", payload="P1")]
    fast = built(
        ButtonsContent, type="buttons", text="Pick", actions=actions, header=None, footer=None,
        media=None, quick_replies=[],
    )  # fmt: skip
    slow = ButtonsContent(text="Pick", actions=actions)
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_copy(update={"text": "Other"}).text == "Other"
    assert fast.model_fields_set == set(ButtonsContent.model_fields)


def test_text_image_and_card_parts_equal_validated_ones() -> None:
    from gateway.downgrade.plan import card_part
    from gateway.downgrade.plan import image_part as _image
    from gateway.downgrade.plan import text_part as _text
    from gateway.schema.content import (
        Action,
        CarouselItem,
        ImageContent,
        Media,
        ReplyAction,
        TextContent,
    )

    media = Media(url="https://cdn.example.com/a.jpg")
    item = CarouselItem(title="Funghi", media=media, default_url="https://shop.example.com/f")
    actions: list[Action] = [ReplyAction(title="Order", payload="ORDER_FUNGHI")]
    card = CarouselItem(title="Funghi", description="Mushrooms", media=media, actions=actions)
    for fast, slow in (
        (_text("Hello"), TextContent(text="Hello")),
        (_image(media), ImageContent(media=media)),
        (card_part(item, "Mushrooms", actions), card),
    ):
        assert fast == slow
        assert fast.model_dump_json() == slow.model_dump_json()
        assert fast.model_fields_set == set(type(slow).model_fields)
        assert fast.model_copy() == slow  # copies (as adapters make) keep working
