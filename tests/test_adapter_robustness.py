"""Property: whatever a signed request holds, the gateway keeps it and either reads its
events or says why not, naming the field: ingress gets a dedupe key (the adapter's, or a hash
of the body when the adapter fails on the shape), and `read_row` returns events or the reason
the failed row keeps, never an exception that would leave the row to be claimed again and
again, and never a bare "adapter error: AttributeError: 'int' object has no attribute 'get'"
where the payload's shape was at fault (adapters/shape.py finds the path).

Each case starts from one of the channel's documented fixtures (the files `cases.json`
lists) and replaces one node anywhere in it with another JSON value: the shapes a provider
change, a proxy or an attacker holding the secret could send."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import ADAPTERS
from adapters.base import PayloadError
from gateway.pipeline.normaliser import read_row
from gateway.preview import placeholder_config
from gateway.store import InboxRow
from tests.tables import replaced

FIXTURES = Path(__file__).parent / "fixtures"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def payloads(channel: str) -> list[Any]:
    """The channel's fixtures as JSON values (SMS: Twilio's form fields as a dict)."""
    found = []
    for case in json.loads((FIXTURES / channel / "cases.json").read_text()):
        raw = (FIXTURES / channel / case["file"]).read_bytes()
        try:
            found.append(
                json.loads(raw) if channel != "sms" else dict(urllib.parse.parse_qsl(raw.decode()))
            )
        except (ValueError, UnicodeDecodeError):
            continue  # the fixtures of unreadable bodies: already cases of their own
    return found


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def body_of(channel: str, value: Any) -> bytes:
    if channel == "sms":
        fields = value if isinstance(value, dict) else {"Body": value}
        return urllib.parse.urlencode({str(k): str(v) for k, v in fields.items()}).encode()
    return json.dumps(value).encode()


@pytest.mark.parametrize("channel", sorted(ADAPTERS))
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_any_one_changed_node_is_read_or_refused_with_a_reason(channel: str, data: Any) -> None:
    cls = ADAPTERS[channel]
    adapter = cls(placeholder_config(cls.config_model, channel))
    original = data.draw(st.sampled_from(payloads(channel)))
    path = data.draw(st.sampled_from(paths(original)))
    body = body_of(channel, replaced(original, path, data.draw(JSON_VALUES)))
    try:
        key = adapter.dedupe_key(body)
    except PayloadError:
        return  # refused at ingress with 400: nothing stored, the provider is told why
    except Exception:
        key = None  # ingress stores it under a hash of the body (test_ingress covers it)
    assert key is None or (isinstance(key, str) and key)
    row = InboxRow(1, channel, body, 1_749_416_383.0, 1)
    events = read_row(adapter, row)  # raising here would leave the row to be claimed forever
    if isinstance(events, str):
        assert events.strip(), "a failed row must say why"
        assert not events.startswith("adapter error"), events
    else:  # read: every event is tied to its raw request and has its dedupe key
        assert all(e.event.raw_id == 1 and e.dedupe_key for e in events)
