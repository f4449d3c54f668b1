"""LINE Messaging API inbound side, table-driven over LINE webhook bodies.

Each row of fixtures/line/cases.json names a raw body and either the events it parses to
(the full draft minus `channel`, plus the event's dedupe key) or the PayloadError it raises.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest

from adapters.base import InboundRequest, PayloadError
from adapters.line import SIGNATURE_HEADER, LineAdapter, LineConfig, signature
from tests.tables import check_admission, check_parse

FIXTURES = Path(__file__).parent / "fixtures" / "line"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text())
PARSED = [c for c in CASES if "events" in c]
CHANNEL_SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"


def make_adapter(secret: str = CHANNEL_SECRET) -> LineAdapter:
    return LineAdapter(
        LineConfig(
            id="line-main",
            type="line",
            channel_secret=secret,
            channel_access_token="line-access-token-abcdef",
        )
    )


def body(case: dict[str, Any]) -> bytes:
    return (FIXTURES / str(case["file"])).read_bytes()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse(case: dict[str, Any]) -> None:
    check_parse(make_adapter(), body(case), case)


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_dedupe_key_is_stable_across_redeliveries(case: dict[str, Any]) -> None:
    raw = body(case)
    key = make_adapter().dedupe_key(raw)
    reserialised = json.dumps(json.loads(raw)).encode()  # same events, different bytes
    assert key == make_adapter().dedupe_key(raw)
    event_keys = [e["dedupe_key"] for e in case["events"]]
    if len(event_keys) == 1:
        assert key == event_keys[0] == make_adapter().dedupe_key(reserialised)
    elif event_keys:
        assert key.startswith("sha256:")
        assert key == make_adapter().dedupe_key(reserialised)
        expected = hashlib.sha256("\n".join(sorted(event_keys)).encode()).hexdigest()
        assert key == "sha256:" + expected
    else:  # a verification request: keyed by its bytes, and it parses to nothing
        assert key == "verify:" + hashlib.sha256(raw).hexdigest()


def test_dedupe_keys_differ_between_webhooks() -> None:
    keys = [make_adapter().dedupe_key(body(c)) for c in PARSED]
    assert len(set(keys)) == len(keys)


def test_a_redelivered_event_has_the_key_of_the_first_delivery() -> None:
    payload = json.loads((FIXTURES / "redelivered_text.json").read_bytes())
    redelivered = make_adapter().dedupe_key(json.dumps(payload).encode())
    payload["events"][0]["deliveryContext"]["isRedelivery"] = False
    assert make_adapter().dedupe_key(json.dumps(payload).encode()) == redelivered


def test_the_batch_order_does_not_change_its_key() -> None:
    payload = json.loads((FIXTURES / "batch.json").read_bytes())
    key = make_adapter().dedupe_key(json.dumps(payload).encode())
    payload["events"].reverse()
    assert make_adapter().dedupe_key(json.dumps(payload).encode()) == key


def test_an_event_without_a_webhook_event_id_is_keyed_by_its_content() -> None:
    payload = json.loads((FIXTURES / "text.json").read_bytes())
    del payload["events"][0]["webhookEventId"]
    key = make_adapter().dedupe_key(json.dumps(payload).encode())
    assert key.startswith("evt-sha256:")
    [event] = make_adapter().parse(json.dumps(payload).encode())
    assert event.dedupe_key == key


def test_a_message_without_an_id_is_stored_but_fails_to_parse() -> None:
    raw = (FIXTURES / "message_without_id.json").read_bytes()
    # Raw first: the dedupe key only needs the event id, so ingress keeps the request...
    assert make_adapter().dedupe_key(raw) == "evt:01GZ8Y6J5W0QX1T6P2H3M4N5RT"
    # ...and the normaliser marks it failed, replayable after a fix.
    with pytest.raises(PayloadError, match=re.escape("events[0].message.id: missing")):
        make_adapter().parse(raw)


def request(raw: bytes, headers: dict[str, str]) -> InboundRequest:
    return InboundRequest("POST", "https://gw.example/webhooks/line-main", headers, raw)


RAW = (FIXTURES / "text.json").read_bytes()


def reference_signature(secret: str, raw: bytes) -> str:
    """Written out independently of the adapter, as LINE's docs show it."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


SIGNATURES = {
    "valid": ({SIGNATURE_HEADER: reference_signature(CHANNEL_SECRET, RAW)}, True),
    "valid_lowercase_header_as_line_sends_it": (
        {"x-line-signature": reference_signature(CHANNEL_SECRET, RAW)},
        True,
    ),
    "forged": ({SIGNATURE_HEADER: reference_signature("not-the-channel-secret", RAW)}, False),
    "missing": ({}, False),
    "hex_instead_of_base64": (
        {SIGNATURE_HEADER: hmac.new(CHANNEL_SECRET.encode(), RAW, hashlib.sha256).hexdigest()},
        False,
    ),
    "over_reserialised_json": (
        {
            SIGNATURE_HEADER: reference_signature(
                CHANNEL_SECRET, json.dumps(json.loads(RAW)).encode()
            )
        },
        False,
    ),
    "empty": ({SIGNATURE_HEADER: ""}, False),
}


@pytest.mark.parametrize(("headers", "valid"), SIGNATURES.values(), ids=SIGNATURES.keys())
def test_verify(headers: dict[str, str], valid: bool) -> None:
    assert make_adapter().verify(request(RAW, headers)) is valid


def test_signature_helper_matches_the_reference() -> None:
    assert signature(CHANNEL_SECRET, RAW) == reference_signature(CHANNEL_SECRET, RAW)


def test_a_request_signed_for_another_channel_is_refused() -> None:
    other = make_adapter("a-different-channel-secret")
    headers = {SIGNATURE_HEADER: reference_signature(CHANNEL_SECRET, RAW)}
    assert make_adapter().verify(request(RAW, headers))
    assert not other.verify(request(RAW, headers))


def test_no_handshake_and_a_plain_ok() -> None:
    adapter = make_adapter()
    assert adapter.handshake({"hub.mode": "subscribe"}) is None
    assert adapter.acknowledge((FIXTURES / "verification.json").read_bytes()).status == 200


def test_secrets_are_listed_for_redaction() -> None:
    assert set(make_adapter().secrets()) == {CHANNEL_SECRET, "line-access-token-abcdef"}


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_admission_reads_the_key_and_the_newest_event_time(case: dict[str, Any]) -> None:
    check_admission(make_adapter(), body(case), case)
