"""The router's numbered answers, as a table, without I/O: which inbound events a reply to
numbered choices becomes a postback for, and what the postback keeps of the reply."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.downgrade.choices import Choice
from gateway.router.numbered_answers import (
    OfferedChoices,
    answered_choice,
    may_answer_choices,
)
from gateway.schema import ChannelRef, Event, Party

OFFERED = OfferedChoices("msg_menu", [Choice(1, "Pizza", "PIZZA"), Choice(2, "Sushi", "SUSHI")])


def event(type_: str = "message", sender: str | None = "+447700900123", **fields: Any) -> Event:
    return Event(
        id="evt_1",
        type=type_,  # type: ignore[arg-type]
        channel=ChannelRef(id="sms", type="sms"),
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        sender=Party(id=sender) if sender else None,
        **fields,
    )


def text(value: str, **fields: Any) -> Event:
    return event(message={"content": {"type": "text", "text": value}}, **fields)


IMAGE = event(message={"content": {"type": "image", "media": {"url": "https://x.test/a.jpg"}}})
TAP = event("postback", postback={"payload": "PIZZA", "title": "Pizza"})
STATUS = event(
    "status", sender=None, recipient=Party(id="+447700900123"), status={"state": "delivered"}
)


@pytest.mark.parametrize(
    ("inbound", "may_answer"),
    [
        (text("2"), True),
        (text("2", sender=None), False),  # nobody to have offered choices to
        (IMAGE, False),
        (TAP, False),  # a native tap is a postback already
        (STATUS, False),
    ],
    ids=["text", "no sender", "image", "tap", "status"],
)
def test_which_events_may_answer_numbered_choices(inbound: Event, may_answer: bool) -> None:
    assert may_answer_choices(inbound) is may_answer


@pytest.mark.parametrize(
    ("inbound", "offered", "payload"),
    [
        (text("2"), OFFERED, "SUSHI"),
        (text(" #1. "), OFFERED, "PIZZA"),
        (text("second"), OFFERED, "SUSHI"),
        (text("sushi!"), OFFERED, "SUSHI"),
        (text("3"), OFFERED, None),  # no third choice: an ordinary message
        (text("hello"), OFFERED, None),
        (text("2"), None, None),  # nothing offered, or offered too long ago
        (text("2"), OfferedChoices("msg_menu", []), None),
        (IMAGE, OFFERED, None),
        (TAP, OFFERED, None),
    ],
    ids=[
        "number",
        "number with punctuation",
        "ordinal",
        "title",
        "number out of range",
        "other text",
        "no choices offered",
        "empty offer",
        "image",
        "tap",
    ],
)
def test_a_numbered_reply_becomes_the_choices_postback(
    inbound: Event, offered: OfferedChoices | None, payload: str | None
) -> None:
    answered = answered_choice(inbound, offered)
    if payload is None:
        assert answered is inbound
        return
    assert answered.type == "postback" and answered.message is None
    assert answered.postback is not None and answered.postback.payload == payload
    assert inbound.message is not None and inbound.message.content.type == "text"
    assert answered.channel_data == {
        "answered_with_text": inbound.message.content.text,
        "choices_message_id": "msg_menu",
    }
    assert (answered.id, answered.sender) == (inbound.id, inbound.sender)


def test_the_postback_keeps_the_channel_data_the_reply_had() -> None:
    answered = answered_choice(text("1", channel_data={"num_segments": "1"}), OFFERED)
    assert answered.channel_data == {
        "num_segments": "1",
        "answered_with_text": "1",
        "choices_message_id": "msg_menu",
    }
    assert answered.postback is not None and answered.postback.title == "Pizza"
