"""A provider payload's validation error as one reason naming the JSON path of the field at
fault: `events[1].message.text: expected a string, got a number`.

The adapters' payload models (`adapters/<channel>/payloads.py`) are strict, so pydantic's
first error is the field a reader would look at; this only words it for an operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

# What a field of each kind of error holds, in the words of the reason.
_EXPECTED = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
}
# Text that should read as a value and does not (a form's or an XML push's numbers): the
# text itself is named, as "got a string" says nothing where every value is text.
_UNREADABLE = {
    "int_parsing": "an integer",
    "float_parsing": "a number",
    "bool_parsing": "a boolean",
}
# How much of an unreadable text a reason quotes.
QUOTED = 40


def path(location: Sequence[int | str], prefix: str = "") -> str:
    """`("events", 1, "message")` as `events[1].message`, after `prefix` (a parent's path)."""
    text = prefix
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "body"


def kind(value: Any) -> str:
    """A JSON value's kind, as a reason names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def describe(error: ValidationError, prefix: str = "") -> str:
    """The first error of `error` as `<path>: <what is wrong>`; `prefix` is the path of the
    part that was validated (`events[1]`), when the model read only that part."""
    first = error.errors(include_url=False)[0]
    where = path(first["loc"], prefix)
    if first["type"] == "missing":
        return f"{where}: missing"
    if first["type"] in _UNREADABLE and isinstance(first["input"], str):
        return f"{where}: expected {_UNREADABLE[first['type']]}, got {first['input'][:QUOTED]!r}"
    expected = _EXPECTED.get(first["type"])
    if expected is not None:
        return f"{where}: expected {expected}, got {kind(first['input'])}"
    return f"{where}: {first['msg']}"
