"""Property: for any valid message and any profile, parts respect every limit and every choice
the sender offered stays reachable (natively with its payload, or by a numbered answer)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.downgrade import Plan, Profile, plan
from gateway.schema import CONTENT_ADAPTER
from gateway.schema.content import CHOICE_TYPES

from .test_downgrade_engine import LISTY, MMS, RICH, TEXT_ONLY

PROFILES = [TEXT_ONLY, MMS, RICH, LISTY]
TITLE = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(str.strip)


@st.composite
def choices(draw: Any, low: int = 1, high: int = 14) -> list[dict[str, Any]]:
    titles = draw(st.lists(TITLE, min_size=low, max_size=high))
    return [{"type": "reply", "title": t, "payload": f"P{i}"} for i, t in enumerate(titles)]


@st.composite
def messages(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "buttons", "list", "carousel"]))
    text = draw(st.text(min_size=1, max_size=3000).filter(str.strip))
    if kind == "text":
        return {"type": "text", "text": text, "quick_replies": draw(choices(0, 15))}
    quick = [{**a, "payload": f"Q{a['payload']}"} for a in draw(choices(0, 4))]
    if kind == "buttons":
        return {
            "type": "buttons",
            "text": text,
            "actions": draw(choices(1, 12)),
            "quick_replies": quick,
        }
    if kind == "list":
        rows = draw(choices(1, 12))
        items = [
            {"title": r["title"], "payload": r["payload"], "description": draw(st.none() | TITLE)}
            for r in rows
        ]
        return {
            "type": "list",
            "text": text,
            "sections": [{"title": "S", "items": items}],
            "quick_replies": quick,
        }
    cards = draw(st.integers(1, 13))
    return {
        "type": "carousel",
        "quick_replies": quick,
        "items": [
            {
                "title": draw(TITLE),
                "description": draw(st.none() | TITLE),
                "media": draw(st.none() | st.just({"url": f"https://cdn.example.com/{n}.jpg"})),
                "actions": [{**a, "payload": f"C{n}_{a['payload']}"} for a in draw(choices(0, 4))],
            }
            for n in range(cards)
        ],
    }


# The shapes of a card's actions: a carousel whose cards share one shape can be native where
# cards must all be alike (WhatsApp); a few cards of another shape make it downgrade.
_CARD_SHAPES = (("reply",), ("reply", "reply"), ("link",), ("reply", "link"), ("reply",) * 3)


@st.composite
def carousels(draw: Any) -> dict[str, Any]:
    """Carousels near a native form: images on (almost) every card, one shape of actions for
    (almost) all, links and tap links, descriptions short and long."""
    shape = draw(st.sampled_from(_CARD_SHAPES))
    items = []
    for n in range(draw(st.integers(1, 13))):
        kinds = shape if draw(st.integers(0, 9)) else draw(st.sampled_from(_CARD_SHAPES))
        actions = [
            {"type": "reply", "title": draw(TITLE), "payload": f"C{n}_{i}"}
            if kind == "reply"
            else {"type": "link", "title": draw(TITLE), "url": f"https://shop.example.com/{n}/{i}"}
            for i, kind in enumerate(kinds)
        ]
        items.append(
            {
                "title": draw(TITLE),
                "description": draw(st.none() | TITLE | st.text(min_size=1, max_size=200)),
                "media": {"url": f"https://cdn.example.com/{n}.jpg"} if draw(st.integers(0, 19))
                else None,
                "actions": actions,
                "default_url": draw(st.none() | st.just(f"https://shop.example.com/{n}")),
            }
        )  # fmt: skip
    text = draw(st.none() | st.text(min_size=1, max_size=1500).filter(str.strip))
    return {"type": "carousel", "text": text, "items": items}


def offered(message: dict[str, Any]) -> set[str]:
    found = {a["payload"] for a in message.get("quick_replies", [])}
    found |= {a["payload"] for a in message.get("actions", [])}
    for section in message.get("sections", []):
        found |= {i["payload"] for i in section["items"]}
    for item in message.get("items", []):
        found |= {a["payload"] for a in item["actions"] if "payload" in a}
    return found


def reachable(result: Plan) -> set[str]:
    found = {c.payload for c in result.choices}
    for part in result.parts:
        actions = list(part.quick_replies) + list(getattr(part, "actions", []))
        for item in getattr(part, "items", []):
            actions += item.actions
        found |= {a.payload for a in actions if a.type in CHOICE_TYPES}
        for section in getattr(part, "sections", []):
            found |= {i.payload for i in section.items}
    return found


def check_limits(result: Plan, profile: Profile) -> None:
    for part in result.parts:
        if part.quick_replies:
            assert profile.quick_replies is not None
            assert len(part.quick_replies) <= profile.quick_replies.max_items
            assert all(len(a.title) <= profile.quick_replies.label_max for a in part.quick_replies)
        if part.type == "text":
            assert len(part.text) <= profile.text_max
        elif part.type == "buttons":
            assert profile.buttons is not None
            assert len(part.actions) <= profile.buttons.max_actions
            assert len(part.text) <= profile.buttons.text_max
            assert all(len(a.title) <= profile.buttons.label_max for a in part.actions)
        elif part.type == "list":
            assert profile.list is not None
            rows = [i for s in part.sections for i in s.items]
            assert len(rows) <= profile.list.max_rows
            assert len(part.sections) <= profile.list.max_sections
            assert all(len(i.title) <= profile.list.row_title_max for i in rows)
            assert len(part.text) <= profile.list.text_max
        elif part.type == "carousel":
            assert profile.carousel is not None
            assert len(part.items) <= profile.carousel.max_cards
            for item in part.items:
                assert len(item.title) <= profile.carousel.title_max
                assert len(item.description or "") <= profile.carousel.description_max
                assert len(item.actions) <= profile.carousel.max_actions
        else:
            assert part.type in profile.media


@settings(max_examples=300, deadline=None)
@given(messages() | carousels(), st.sampled_from(PROFILES))
def test_plans_respect_limits_and_keep_every_choice(
    message: dict[str, Any], profile: Profile
) -> None:
    result = plan(CONTENT_ADAPTER.validate_python(message), profile)
    check_limits(result, profile)
    assert offered(message) <= reachable(result)
    numbers = [c.number for c in result.choices]
    assert numbers == list(range(1, len(numbers) + 1))
