"""A preference table: the forms to try for one subject, richest first, and the walk over it.

Kept apart from the tables themselves (preferences.py, carousel.py) so both can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
    from gateway.downgrade.engine import Builder

S = TypeVar("S")


class PlanError(ValueError):
    """The content cannot reach this channel at all (the send fails with this reason)."""


class Form(NamedTuple, Generic[S]):
    """One way to show a subject: its name, the capability it needs (for the docs), whether
    this channel can show this subject so, and how to build it. A tuple: the walk unpacks it
    on every send."""

    name: str
    needs: str
    fits: Callable[[Builder, S], bool]
    build: Callable[[Builder, S], None]


def first_fit(builder: Builder, subject: S, forms: Sequence[Form[S]]) -> None:
    for _name, _needs, fits, build in forms:
        if fits(builder, subject):
            build(builder, subject)
            return
    raise AssertionError("every preference table ends with a form that always fits")


def always(_builder: Builder, _subject: object) -> bool:
    return True
