"""The per-channel fixture tables: loading them, and the checks every channel shares.

Each channel keeps `tests/fixtures/<type>/cases.json` (webhooks and the events they become)
and `render_cases.json` (content, the provider requests it becomes, and the provider's
answers to a send, each with the message id a success yields or the error a failure raises).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Adapter, PayloadError, SendError


def replaced(value: Any, path: Sequence[Any], new: Any) -> Any:
    """A copy of the JSON `value` with the node at `path` (keys and indexes) replaced."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    return [replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


def expand(value: Any) -> Any:
    """A table with its `{"$repeat": [text, times]}` shorthands written out (long texts)."""
    if isinstance(value, dict):
        if value.keys() == {"$repeat"}:
            text, times = value["$repeat"]
            return text * times
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


def load_table(path: Path) -> Any:
    return expand(json.loads(path.read_text()))


def parsed_events(adapter: Adapter, raw: bytes) -> list[dict[str, Any]]:
    """The events `adapter` parses from `raw`, as JSON with their dedupe keys, each checked to
    name the adapter's channel (so the tables need not repeat it)."""
    events = []
    for event in adapter.parse(raw):
        dumped = event.draft.model_dump(mode="json", exclude_none=True)
        assert dumped.pop("channel") == {"id": adapter.config.id, "type": adapter.type}
        events.append({**dumped, "dedupe_key": event.dedupe_key})
    return events


def check_parse(adapter: Adapter, raw: bytes, case: dict[str, Any]) -> None:
    """`raw` parses to `case`'s events, or parsing it raises its PayloadError. Keying it then
    raises the same (ingress answers 400 rather than storing a request it cannot key), unless
    the case says `"stored": true`: its ids are readable, so ingress stores it and the
    normaliser keeps it failed with that reason, for a replay after a fix."""
    if "error" in case:
        with pytest.raises(PayloadError, match=re.escape(case["error"])):
            adapter.parse(raw)
        if case.get("stored"):
            key = adapter.dedupe_key(raw)
            assert isinstance(key, str) and key
        else:
            with pytest.raises(PayloadError, match=re.escape(case["error"])):
                adapter.dedupe_key(raw)
        return
    assert parsed_events(adapter, raw) == case["events"]


def node(value: Any, path: str) -> Any:
    """The node of the JSON `value` at a path as adapters name it: `entry[0].messaging[1]`."""
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        value = value[int(index)] if index else value[name]
    return value


def check_read(adapter: Adapter, raw: bytes, case: dict[str, Any]) -> None:
    """A batched webhook with unreadable parts (`tests/fixtures/<channel>/parts.json`): the
    events of every readable part, and each unreadable part kept as received, with its path
    and a reason naming the field at fault. `parse` refuses it with the first reason, and
    ingress stores it (its key is readable) for the normaliser to split."""
    reading = adapter.read(raw, None)
    events = []
    for event in reading.events:
        dumped = event.draft.model_dump(mode="json", exclude_none=True)
        assert dumped.pop("channel") == {"id": adapter.config.id, "type": adapter.type}
        events.append({**dumped, "dedupe_key": event.dedupe_key})
    assert events == case["events"]
    assert [{"path": f.path, "reason": f.reason} for f in reading.failed] == case["failed"]
    body = json.loads(raw)
    assert [f.part for f in reading.failed] == [node(body, f.path) for f in reading.failed]
    with pytest.raises(PayloadError, match=re.escape(case["failed"][0]["reason"])):
        adapter.parse(raw)
    assert adapter.dedupe_key(raw)


def check_admission(adapter: Adapter, raw: bytes, case: dict[str, Any]) -> None:
    """What ingress reads of `raw` agrees with its parse: the request's dedupe key, and its
    date, the newest of its events' (what the acceptance window is measured against)."""
    key, dated = adapter.admission(raw)
    assert key == adapter.dedupe_key(raw)
    if case.get("undated"):  # no time ingress reads: such a request is never refused as old
        assert dated is None
        return
    times = [datetime.fromisoformat(e["timestamp"]).timestamp() for e in case["events"]]
    if times:  # a verification request yields no event to compare with
        assert dated == pytest.approx(max(times), abs=1e-3)


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
