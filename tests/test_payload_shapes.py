"""A payload of the wrong shape fails with the path of the field at fault, on every channel
(each reads its payloads into typed models: docs/payloads.md).

Each case of `tests/fixtures/<channel>/shapes.json` takes a documented fixture, replaces one
node (`value`) or removes it (`"delete": true`), and gives the reason the failed inbox row
must keep. A node is a JSON path (WhatsApp, Messenger, LINE, Viber), a form parameter (SMS: a
list repeats it) or a child of WeChat's `<xml>` (an object gives it child elements)."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from structlog.testing import capture_logs

from adapters import ADAPTERS, Adapter
from adapters.failures import ADAPTER_FAILED
from gateway.pipeline.normaliser import read_row
from gateway.preview import placeholder_config
from gateway.store import InboxRow
from tests.tables import replaced

FIXTURES = Path(__file__).parent / "fixtures"
CHANNELS = ["whatsapp", "messenger", "line", "viber", "sms", "wechat"]

# The three wrong shapes the table of every channel has, by the end of the reason they give.
# A form's values are all text and nothing in it nests, and an XML push's leaves are text too:
# there, the same mistakes are a parameter repeated where one value belongs, child elements
# where text belongs, and text that is no number where a number belongs.
KINDS = {
    "a string where an object belongs": "expected an object, got a string",
    "a missing required field": "missing",
    "a number where a string belongs": "expected a string, got a number",
}
FLAT_KINDS = {
    "sms": {
        "a list where a string belongs": "expected a string, got a list",
        "a missing required field": r"missing( \(.*\))?",
        "text where a number belongs": r"expected an integer, got '[^']*'",
    },
    "wechat": {
        "child elements where text belongs": "expected a string, got an object",
        "a missing required field": "missing",
        "text where a number belongs": r"expected an integer, got '[^']*'",
    },
}


def adapter_for(channel: str) -> Adapter:
    cls = ADAPTERS[channel]
    return cls(placeholder_config(cls.config_model, channel))


def without(value: Any, path: list[Any]) -> Any:
    """A copy of the JSON `value` without the node at `path`."""
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    return replaced(value, path[:-1], {k: v for k, v in parent.items() if k != path[-1]})


def json_body(raw: bytes, case: dict[str, Any]) -> bytes:
    original = json.loads(raw)
    if case.get("delete"):
        return json.dumps(without(original, case["path"])).encode()
    return json.dumps(replaced(original, case["path"], case["value"])).encode()


def form_body(raw: bytes, case: dict[str, Any]) -> bytes:
    [name] = case["path"]
    pairs = [(k, v) for k, v in urllib.parse.parse_qsl(raw.decode()) if k != name]
    if not case.get("delete"):
        values = case["value"] if isinstance(case["value"], list) else [case["value"]]
        pairs += [(name, v) for v in values]
    return urllib.parse.urlencode(pairs).encode()


def xml_body(raw: bytes, case: dict[str, Any]) -> bytes:
    [tag] = case["path"]
    root = ElementTree.fromstring(raw)
    node = root.find(tag)
    assert node is not None, f"the fixture has no <{tag}>"
    if case.get("delete"):
        root.remove(node)
    elif isinstance(case["value"], dict):
        node.text = None
        for child, text in case["value"].items():
            ElementTree.SubElement(node, child).text = text
    else:
        node.text = case["value"]
    return ElementTree.tostring(root, encoding="utf-8")


BODIES = {".json": json_body, ".txt": form_body, ".xml": xml_body}


def shape_cases() -> list[Any]:
    return [
        pytest.param(channel, case, id=f"{channel}-{case['name']}")
        for channel in CHANNELS
        for case in json.loads((FIXTURES / channel / "shapes.json").read_text())
    ]


@pytest.mark.parametrize(("channel", "case"), shape_cases())
def test_a_node_of_the_wrong_shape_is_named_by_its_path(channel: str, case: dict[str, Any]) -> None:
    fixture = FIXTURES / channel / case["file"]
    body = BODIES[fixture.suffix](fixture.read_bytes(), case)
    reason = read_row(adapter_for(channel), InboxRow(1, channel, body, 1_749_416_383.0, 1))
    assert reason == case["reason"]


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_channel_has_each_kind_of_wrong_shape(channel: str) -> None:
    """A table per channel covers each kind of wrong shape, every reason naming a path."""
    cases = json.loads((FIXTURES / channel / "shapes.json").read_text())
    reasons = [c["reason"] for c in cases]
    for kind, ending in FLAT_KINDS.get(channel, KINDS).items():
        assert any(re.search(f"^invalid payload: [^ ]+: {ending}$", r) for r in reasons), kind


def test_an_adapter_bug_that_is_no_shape_is_the_adapters_failure() -> None:
    """A bug of the adapter's own is reported as one, with where it was raised, and logged
    with its traceback for whoever fixes the adapter; the payload is not blamed."""

    class Broken(type(adapter_for("whatsapp"))):  # type: ignore[misc]
        def read(self, body: bytes, received_at: Any, only: Any = None) -> Any:
            super().read(body, received_at, only)
            return 1 / 0

    adapter = Broken(adapter_for("whatsapp").config)
    body = (FIXTURES / "whatsapp" / "text.json").read_bytes()
    with capture_logs() as logs:
        reason = read_row(adapter, InboxRow(1, "whatsapp", body, 0.0, 1))
    assert re.fullmatch(
        rf"{ADAPTER_FAILED} \(a bug: ZeroDivisionError at test_payload_shapes\.py:\d+\); "
        "replay it after a fix",
        reason,
    ), reason
    assert [e["event"] for e in logs] == ["adapter_failed"] and logs[0]["exc_info"]
