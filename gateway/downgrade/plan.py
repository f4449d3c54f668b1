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
    # In declaration order, as validation makes it: serialised JSON follows this order.
    return _made(cls, {name: fields[name] for name in names})


_FIELD_NAMES: dict[type[BaseModel], tuple[str, ...]] = {}
_set = object.__setattr__


def _made(cls: type[_M], fields: dict[str, Any]) -> _M:
    """A model of `cls` holding `fields` (every field, in declaration order) as they are."""
    made = object.__new__(cls)
    _set(made, "__dict__", fields)
    _set(made, "__pydantic_fields_set__", set(fields))
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


# The parts every plan makes most, built without even `built`'s checks (a carousel makes ten
# images on SMS, ten cards on WhatsApp): fields in declaration order, as validation leaves
# them; tests/test_downgrade_engine.py checks each equals a validated model, JSON included.
def text_part(text: str) -> TextContent:
    return _made(TextContent, {"quick_replies": [], "type": "text", "text": text})


def image_part(media: Media) -> ImageContent:
    fields = {"quick_replies": [], "media": media, "caption": None, "type": "image"}
    return _made(ImageContent, fields)


def card_part(item: CarouselItem, description: str, actions: list[Action]) -> CarouselItem:
    """`item` with a new description and actions and no tap link (its text says the link)."""
    fields = {
        "title": item.title,
        "description": description,
        "media": item.media,
        "actions": actions,
        "default_url": None,
    }
    return _made(CarouselItem, fields)
