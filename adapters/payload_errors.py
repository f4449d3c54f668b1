"""Why a typed payload model refused a webhook, said by the JSON path of the field at fault.

Adapters validate provider JSON with pydantic models (`adapters/whatsapp_payloads.py`, ...);
a refusal becomes one line an operator can act on:
`entry[0].changes[0].value.messages[1].text.body: expected a string, got a number`.
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
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
}


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
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"


def _what(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {json_kind(error['input'])}"
    return str(error["msg"])


def validation_reason(exc: ValidationError, prefix: str = "") -> str:
    """The first field `exc` refused, by its path under `prefix`, and what is wrong with it."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = json_path(first["loc"], prefix)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {_what(first)}{more}" if where else f"{_what(first)}{more}"
