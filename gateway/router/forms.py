"""Form sessions: whether an inbound event answers the form a person is filling in, and what
that answer does (re-ask with the reason, ask the next field, finish, or cancel). Pure: the
store reads the session, then persists the step this returns in the inbound transaction
(gateway/store/form_sessions.py). The questions and the checks of an answer are gateway/router/form_questions.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.router.form_questions import check, question
from gateway.schema import Event, MessageBody, System
from gateway.schema.content import Content, FormContent, FormResponseContent, TextContent


@dataclass(frozen=True)
class Session:
    """A form being filled in by one person: the field they are asked, the answers so far."""

    channel_id: str
    user_id: str
    message_id: str  # the form message's id: the `form_id` of its response
    form: FormContent
    position: int
    answers: Mapping[str, Any]
    ttl: float  # seconds an unanswered question stays open, counted again from each answer


@dataclass(frozen=True)
class FormStep:
    """What one answer does: the session after it (None once the form ended), the event for the
    backends (a `form_response` message or a `form_cancelled` system event), and what to send
    the person next."""

    session: Session | None
    result: Event | None = None
    replies: Sequence[Content] = field(default_factory=tuple)


def may_answer_form(event: Event) -> bool:
    """Whether `event` could answer a form: something a person sent or tapped. Only then does
    the store look up their session."""
    return event.type in ("message", "postback") and event.sender is not None


def takes(form: FormContent, position: int, event: Event) -> bool:
    """Whether an inbound event is the user's answer to the form's current question.

    What the user sends (text, or media the form then asks again in text) answers it; a tap
    answers it only when its payload is one of this question's own choices. A tap on another
    message's button, list row or card (sent before the form, or by the backend meanwhile)
    is no answer: it goes to the backend as the postback it is, and the form waits at the
    same question. (A numbered reply is text here: the latest question is what it answers.)
    """
    if event.postback is None:
        return True
    asked = form.fields[position]
    return asked.type == "select" and event.postback.payload in {o.value for o in asked.options}


def answer_form(session: Session, event: Event, result_id: str) -> FormStep:
    """Apply one answer: re-ask with the reason, ask the next field, or finish. `result_id`
    is the id of the event for the backends, if the answer ends the form."""
    form, position = session.form, session.position
    text: str | None = None
    payload: str | None = None
    if event.postback is not None:
        payload, text = event.postback.payload, event.postback.title
    elif event.message is not None and isinstance(event.message.content, TextContent):
        text = event.message.content.text
    if text is None and payload is None:
        return FormStep(session, None, [question(form, position, "Please answer with text.")])
    answer = check(form.fields[position], text, payload)
    if answer.cancelled:
        cancelled = _derived(
            event,
            result_id,
            type="system",
            system=System(kind="form_cancelled", text=form.title),
            channel_data={"form_id": session.message_id, "values": dict(session.answers)},
        )
        return FormStep(None, cancelled, [TextContent(text=f"Cancelled: {form.title}")])
    if answer.problem is not None:
        return FormStep(session, None, [question(form, position, answer.problem)])
    answers = {**session.answers, form.fields[position].name: answer.value}
    position += 1
    if position < len(form.fields):
        return FormStep(
            replace(session, position=position, answers=answers), None, [question(form, position)]
        )
    content = FormResponseContent(form_id=session.message_id, values=answers)
    return FormStep(
        None, _derived(event, result_id, type="message", message=MessageBody(content=content))
    )


def _derived(event: Event, result_id: str, **update: Any) -> Event:
    base = {"message": None, "postback": None, "channel_data": None, "id": result_id}
    return event.model_copy(update={**base, **update})
