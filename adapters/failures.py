"""Why a payload cannot be read: the one reason the failed inbox row keeps, ingress logs and
`gateway normalize` prints."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from adapters import shape
from adapters.base import PayloadError

# What an adapter raises for a payload it cannot read (anything else is a bug of its own).
INVALID = (PayloadError, ValidationError, KeyError, TypeError, ValueError)


def unreadable(exc: Exception, read: Callable[[], object]) -> str | None:
    """Why reading a payload raised `exc` (`read` reads it again, adapter code only), or None
    when the payload is not at fault: an adapter bug."""
    if isinstance(exc, PayloadError):  # the adapter said what is wrong
        return str(exc)
    # An odd shape ('str' object has no attribute 'get'): which field? Read it again.
    where = shape.explain(read, exc)
    if where is not None:
        return f"invalid payload: {where}"
    return _reason(exc) if isinstance(exc, INVALID) else None


def adapter_error(exc: Exception) -> str:
    return f"adapter error: {type(exc).__name__}: {exc}"


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        field = f"{where}: " if where else ""  # a check of the whole model names no field
        return f"invalid payload: {field}{first['msg']} ({exc.error_count()} error(s))"
    if isinstance(exc, KeyError):
        return f"invalid payload: missing field {exc.args[0]!r}"
    return f"{type(exc).__name__}: {exc}"
