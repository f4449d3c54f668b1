"""Why a payload cannot be read: the one reason the failed inbox row keeps, ingress logs and
`gateway normalize` prints.

A reason says what is wrong with the payload, by its field where it can (the typed payload
models' validation errors, worded by adapters/payload_errors.py), and never shows the Python error behind it ("TypeError: unhashable type: 'dict'" tells an
operator nothing). A failure nothing ties to the payload is the adapter's own: its reason
says so, rather than blaming a payload that may be valid."""

from __future__ import annotations

import traceback
from pathlib import Path

from pydantic import ValidationError

from adapters.base import PayloadError

# How the reason of an adapter's own failure begins.
ADAPTER_FAILED = "the adapter failed on this payload without finding fault with it"


def unreadable(exc: Exception) -> str | None:
    """Why reading a payload raised `exc`, or None when the payload was not shown to be at
    fault: an adapter bug."""
    if isinstance(exc, PayloadError):  # the adapter said what is wrong
        return str(exc)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        field = f"{place}: " if place else ""  # a check of the whole model names no field
        return f"invalid payload: {field}{first['msg']} ({exc.error_count()} error(s))"
    if isinstance(exc, KeyError) and isinstance(exc.args[0], str):
        return f"invalid payload: missing field {exc.args[0]!r}"
    # A TypeError or ValueError no field explains (UnicodeEncodeError and pydantic's
    # serialisation errors are ValueErrors too) may be the adapter's as well as the payload's.
    return None


def adapter_error(exc: Exception) -> str:
    """The reason for a failure `unreadable` could not tie to the payload: the adapter's bug,
    where it was raised (the log keeps the traceback), and what to do about it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{ADAPTER_FAILED} (a bug: {type(exc).__name__}{where}); replay it after a fix"
