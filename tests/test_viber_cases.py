"""Viber REST Bot API inbound side, table-driven over Viber callback bodies.

Each row of fixtures/viber/cases.json names a raw body and either the events it parses to
(the full draft minus `channel`, plus the event's dedupe key) or the PayloadError it raises.
The `webhook` check parses to no event; its row names the dedupe key ingress stores it under.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.base import InboundRequest
from adapters.viber import SIGNATURE_HEADER, ViberAdapter, ViberConfig, signature
from tests.tables import check_admission, check_parse

FIXTURES = Path(__file__).parent / "fixtures" / "viber"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text())
PARSED = [c for c in CASES if "events" in c]
AUTH_TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
BIG_TOKEN = 5741311803571721087  # above 2**53: a float would change its last digits


def make_adapter(token: str = AUTH_TOKEN) -> ViberAdapter:
    return ViberAdapter(
        ViberConfig(id="vb-main", type="viber", auth_token=token, sender_name="Lucky Shrub")
    )


def body(case: dict[str, Any]) -> bytes:
    path: Path = FIXTURES / str(case["file"])
    return path.read_bytes()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse(case: dict[str, Any]) -> None:
    check_parse(make_adapter(), body(case), case)


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_dedupe_key_is_event_and_token_and_agrees_with_parse(case: dict[str, Any]) -> None:
    raw = body(case)
    key = make_adapter().dedupe_key(raw)
    reserialised = json.dumps(json.loads(raw), indent=1).encode()  # same event, other bytes
    assert key == make_adapter().dedupe_key(reserialised)
    payload = json.loads(raw)
    assert key == f"{payload['event']}:{payload['message_token']}"
    expected = [e["dedupe_key"] for e in case["events"]] or [case["dedupe_key"]]
    assert [key] == expected


def test_dedupe_keys_differ_between_callbacks() -> None:
    keys = [make_adapter().dedupe_key(body(c)) for c in PARSED]
    assert len(set(keys)) == len(keys)


def test_delivered_and_seen_of_one_message_are_different_events() -> None:
    delivered = make_adapter().dedupe_key((FIXTURES / "delivered.json").read_bytes())
    seen = make_adapter().dedupe_key((FIXTURES / "seen.json").read_bytes())
    assert delivered == f"delivered:{BIG_TOKEN}" and seen == f"seen:{BIG_TOKEN}"


def test_a_token_above_2_to_the_53_keeps_every_digit() -> None:
    raw = (FIXTURES / "text.json").read_bytes()
    assert str(BIG_TOKEN).encode() in raw  # the fixture holds the bare JSON number
    assert BIG_TOKEN > 2**53 and float(BIG_TOKEN) != BIG_TOKEN
    assert str(json.loads(raw)["message_token"]) == str(BIG_TOKEN)
    [event] = make_adapter().parse(raw)
    assert event.draft.external_id == "5741311803571721087"
    assert event.dedupe_key == "message:5741311803571721087"
    # One more than the fixture: neighbours that one float would collapse stay apart.
    neighbour = raw.replace(b"5741311803571721087", b"5741311803571721088")
    [other] = make_adapter().parse(neighbour)
    assert other.draft.external_id == "5741311803571721088"


def test_a_token_sent_as_a_digit_string_is_kept_as_is() -> None:
    payload = json.loads((FIXTURES / "seen.json").read_bytes())
    payload["message_token"] = "5741311803571721087"
    [event] = make_adapter().parse(json.dumps(payload).encode())
    assert event.draft.status is not None
    assert event.draft.status.external_id == "5741311803571721087"


def test_conversation_started_leaves_the_subscription_alone() -> None:
    # A user who opened the chat may not be subscribed: never a `subscription` event.
    for subscribed in (False, True):
        payload = json.loads((FIXTURES / "conversation_started.json").read_bytes())
        payload["subscribed"] = subscribed
        [event] = make_adapter().parse(json.dumps(payload).encode())
        assert event.draft.type == "system" and event.draft.subscription is None
        assert event.draft.channel_data is not None
        assert event.draft.channel_data["subscribed"] is subscribed


def test_timestamps_are_milliseconds() -> None:
    [event] = make_adapter().parse((FIXTURES / "text.json").read_bytes())
    assert event.draft.timestamp.isoformat() == "2016-03-12T06:29:57.627000+00:00"


def request(raw: bytes, headers: dict[str, str]) -> InboundRequest:
    return InboundRequest("POST", "https://gw.example/webhooks/vb-main", headers, raw)


RAW = (FIXTURES / "text.json").read_bytes()
SIGNATURES = {
    "valid": ({SIGNATURE_HEADER: signature(AUTH_TOKEN, RAW)}, True),
    "valid_uppercase_hex": ({SIGNATURE_HEADER: signature(AUTH_TOKEN, RAW).upper()}, True),
    "forged": ({SIGNATURE_HEADER: signature("another-bots-token", RAW)}, False),
    "missing": ({}, False),
    "empty": ({SIGNATURE_HEADER: ""}, False),
    "with_sha256_prefix": ({SIGNATURE_HEADER: "sha256=" + signature(AUTH_TOKEN, RAW)}, False),
    "over_reserialised_json": (
        {SIGNATURE_HEADER: signature(AUTH_TOKEN, json.dumps(json.loads(RAW)).encode())},
        False,
    ),
}


@pytest.mark.parametrize(("headers", "valid"), SIGNATURES.values(), ids=SIGNATURES.keys())
def test_verify(headers: dict[str, str], valid: bool) -> None:
    assert make_adapter().verify(request(RAW, headers)) is valid


def test_signature_is_lowercase_hex_hmac_sha256_of_the_raw_body() -> None:
    # Known answer (HMAC-SHA256, key "secret"), fixed here so a change of algorithm shows.
    expected = "a4953372505b2d3be2257183412b8e1794faa282f4461c726ee818786398deec"
    assert signature("secret", b'{"event":"webhook"}') == expected


SENDER_NAMES = {
    "28 characters": ("x" * 28, True),
    "29 characters": ("x" * 29, False),
    "empty": ("", False),
}


@pytest.mark.parametrize(("name", "ok"), SENDER_NAMES.values(), ids=SENDER_NAMES.keys())
def test_sender_name_is_at_most_28_characters(name: str, ok: bool) -> None:
    config = {"id": "vb", "type": "viber", "auth_token": "t", "sender_name": name}
    if ok:
        assert ViberConfig.model_validate(config).sender_name == name
    else:
        with pytest.raises(ValidationError, match="sender_name"):
            ViberConfig.model_validate(config)


def test_config_defaults() -> None:
    config = ViberConfig.model_validate(
        {"id": "vb", "type": "viber", "auth_token": "t", "sender_name": "Shop"}
    )
    assert config.api_base_url == "https://chatapi.viber.com/pa"
    assert config.min_api_version == 1 and config.sender_avatar is None
    assert 0 < config.rate_limit_per_second <= 50
    with pytest.raises(ValidationError, match="sender_avatar"):
        ViberConfig.model_validate(
            {
                "id": "vb",
                "type": "viber",
                "auth_token": "t",
                "sender_name": "S",
                "sender_avatar": "x",
            }
        )


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_admission_reads_the_key_and_the_newest_event_time(case: dict[str, Any]) -> None:
    check_admission(make_adapter(), body(case), case)
