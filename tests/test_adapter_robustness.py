"""Property: whatever a signed request holds, the gateway keeps it and either reads its
events or says why not, naming the field: ingress gets a dedupe key (the adapter's, or a hash
of the body when the adapter fails on the shape), and `read_row` returns events or the reason
the failed row keeps, never an exception that would leave the row to be claimed again and
again, and never a bare "adapter error: AttributeError: 'int' object has no attribute 'get'"
where the payload's shape was at fault (the typed payload models name the path).

Each case starts from one of the channel's documented fixtures (the files `cases.json`
lists) and replaces one node anywhere in it with another JSON value: the shapes a provider
change, a proxy or an attacker holding the secret could send."""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters import ADAPTERS
from adapters.base import (
    MAX_RETRY_AFTER_SECONDS,
    PayloadError,
    SendError,
    retry_after_seconds,
)
from gateway.pipeline.normaliser import read_row
from gateway.preview import placeholder_config
from gateway.store import InboxRow
from tests.fuzzing import paths
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


# The keys providers' send answers use, so generated bodies reach the branches that read them.
ANSWER_KEYS = st.sampled_from(
    ["messages", "id", "message_id", "recipient_id", "sid", "status", "message_token",
     "sentMessages", "error", "code", "message", "details", "error_data", "error_subcode",
     "status_message", "more_info", "type", "title", "property"]
)  # fmt: skip
ANSWERS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANSWER_KEYS, inner, max_size=4),
    max_leaves=8,
)
RETRY_AFTER = st.sampled_from(["", "3", "1.5", "-5", "nan", "inf", "1e309", "soon", "99999999"])


@pytest.mark.parametrize("channel", sorted(ADAPTERS))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    status=st.sampled_from([200, 201, 400, 401, 403, 404, 409, 429, 500, 502, 503]),
    answer=ANSWERS | st.sampled_from([b"", b"<html>502 Bad Gateway</html>", b"\xff", b"[" * 5000]),
    retry_after=RETRY_AFTER,
)
# Found by longer runs of this test: LINE iterated an error's `details` whatever it was.
@example(status=404, answer={"details": 5}, retry_after="")
@example(status=429, answer={"error": {"code": 4}}, retry_after="1e309")
@example(status=200, answer={"messages": [{}]}, retry_after="")  # WhatsApp: KeyError 'id'
@example(status=200, answer={"status": False, "message_token": False}, retry_after="")  # Viber
@example(status=200, answer={"message_id": True, "sid": {"a": 1}}, retry_after="")
def test_any_answer_to_a_send_is_an_id_or_a_send_error(
    channel: str, status: int, answer: Any, retry_after: str
) -> None:
    """A provider (or a proxy in front of it) may answer anything: reading it must give the
    message's id or a classified SendError, or the outbox item is claimed again and again."""
    cls = ADAPTERS[channel]
    adapter = cls(placeholder_config(cls.config_model, channel))
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    headers = {"Retry-After": retry_after} if retry_after else {}
    try:
        external_id = adapter.read_send_response(status, body, headers)
    except SendError as error:
        assert error.retry_after is None or 0 <= error.retry_after <= MAX_RETRY_AFTER_SECONDS
    else:  # an id statuses can be matched with, not the text of whatever was there
        assert isinstance(external_id, str) and external_id
        assert external_id not in {"None", "True", "False"}, external_id
        assert not external_id.startswith(("{", "[")), external_id


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("1.5", 1.5),
        ("-5", 0.0),  # in the past: retry now
        ("99999999", MAX_RETRY_AFTER_SECONDS),  # capped: our backoff decides beyond an hour
        ("nan", None),
        ("1e309", None),  # once paused a channel for ever
        ("soon", None),
        ("Mon, 07 Dec 2026 10:00:30 GMT", 30.0),  # RFC 9110 also allows an HTTP-date
        ("Mon, 07 Dec 2026 09:59:00 GMT", 0.0),
    ],
)
def test_retry_after_is_read_as_a_bounded_wait(value: str, seconds: float | None) -> None:
    now = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": value}, now) == seconds
