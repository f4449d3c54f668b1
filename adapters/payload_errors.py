"""A provider payload's validation error as one reason naming the JSON path of the field at
fault: `entry[0].changes[0].value.messages[1].text.body: expected a string, got a number`.

The adapters' payload models (`adapters/<channel>/payloads.py`) are strict, so pydantic's first
error is the field a reader would look at; this only words it for an operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

# pydantic's error types for "this node is not of the kind the model wants", by the kind.
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


def json_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """`("messages", 1, "text", "body")` under `prefix` as `prefix.messages[1].text.body`."""
    path = prefix
    for step in loc:
        if isinstance(step, int):
            path += f"[{step}]"
        else:
            path += f".{step}" if path else str(step)
    return path


def json_kind(value: Any) -> str:
    """What a JSON value is, in words: "an object", "a list", "a string", "null"..."""
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


def _what(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing"
    if kind in _UNREADABLE and isinstance(error["input"], str):
        return f"expected {_UNREADABLE[kind]}, got {error['input'][:QUOTED]!r}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {json_kind(error['input'])}"
    return str(error["msg"])


def describe(error: ValidationError, prefix: str = "") -> str:
    """The first error of `error` as `<path>: <what is wrong>`; `prefix` is the path of the
    part that was validated (`events[1]`), when the model read only that part."""
    first = error.errors(include_url=False)[0]
    return f"{json_path(first['loc'], prefix) or 'body'}: {_what(first)}"


def validation_reason(exc: ValidationError, prefix: str = "") -> str:
    """Like `describe`, and how many more fields were refused beside the first."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = json_path(first["loc"], prefix)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {_what(first)}{more}" if where else f"{_what(first)}{more}"
