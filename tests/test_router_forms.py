"""The router's form decisions, as tables, without I/O: which inbound event answers the open
form, and what an answer does to the session (re-ask, next field, finish, cancel)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gateway.router.forms import FormStep, Session, answer_form, may_answer_form, takes
from gateway.schema import Event
from gateway.schema.content import FormContent
from tests.test_forms import EMAIL, NOTE, SIZE

FORM = FormContent(title="Signup", fields=[EMAIL, SIZE, NOTE])
SESSION = Session("wa-main", "16505551234", "msg_form", FORM, 0, {}, 600.0)


def inbound(postback: str | None = None, text: str = "2") -> Event:
    return Event.model_validate(
        {
            "id": "evt_1",
            "type": "postback" if postback else "message",
            "channel": {"id": "wa-main", "type": "whatsapp"},
            "timestamp": "2025-06-09T10:00:00Z",
            "sender": {"id": "16505551234"},
            **(
                {"postback": {"payload": postback, "title": "Tap"}}
                if postback
                else {"message": {"content": {"type": "text", "text": text}}}
            ),
        }
    )


@pytest.mark.parametrize(
    ("position", "event", "answers"),
    [
        (0, inbound(text="a@b.co"), True),  # typed text answers any question
        (1, inbound(text="2"), True),  # a number typed at a select: the form's own numbering
        (1, inbound(postback="M"), True),  # a tap on this question's own option
        (1, inbound(postback="TRACK_A1042"), False),  # a tap on another message's button
        (0, inbound(postback="M"), False),  # a select's option, but this question asks text
        (2, inbound(postback="S"), False),
    ],
)
def test_only_text_and_taps_on_the_questions_own_choices_answer_it(
    position: int, event: Event, answers: bool
) -> None:
    form = FormContent(title="T", fields=[EMAIL, SIZE, NOTE])
    assert takes(form, position, event) is answers


def image() -> Event:
    photo = {"content": {"type": "image", "media": {"url": "https://x.test/a.jpg"}}}
    return Event.model_validate({**inbound().model_dump(exclude_none=True), "message": photo})


@pytest.mark.parametrize(
    ("event", "may_answer"),
    [
        (inbound(text="hi"), True),
        (inbound(postback="M"), True),
        (inbound().model_copy(update={"sender": None}), False),
        (inbound().model_copy(update={"type": "reaction", "message": None}), False),
    ],
    ids=["message", "postback", "no sender", "reaction"],
)
def test_which_events_may_answer_a_form(event: Event, may_answer: bool) -> None:
    assert may_answer_form(event) is may_answer


def asks(step: FormStep) -> list[str]:
    return [reply.model_dump()["text"] for reply in step.replies]


@pytest.mark.parametrize(
    ("session", "event", "position", "answers", "replies"),
    [
        (SESSION, inbound(text="a@b.co"), 1, {"email": "a@b.co"}, ["(2/3) Size?"]),
        (
            SESSION,
            inbound(text="nope"),
            0,
            {},
            ["'nope' is not an email address.\n(1/3) Email?"],
        ),
        (SESSION, image(), 0, {}, ["Please answer with text.\n(1/3) Email?"]),
        (
            replace(SESSION, position=1, answers={"email": "a@b.co"}),
            inbound(postback="M"),
            2,
            {"email": "a@b.co", "size": "M"},
            ["(3/3) Anything else? (optional: reply skip)"],
        ),
        (
            replace(SESSION, position=1, answers={"email": "a@b.co"}),
            inbound(text="XXL"),
            1,
            {"email": "a@b.co"},
            ["Please choose one of: Small, Medium.\n(2/3) Size?"],
        ),
    ],
    ids=["answer", "refused", "media", "tap", "refused choice"],
)
def test_an_answer_moves_the_form_on_or_asks_again(
    session: Session, event: Event, position: int, answers: dict[str, Any], replies: list[str]
) -> None:
    step = answer_form(session, event, "evt_result")
    assert step.result is None
    assert step.session == replace(session, position=position, answers=answers)
    assert asks(step) == replies


def test_the_last_answer_ends_the_form_with_its_response() -> None:
    last = replace(SESSION, position=2, answers={"email": "a@b.co", "size": "M"})
    answer = inbound(text="ring twice")
    step = answer_form(last, answer, "evt_result")
    assert step.session is None and list(step.replies) == []
    result = step.result
    assert result is not None and result.message is not None
    assert (result.id, result.type, result.sender) == ("evt_result", "message", answer.sender)
    assert result.message.content.type == "form_response"
    assert result.message.content.model_dump(exclude_defaults=True) == {
        "form_id": "msg_form",
        "values": {"email": "a@b.co", "size": "M", "note": "ring twice"},
    }


def test_an_optional_field_skipped_is_answered_with_none() -> None:
    step = answer_form(replace(SESSION, position=2), inbound(text="skip"), "evt_result")
    assert step.result is not None and step.result.message is not None
    assert step.result.message.content.model_dump()["values"] == {"note": None}


def test_cancel_ends_the_form_and_tells_the_backend_what_was_answered() -> None:
    started = replace(SESSION, position=1, answers={"email": "a@b.co"})
    step = answer_form(started, inbound(text="Cancel"), "evt_result")
    assert step.session is None and asks(step) == ["Cancelled: Signup"]
    result = step.result
    assert result is not None and result.system is not None
    assert (result.id, result.type, result.system.kind) == (
        "evt_result",
        "system",
        "form_cancelled",
    )
    assert result.channel_data == {"form_id": "msg_form", "values": {"email": "a@b.co"}}
    assert result.message is None
