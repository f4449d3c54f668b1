"""Parts built from content that was validated already, without validating it again.

Planning runs for every send and every preview; a pydantic model validated field by field
costs more than the rest of a card's planning, so the engine builds its parts directly.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from gateway.schema.content import Action, CarouselItem, ImageContent, Media, TextContent

_M = TypeVar("_M", bound=BaseModel)


# `built` is `model_construct` given every field, without its per-field default handling
# (half the cost); tests/test_downgrade_engine.py checks it equals a validated model.
def built(cls: type[_M], **fields: Any) -> _M:
    names = _FIELD_NAMES.get(cls) or _FIELD_NAMES.setdefault(cls, tuple(cls.__pydantic_fields__))
    if len(fields) != len(names):
        raise TypeError(f"{cls.__name__} needs every field: {', '.join(names)}")
    made = _new(cls)
    # In declaration order, as validation makes it: serialised JSON follows this order.
    _set(made, "__dict__", {name: fields[name] for name in names})
    _set(made, "__pydantic_fields_set__", set(fields))
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


_FIELD_NAMES: dict[type[BaseModel], tuple[str, ...]] = {}
_new = object.__new__
_set = object.__setattr__


# The parts every plan makes most, built without even `built`'s checks (a carousel makes ten
# images on SMS, ten cards on WhatsApp): fields in declaration order, as validation leaves
# them; tests/test_downgrade_engine.py checks each equals a validated model, JSON included.
def text_part(text: str) -> TextContent:
    made = _new(TextContent)
    _set(made, "__dict__", {"quick_replies": [], "type": "text", "text": text})
    _set(made, "__pydantic_fields_set__", {"type", "text", "quick_replies"})
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


def image_part(media: Media) -> ImageContent:
    made = _new(ImageContent)
    fields = {"quick_replies": [], "media": media, "caption": None, "type": "image"}
    _set(made, "__dict__", fields)
    _set(made, "__pydantic_fields_set__", {"type", "media", "caption", "quick_replies"})
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


def card_part(item: CarouselItem, description: str, actions: list[Action]) -> CarouselItem:
    """`item` with a new description and actions and no tap link (its text says the link)."""
    made = _new(CarouselItem)
    fields = {
        "title": item.title,
        "description": description,
        "media": item.media,
        "actions": actions,
        "default_url": None,
    }
    _set(made, "__dict__", fields)
    _set(made, "__pydantic_fields_set__", set(fields))
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made
