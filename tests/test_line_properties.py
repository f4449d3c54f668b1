"""Property: any message, planned by the engine for LINE's real profile and rendered by the
LINE adapter, gives requests within LINE's limits, checked on the rendered JSON, and keeps
every choice the sender offered reachable (a postback `data`, or a numbered answer)."""

from __future__ import annotations

from typing import Any

import regex
from hypothesis import given, settings

from adapters.base import SendContext
from adapters.line import LineAdapter, LineConfig
from adapters.line.render import utf16_len
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER
from gateway.simulator.line import validate_messages

from .test_downgrade_properties import messages, offered, reachable

ADAPTER = LineAdapter(
    LineConfig(
        id="line-props",
        type="line",
        channel_secret="8c570fa6dd201bb328f1c1eac23a96d8",
        channel_access_token="line-props-token",
    )
)
CONTEXT = SendContext("msg_props", "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", now=0.0)


def graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


def actions_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    found = [i["action"] for i in (message.get("quickReply") or {}).get("items", [])]
    template = message.get("template") or {}
    found += template.get("actions", [])
    for column in template.get("columns", []):
        found += column["actions"]
    return found


def check_limits(message: dict[str, Any]) -> None:
    """LINE's limits, restated from its reference (see adapters/line/render.py for links)."""
    quick = (message.get("quickReply") or {}).get("items", [])
    assert len(quick) <= 13
    for action in actions_of(message):
        assert 1 <= graphemes(action["label"]) <= 20
        if action["type"] == "postback":
            assert len(action["data"]) <= 300
    if message["type"] == "text":
        assert 1 <= utf16_len(message["text"]) <= 5000
    if message["type"] != "template":
        return
    assert 1 <= utf16_len(message["altText"]) <= 400
    template = message["template"]
    if template["type"] == "buttons":
        assert 1 <= len(template["actions"]) <= 4
        shown = "title" in template or "thumbnailImageUrl" in template
        assert 1 <= graphemes(template["text"]) <= (60 if shown else 160)
        assert graphemes(template.get("title", "")) <= 40
    else:
        columns = template["columns"]
        assert 1 <= len(columns) <= 10
        assert len({len(c["actions"]) for c in columns}) == 1
        assert len({"title" in c for c in columns}) == 1
        assert len({"thumbnailImageUrl" in c for c in columns}) == 1
        for column in columns:
            assert 1 <= len(column["actions"]) <= 3
            shown = "title" in column or "thumbnailImageUrl" in column
            assert 1 <= graphemes(column["text"]) <= (60 if shown else 120)
            assert graphemes(column.get("title", "")) <= 40


@settings(max_examples=300, deadline=None)
@given(messages())
def test_line_requests_respect_limits_and_keep_every_choice(message: dict[str, Any]) -> None:
    planned = plan(CONTENT_ADAPTER.validate_python(message), ADAPTER.profile)
    requests = ADAPTER.render_parts(planned.parts, CONTEXT)
    native: set[str] = set()
    for request in requests:
        assert request.json is not None
        sent = request.json["messages"]
        assert 1 <= len(sent) <= 5
        for line_message in sent:
            check_limits(line_message)
            native |= {a["data"] for a in actions_of(line_message) if a["type"] == "postback"}
        validate_messages(sent)  # and as the simulator, LINE's stand-in, checks them
    assert offered(message) <= native | {c.payload for c in planned.choices}
    assert offered(message) <= reachable(planned)
