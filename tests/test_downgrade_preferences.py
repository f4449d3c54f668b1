"""The preference tables: one per content type, each ending with a form that always fits."""

from __future__ import annotations

import typing

import pytest

from gateway.downgrade.carousel import CAROUSEL
from gateway.downgrade.choice_forms import CHOICES, LIST_AS_CHOICES, QUICK_REPLIES
from gateway.downgrade.plain_text import _LINES
from gateway.downgrade.preferences import PREFERENCES
from gateway.downgrade.table import Form, always
from gateway.schema.content import Content

CONTENT_TYPES = sorted(
    typing.get_args(model.model_fields["type"].annotation)[0]
    for model in typing.get_args(typing.get_args(Content)[0])
)


def test_every_content_type_has_a_table_and_a_plain_text_form() -> None:
    assert len(CONTENT_TYPES) == 14
    assert sorted(PREFERENCES) == CONTENT_TYPES
    assert sorted(_LINES) == CONTENT_TYPES


@pytest.mark.parametrize(
    "table",
    [*PREFERENCES.values(), CHOICES, LIST_AS_CHOICES, QUICK_REPLIES, CAROUSEL],
    ids=[*PREFERENCES, "choices", "list_as_choices", "quick_replies", "carousel_forms"],
)
def test_every_table_ends_with_a_form_that_always_fits(table: tuple[Form[object], ...]) -> None:
    assert table[-1].fits is always
    assert all(form.needs for form in table)


def test_a_list_offered_as_choices_is_not_offered_as_a_list_again() -> None:
    assert [f.name for f in CHOICES if f not in LIST_AS_CHOICES] == ["list"]
