"""Provider answers to a send, table-driven: each channel's render fixture lists them under
"responses", each with the message id a success yields or the error a failure raises."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.base import Adapter, SendError


def raw(body: Any) -> bytes:
    """A case's response body as the provider's bytes: JSON, a string as it is, or nothing."""
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def check_send_response(adapter: Adapter, case: dict[str, Any]) -> None:
    """The adapter reads `case`'s answer as the case says. A case that does not mention
    `unsubscribed` expects False: only an answer meaning "this person opted out" sets it."""
    answer = (case["status"], raw(case["body"]), case.get("headers", {}))
    if "id" in case:
        assert adapter.read_send_response(*answer) == case["id"]
        return
    with pytest.raises(SendError) as caught:
        adapter.read_send_response(*answer)
    error = caught.value
    assert {
        "category": error.category,
        "code": error.code,
        "title": error.title,
        "retry_after": error.retry_after,
        "unsubscribed": error.unsubscribed,
    } == {"unsubscribed": False, **case["error"]}
