"""The cheap type tests hot paths use agree with the schema's classes.

Rendering dispatches on exact types of final classes and on `is_media` (the type tag)
instead of isinstance, which is slow on pydantic models when it fails. These tests pin that
the shortcuts say what isinstance would, for every content type the golden fixtures cover.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from adapters.base import ProviderRequest
from gateway.schema import CONTENT_ADAPTER
from gateway.schema.content import (
    CHOICE_TYPES,
    MEDIA_CONTENT_TYPES,
    Action,
    BuyAction,
    Content,
    MediaContent,
    PostbackAction,
    ReplyAction,
    is_choice,
    is_media,
    payload_of,
)

MESSAGES = sorted((Path(__file__).parent / "fixtures" / "messages").glob("*.json"))
CONTENT_CLASSES = typing.get_args(typing.get_args(Content)[0])
ACTION_CLASSES = typing.get_args(typing.get_args(Action)[0])


def contents() -> list[Any]:
    found: list[Any] = []
    for path in MESSAGES:
        message = json.loads(path.read_text())
        found.append(CONTENT_ADAPTER.validate_python(message.get("content", message)))
    return found


@pytest.mark.parametrize("content", contents(), ids=[p.stem for p in MESSAGES])
def test_is_media_agrees_with_isinstance(content: Any) -> None:
    assert is_media(content) == isinstance(content, MediaContent)


def test_the_media_type_tags_are_exactly_the_media_classes() -> None:
    tags = {cls.model_fields["type"].default for cls in typing.get_args(MediaContent)}
    assert tags == set(MEDIA_CONTENT_TYPES)


@pytest.mark.parametrize("cls", CONTENT_CLASSES, ids=lambda c: c.__name__)
def test_content_classes_are_final(cls: type) -> None:
    # `type(x) is SomeContent` is only right while nothing subclasses a content class.
    assert getattr(cls, "__final__", False), f"{cls.__name__} must be @final"


def test_provider_requests_are_immutable_and_replaceable() -> None:
    request = ProviderRequest("POST", "/send", json={"a": 1})
    with pytest.raises(AttributeError):
        request.note = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        request.headers["X-Any"] = "1"  # type: ignore[index]
    noted = request._replace(note="2 segments")
    assert (noted.note, noted.json, request.note) == ("2 segments", {"a": 1}, None)


ACTIONS = [
    {"type": "reply", "title": "Yes", "payload": "P"},
    {"type": "postback", "title": "Yes", "payload": "P"},
    {"type": "link", "title": "Menu", "url": "https://shop.example.com"},
    {"type": "call", "title": "Call us", "phone": "+15551234567"},
    {"type": "location_request"},
    {
        "type": "buy",
        "title": "Pay",
        "amount": "9.50",
        "currency": "EUR",
        "url": "https://p.example.com",
        "payload": "P",
    },
    {
        "type": "buy",
        "title": "Pay",
        "amount": "9.50",
        "currency": "EUR",
        "url": "https://p.example.com",
    },
    {"type": "share", "url": "https://shop.example.com"},
]


def test_the_action_table_covers_every_action_class() -> None:
    assert {a["type"] for a in ACTIONS} == {c.model_fields["type"].default for c in ACTION_CLASSES}


@pytest.mark.parametrize("raw", ACTIONS, ids=lambda a: a["type"])
def test_is_choice_and_payload_of_agree_with_isinstance(raw: dict[str, Any]) -> None:
    action = TypeAdapter(Action).validate_python(raw)
    assert getattr(type(action), "__final__", False), f"{type(action).__name__} must be @final"
    assert is_choice(action) == isinstance(action, ReplyAction | PostbackAction)
    assert is_choice(action) == (action.type in CHOICE_TYPES)
    carries = isinstance(action, ReplyAction | PostbackAction | BuyAction)
    assert payload_of(action) == (raw.get("payload") if carries else None)
