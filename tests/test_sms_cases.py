"""Twilio SMS/MMS inbound side, table-driven over Twilio's form-encoded webhook bodies.

Each row of fixtures/sms/cases.json names a raw body and either the events it parses to
(the full draft minus `channel` and `timestamp`, plus the event's dedupe key) or the
PayloadError it raises. Twilio sends no event time, so drafts carry the adapter's clock.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from pydantic import ValidationError

from adapters.base import InboundRequest, PayloadError
from adapters.sms import SIGNATURE_HEADER, TWIML_EMPTY, SmsAdapter, SmsConfig
from gateway.cli import main
from gateway.simulator.sms import sign
from tests.tables import parsed_events

FIXTURES = Path(__file__).parent / "fixtures" / "sms"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text())
PARSED = [c for c in CASES if "events" in c]
ACCOUNT_SID = "AC3f1b5d7e9a2c4e6f8b0d2f4a6c8e0b1d"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
NOW = datetime(2025, 6, 8, 21, 0, tzinfo=UTC)
URL = "https://sms.example.com/webhooks/sms-main"


def make_adapter(**overrides: Any) -> SmsAdapter:
    settings: dict[str, Any] = {
        "id": "sms-main",
        "type": "sms",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "+14155550199",
    }
    adapter = SmsAdapter(SmsConfig(**(settings | overrides)))
    adapter.clock = lambda: NOW
    return adapter


def body(case: dict[str, Any]) -> bytes:
    return (FIXTURES / case["file"]).read_bytes()


def parsed(raw: bytes) -> list[dict[str, Any]]:
    events = parsed_events(make_adapter(), raw)
    for event in events:  # every fixture was sent at the same moment
        assert event.pop("timestamp") == "2025-06-08T21:00:00Z"
    return events


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(PayloadError, match=re.escape(case["error"])):
            make_adapter().parse(body(case))
        if b"MessageSid" not in body(case):
            with pytest.raises(PayloadError):
                make_adapter().dedupe_key(body(case))  # ingress answers 400, stores nothing
        return
    assert parsed(body(case)) == case["events"]


def test_every_status_and_keyword_kind_is_covered() -> None:
    statuses = {dict(parse_qsl(body(c).decode())).get("MessageStatus") for c in PARSED} - {None}
    assert statuses >= {"queued", "sending", "sent", "delivered", "undelivered", "failed", "read"}
    states = {
        e["subscription"]["state"] for c in PARSED for e in c["events"] if "subscription" in e
    }
    assert states == {"subscribed", "unsubscribed", "help"}


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_dedupe_key_is_the_first_events_key_and_stable(case: dict[str, Any]) -> None:
    raw = body(case)
    key = make_adapter().dedupe_key(raw)
    assert key == case["events"][0]["dedupe_key"]
    # A redelivery may order and escape parameters differently: same key.
    pairs = parse_qsl(raw.decode(), keep_blank_values=True)
    reencoded = urlencode(list(reversed(pairs)), safe="+/:").encode()
    assert make_adapter().dedupe_key(reencoded) == key
    event_keys = [e["dedupe_key"] for e in case["events"]]
    assert len(set(event_keys)) == len(event_keys)
    assert all(k == key or k.startswith(key + "/") for k in event_keys)


def test_dedupe_keys_differ_between_webhooks() -> None:
    keys = [make_adapter().dedupe_key(body(c)) for c in PARSED]
    assert len(set(keys)) == len(keys)


def test_statuses_of_one_message_are_keyed_by_state() -> None:
    sent = make_adapter().dedupe_key((FIXTURES / "status_sent.txt").read_bytes())
    delivered = make_adapter().dedupe_key((FIXTURES / "status_delivered.txt").read_bytes())
    assert sent.split(":")[0] == delivered.split(":")[0]
    assert (sent.split(":")[1], delivered.split(":")[1]) == ("sent", "delivered")


@pytest.mark.parametrize(
    "word",
    [
        "STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT", "OptOut", "revoke",
        "START", "yes", "UNSTOP", "optin", "HELP", "info",
    ],
)  # fmt: skip
def test_every_keyword_is_a_subscription_event(word: str) -> None:
    raw = urlencode({"MessageSid": "SM" + "1" * 32, "From": "+14155550100", "Body": f" {word}\n"})
    [event] = make_adapter().parse(raw.encode())
    assert event.draft.type == "subscription" and event.draft.subscription is not None
    assert event.draft.subscription.keyword == word.upper()


@pytest.mark.parametrize("text", ["stop it", "STOP.", "please stop", "helpful", "yes please"])
def test_keywords_match_the_whole_message_only(text: str) -> None:
    raw = urlencode({"MessageSid": "SM" + "2" * 32, "From": "+14155550100", "Body": text})
    [event] = make_adapter().parse(raw.encode())
    assert event.draft.type == "message"


def test_stop_with_a_photo_keeps_the_photo() -> None:
    raw = urlencode(
        {
            "MessageSid": "MM" + "3" * 32,
            "From": "+14155550100",
            "Body": "STOP",
            "NumMedia": "1",
            "MediaUrl0": "https://api.twilio.com/x/Media/ME" + "4" * 32,
            "MediaContentType0": "image/gif",
        }
    )
    subscription, photo = make_adapter().parse(raw.encode())
    assert subscription.draft.type == "subscription"
    assert photo.draft.message is not None and photo.draft.message.content.type == "image"
    assert photo.draft.external_id == "MM" + "3" * 32 + "/1" == photo.dedupe_key


def test_acknowledge_is_empty_twiml() -> None:
    reply = make_adapter().acknowledge(b"")
    assert (reply.status, reply.body, reply.content_type) == (200, TWIML_EMPTY, "text/xml")


def test_cli_normalize(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "twilio.txt"
    raw.write_bytes((FIXTURES / "mms_three_media.txt").read_bytes())
    assert main(["normalize", "--channel", "sms", "--channel-id", "sms-us", str(raw)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["message"]["content"]["type"] for e in lines] == ["image", "video", "file"]
    assert {e["channel"]["id"] for e in lines} == {"sms-us"}


def test_cli_normalize_refuses_a_json_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "not-twilio.json"
    raw.write_text('{"object": "page"}')
    assert main(["normalize", "--channel", "sms", str(raw)]) == 1
    assert "cannot parse as sms: malformed form body" in capsys.readouterr().err


# --- signatures ---------------------------------------------------------------------------

RAW = (FIXTURES / "sms_text.txt").read_bytes()
PARAMS = dict(parse_qsl(RAW.decode(), keep_blank_values=True))


def request(url: str, raw: bytes, headers: dict[str, str]) -> InboundRequest:
    return InboundRequest("POST", url, headers, raw)


REPEATED = b"MessageSid=SM" + b"5" * 32 + b"&Tag=b&Tag=a&Body=hi"
SIGNATURES = {
    "valid": (URL, RAW, sign(AUTH_TOKEN, URL, PARAMS), True),
    "valid_when_twilio_added_the_default_port": (
        URL,
        RAW,
        sign(AUTH_TOKEN, "https://sms.example.com:443/webhooks/sms-main", PARAMS),
        True,
    ),
    "valid_with_query_string": (
        URL + "?tenant=7",
        RAW,
        sign(AUTH_TOKEN, URL + "?tenant=7", PARAMS),
        True,
    ),
    "valid_with_repeated_keys": (
        URL,
        REPEATED,
        sign(AUTH_TOKEN, URL, {"MessageSid": ["SM" + "5" * 32], "Tag": ["b", "a"], "Body": ["hi"]}),
        True,
    ),
    "repeated_key_value_dropped": (
        URL,
        REPEATED.replace(b"&Tag=b", b""),
        sign(AUTH_TOKEN, URL, {"MessageSid": ["SM" + "5" * 32], "Tag": ["b", "a"], "Body": ["hi"]}),
        False,
    ),
    "forged_with_another_token": (URL, RAW, sign("f" * 32, URL, PARAMS), False),
    "signed_for_another_url": (
        URL,
        RAW,
        sign(AUTH_TOKEN, URL.replace("https", "http"), PARAMS),
        False,
    ),
    "query_string_left_out_of_signature": (
        URL + "?tenant=7",
        RAW,
        sign(AUTH_TOKEN, URL, PARAMS),
        False,
    ),
    "body_tampered": (
        URL,
        RAW.replace(b"pickup", b"delivery"),
        sign(AUTH_TOKEN, URL, PARAMS),
        False,
    ),
    "missing": (URL, RAW, None, False),
    "not_a_form": (URL, b'{"Body": "hi"}', sign(AUTH_TOKEN, URL, {}), False),
}


@pytest.mark.parametrize(
    ("url", "raw", "signature", "valid"), SIGNATURES.values(), ids=SIGNATURES.keys()
)
def test_verify(url: str, raw: bytes, signature: str | None, valid: bool) -> None:
    headers = {SIGNATURE_HEADER: signature} if signature else {}
    assert make_adapter().verify(request(url, raw, headers)) is valid


# --- configuration ------------------------------------------------------------------------

CONFIGS = {
    "from_number": ({"from_number": "+14155550199"}, None),
    "messaging_service": (
        {"from_number": None, "messaging_service_sid": "MG9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"},
        None,
    ),
    "neither": ({"from_number": None}, "exactly one of from_number or messaging_service_sid"),
    "both": (
        {"messaging_service_sid": "MG9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"},
        "exactly one of from_number or messaging_service_sid",
    ),
    "number_not_e164": ({"from_number": "4155550199"}, "from_number"),
    "bad_account_sid": ({"account_sid": "SK3f1b5d7e9a2c4e6f8b0d2f4a6c8e0b1d"}, "account_sid"),
}


@pytest.mark.parametrize(("overrides", "problem"), CONFIGS.values(), ids=CONFIGS.keys())
def test_config(overrides: dict[str, Any], problem: str | None) -> None:
    if problem is None:
        config = make_adapter(**overrides).config
        assert config.api_base_url == "https://api.twilio.com"
        assert config.rate_limit_per_second == 1.0
        return
    with pytest.raises(ValidationError, match=problem):
        make_adapter(**overrides)


def test_secrets_cover_the_token_and_the_basic_credential() -> None:
    adapter = make_adapter()
    assert AUTH_TOKEN in adapter.secrets()
    assert adapter.auth_headers()["Authorization"].removeprefix("Basic ") in adapter.secrets()
