"""Forms as conversations: one field at a time, answers checked, one `form_response` at the end.

No channel has native forms, so a `form` message becomes a short exchange on every channel.
This module is the pure part: the question to send for a field (a select as choices, which the
downgrade engine turns into buttons, a list or numbered text), and the check of an answer.
The router decides what an inbound answer does (gateway/router/forms.py), the store keeps the
session (it survives restarts) and the dispatcher sends the questions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.downgrade.choices import Choice, match_choice, normalise
from gateway.schema.content import (
    ButtonsContent,
    FormContent,
    FormField,
    ReplyAction,
    TextContent,
)
from gateway.schema.content import Content as AnyContent

CANCEL_WORDS = frozenset({"cancel", "stop form", "quit", "exit"})
SKIP_WORDS = frozenset({"skip", "-", "none", "no answer"})
# Deliberately loose: one @, a dot in the domain, no spaces. Providers and users vary too much
# for anything stricter to help.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Answer:
    value: Any = None
    problem: str | None = None  # why the answer was refused; the field is asked again
    cancelled: bool = False


def intro(form: FormContent) -> str:
    return "\n".join(p for p in (form.title, form.text) if p)


def steps(form: FormContent) -> list[tuple[FormField | None, AnyContent]]:
    """What the user is sent, in turn: the introduction (no field), then each question."""
    return [(None, TextContent(text=intro(form)))] + [
        (field, question(form, index)) for index, field in enumerate(form.fields)
    ]


def question(form: FormContent, index: int, problem: str | None = None) -> AnyContent:
    field = form.fields[index]
    lines = [problem] if problem else []
    label = field.label if field.required else f"{field.label} (optional: reply skip)"
    lines.append(f"({index + 1}/{len(form.fields)}) {label}")
    text = "\n".join(lines)
    if field.type == "select":
        actions = [ReplyAction(title=o.title, payload=o.value) for o in field.options]
        return ButtonsContent(text=text, actions=list(actions))
    return TextContent(text=text)


def accepts(field: FormField) -> str:
    """In words, the answers `check` takes for `field` (for previews)."""
    what = {
        "text": "any text",
        "email": "an email address",
        "number": "a number (a decimal comma is fine)",
        "select": "one of "
        + ", ".join(f"{i}. {o.title} ({o.value})" for i, o in enumerate(field.options, 1))
        + ": tapped, or its number or title typed",
    }[field.type]
    return what if field.required else f"{what}, or 'skip'"


def check(field: FormField, text: str | None, payload: str | None = None) -> Answer:
    """Check one answer: typed text, or the payload of a tapped (or numbered) option."""
    raw = (text or "").strip()
    if normalise(raw) in CANCEL_WORDS and payload is None:
        return Answer(cancelled=True)
    if field.type == "select":
        values = {o.value for o in field.options}
        if payload is not None and payload in values:
            return Answer(payload)
    if not raw and payload is None:
        return Answer(problem="Please answer with some text.")
    if not field.required and normalise(raw) in SKIP_WORDS:
        return Answer(None)
    return _CHECKS[field.type](field, raw)


def _text(_field: FormField, raw: str) -> Answer:
    return Answer(raw)


def _email(_field: FormField, raw: str) -> Answer:
    if _EMAIL.match(raw):
        return Answer(raw)
    return Answer(problem=f"{raw!r} is not an email address.")


def _number(_field: FormField, raw: str) -> Answer:
    try:
        number = float(raw.replace(",", "."))
    except ValueError:
        return Answer(problem=f"{raw!r} is not a number.")
    return Answer(int(number) if number.is_integer() else number)


def _select(field: FormField, raw: str) -> Answer:
    """A typed number or title (a tapped option's payload was taken before)."""
    choices = [Choice(i, o.title, o.value) for i, o in enumerate(field.options, 1)]
    picked = match_choice(raw, choices)
    if picked is not None:
        return Answer(picked.payload)
    titles = ", ".join(o.title for o in field.options)
    return Answer(problem=f"Please choose one of: {titles}.")


# How a typed answer is checked, per field type.
_CHECKS: dict[str, Callable[[FormField, str], Answer]] = {
    "text": _text,
    "email": _email,
    "number": _number,
    "select": _select,
}
