"""Checking form answers: each field type, required and optional fields, cancel."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.router.form_questions import check, question
from gateway.schema.content import FormContent, FormField

SIZE = FormField.model_validate(
    {
        "name": "size",
        "label": "Size?",
        "type": "select",
        "options": [{"value": "S", "title": "Small"}, {"value": "M", "title": "Medium"}],
    }
)
EMAIL = FormField(name="email", label="Email?", type="email")
NUMBER = FormField(name="count", label="How many?", type="number")
NOTE = FormField(name="note", label="Anything else?", required=False)


@pytest.mark.parametrize(
    ("field", "text", "payload", "value", "problem"),
    [
        (EMAIL, " a.b@example.co.uk ", None, "a.b@example.co.uk", None),
        (EMAIL, "a.b at example", None, None, "'a.b at example' is not an email address."),
        (NUMBER, "3", None, 3, None),
        (NUMBER, "2,5", None, 2.5, None),
        (NUMBER, "three", None, None, "'three' is not a number."),
        (SIZE, "2", None, "M", None),
        (SIZE, "small", None, "S", None),
        (SIZE, None, "M", "M", None),
        (SIZE, "XXL", None, None, "Please choose one of: Small, Medium."),
        (NOTE, "skip", None, None, None),
        (NOTE, "ring twice", None, "ring twice", None),
        (EMAIL, "", None, None, "Please answer with some text."),
    ],
)
def test_check(
    field: FormField, text: str | None, payload: str | None, value: Any, problem: str | None
) -> None:
    answer = check(field, text, payload)
    assert (answer.value, answer.problem, answer.cancelled) == (value, problem, False)


@pytest.mark.parametrize("text", ["cancel", "CANCEL!", " Cancel "])
def test_cancel(text: str) -> None:
    assert check(EMAIL, text).cancelled


def test_questions_count_fields_and_carry_the_reason() -> None:
    form = FormContent(title="T", fields=[EMAIL, SIZE, NOTE])
    assert question(form, 0).model_dump()["text"] == "(1/3) Email?"
    select = question(form, 1, "Please choose one of: Small, Medium.")
    assert select.type == "buttons"
    assert [(a.title, a.payload) for a in select.actions] == [("Small", "S"), ("Medium", "M")]  # type: ignore[union-attr]
    assert question(form, 2).model_dump()["text"] == "(3/3) Anything else? (optional: reply skip)"
