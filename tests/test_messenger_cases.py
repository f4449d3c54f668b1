"""Messenger inbound side, table-driven over Page webhook bodies.

Each row of fixtures/messenger/cases.json names a raw body and either the events it parses to
(the full draft minus `channel`, plus the event's dedupe key) or the PayloadError it raises
(`"stored": true`: with ids readable, so ingress stores it; see tests/tables.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.base import PayloadError
from adapters.messenger import MessengerAdapter, MessengerConfig
from adapters.meta_graph import MILLIS_FROM, meta_time
from gateway.cli import main
from tests.tables import check_admission, check_parse, parsed_events

FIXTURES = Path(__file__).parent / "fixtures" / "messenger"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text())
PARSED = [c for c in CASES if "events" in c]
PAGE_ID = "107331552213590"
APP_SECRET = "fb-test-app-secret-123"
VERIFY_TOKEN = "fb-verify-me-please"


def make_adapter(**overrides: Any) -> MessengerAdapter:
    settings: dict[str, Any] = {
        "id": "fb-main",
        "type": "messenger",
        "page_id": PAGE_ID,
        "page_access_token": "fb-page-token-abcdef",
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
    }
    return MessengerAdapter(MessengerConfig(**(settings | overrides)))


def body(case: dict[str, Any]) -> bytes:
    return (FIXTURES / str(case["file"])).read_bytes()


def parsed(raw: bytes, adapter: MessengerAdapter | None = None) -> list[dict[str, Any]]:
    return parsed_events(adapter or make_adapter(), raw)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse(case: dict[str, Any]) -> None:
    check_parse(make_adapter(), body(case), case)


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_dedupe_key_agrees_with_parse_and_is_stable(case: dict[str, Any]) -> None:
    raw = body(case)
    key = make_adapter().dedupe_key(raw)
    reserialised = json.dumps(json.loads(raw)).encode()  # same events, different bytes
    assert key == make_adapter().dedupe_key(raw) == make_adapter().dedupe_key(reserialised)
    event_keys = [e["dedupe_key"] for e in case["events"]]
    assert len(set(event_keys)) == len(event_keys)
    if len(event_keys) == 1:
        assert key == event_keys[0]
    else:
        assert key.startswith("sha256:")
        # The request key is a function of the event keys alone.
        events = make_adapter().parse(raw)
        assert sorted(e.dedupe_key for e in events) == sorted(event_keys)


def test_dedupe_keys_differ_between_webhooks() -> None:
    keys = [make_adapter().dedupe_key(body(c)) for c in PARSED]
    assert len(set(keys)) == len(keys)


def test_a_reaction_repeated_later_is_a_new_event() -> None:
    payload = json.loads((FIXTURES / "reaction.json").read_bytes())
    first = make_adapter().dedupe_key(json.dumps(payload).encode())
    payload["entry"][0]["messaging"][0]["timestamp"] += 60_000  # reacted again a minute later
    assert make_adapter().dedupe_key(json.dumps(payload).encode()) != first


def test_a_read_receipt_with_a_later_watermark_is_a_new_event() -> None:
    payload = json.loads((FIXTURES / "read.json").read_bytes())
    first = make_adapter().dedupe_key(json.dumps(payload).encode())
    payload["entry"][0]["messaging"][0]["read"]["watermark"] += 1
    assert make_adapter().dedupe_key(json.dumps(payload).encode()) != first


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MILLIS_FROM - 1, "5138-11-16T09:46:39+00:00"),  # the largest value read as seconds
        (MILLIS_FROM, "1973-03-03T09:46:40+00:00"),  # the smallest read as milliseconds
        (1458692752478, "2016-03-23T00:25:52.478000+00:00"),  # messaging_referrals' example
        ("1527459824", "2018-05-27T22:23:44+00:00"),  # messaging_postbacks': seconds, a string
        ("1527459824123", "2018-05-27T22:23:44.123000+00:00"),
    ],
)
def test_meta_times_in_seconds_or_milliseconds(value: int | str, expected: str) -> None:
    assert meta_time(value).isoformat() == expected


@pytest.mark.parametrize("value", [None, "soon", 1.5e300])
def test_unreadable_meta_time_is_a_payload_error(value: object) -> None:
    with pytest.raises(PayloadError, match="timestamp"):
        meta_time(value)


def test_echo_is_never_a_user_message() -> None:
    [event] = make_adapter().parse(body({"file": "echo.json"}))
    assert event.draft.type == "system" and event.draft.message is None
    assert event.draft.sender is not None and event.draft.sender.id == PAGE_ID


def test_marketing_opt_out_is_not_a_subscription_event() -> None:
    # A STOP for marketing messages must not block ordinary replies in the 24-hour window.
    [event] = make_adapter().parse(body({"file": "optin_stop_notifications.json"}))
    assert event.draft.type == "system" and event.draft.subscription is None
    assert event.draft.system is not None and event.draft.system.kind == "optin"


def test_sibling_pages_sharing_one_app_are_routed_by_page_id() -> None:
    main_page = make_adapter()
    other = make_adapter(id="fb-other", page_id="998877665544332")
    foreign = make_adapter(id="fb-foreign", page_id="111", app_secret="another-app-secret")
    for adapter in (main_page, other, foreign):
        adapter.link_siblings([main_page, other, foreign])
    payload = json.loads(body({"file": "text.json"}))
    payload["entry"][0]["id"] = "998877665544332"
    payload["entry"][0]["messaging"][0]["recipient"]["id"] = "998877665544332"
    [event] = main_page.parse(json.dumps(payload).encode())
    assert event.draft.channel.id == "fb-other"
    assert "111" not in main_page.siblings  # a different app's page is not a sibling


def test_cli_normalize(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", "--channel", "messenger", str(FIXTURES / "delivery.json")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [e["type"] for e in lines] == ["status", "status", "status"]
    assert [e["status"]["state"] for e in lines] == ["delivered"] * 3
    assert "watermark" in lines[2]["status"] and "external_id" not in lines[2]["status"]
    assert all(e["channel"] == {"id": "messenger", "type": "messenger"} for e in lines)


def test_cli_normalize_refuses_other_providers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", "--channel", "messenger", str(FIXTURES / "wrong_object.json")]) == 1
    assert "not a Messenger webhook" in capsys.readouterr().err


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_admission_reads_the_key_and_the_newest_event_time(case: dict[str, Any]) -> None:
    check_admission(make_adapter(), body(case), case)
