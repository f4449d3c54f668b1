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

from adapters.base import ProviderRequest
from gateway.schema import CONTENT_ADAPTER
from gateway.schema.content import MEDIA_CONTENT_TYPES, Content, MediaContent, is_media

MESSAGES = sorted((Path(__file__).parent / "fixtures" / "messages").glob("*.json"))
CONTENT_CLASSES = typing.get_args(typing.get_args(Content)[0])


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
