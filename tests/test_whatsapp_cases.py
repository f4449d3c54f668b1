"""WhatsApp Cloud API inbound side, table-driven over Meta webhook bodies.

Each row of fixtures/whatsapp/cases.json names a raw body and either the events it parses to
(the full draft minus `channel`, plus the event's dedupe key) or the PayloadError it raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.whatsapp import WhatsAppAdapter, WhatsAppConfig
from tests.tables import check_admission, check_parse

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text())
PARSED = [c for c in CASES if "events" in c]
APP_SECRET = "test-app-secret-123"
VERIFY_TOKEN = "verify-me-please"


def make_adapter() -> WhatsAppAdapter:
    return WhatsAppAdapter(
        WhatsAppConfig(
            id="wa-main",
            type="whatsapp",
            phone_number_id="106540352242922",
            access_token="test-token-abcdef",
            app_secret=APP_SECRET,
            verify_token=VERIFY_TOKEN,
        )
    )


def body(case: dict[str, Any]) -> bytes:
    return (FIXTURES / case["file"]).read_bytes()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse(case: dict[str, Any]) -> None:
    check_parse(make_adapter(), body(case), case)


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_dedupe_key_is_stable_across_redeliveries(case: dict[str, Any]) -> None:
    raw = body(case)
    key = make_adapter().dedupe_key(raw)
    reserialised = json.dumps(json.loads(raw)).encode()  # same events, different bytes
    assert key == make_adapter().dedupe_key(raw) == make_adapter().dedupe_key(reserialised)
    event_keys = [e["dedupe_key"] for e in case["events"]]
    if len(event_keys) == 1:
        assert key == event_keys[0]
    else:
        assert key.startswith("sha256:")


def test_dedupe_keys_differ_between_webhooks() -> None:
    keys = [make_adapter().dedupe_key(body(c)) for c in PARSED]
    assert len(set(keys)) == len(keys)


def test_a_repeated_change_at_a_later_time_is_a_new_event() -> None:
    payload = json.loads((FIXTURES / "template_status_update.json").read_bytes())
    first = make_adapter().dedupe_key(json.dumps(payload).encode())
    payload["entry"][0]["time"] += 3600  # the same template approved again an hour later
    assert make_adapter().dedupe_key(json.dumps(payload).encode()) != first


def test_changes_without_a_time_take_the_arrival_time() -> None:
    from datetime import UTC, datetime

    arrived = datetime(2025, 6, 8, 21, 0, tzinfo=UTC)
    raw = (FIXTURES / "value_errors.json").read_bytes()
    [event] = make_adapter().parse_received(raw, arrived)
    assert event.draft.type == "system" and event.draft.timestamp == arrived


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_admission_reads_the_key_and_the_newest_event_time(case: dict[str, Any]) -> None:
    check_admission(make_adapter(), body(case), case)
