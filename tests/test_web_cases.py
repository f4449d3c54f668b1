"""The web channel's adapter, table-driven: what the gateway stores from a verified socket
(fixtures/web/cases.json, in the frames of docs/web-channel.md) parses to the same events as
every channel; every shared message goes out natively, nothing downgraded; tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.web import WebAdapter, WebConfig
from adapters.web.frames import read_frame
from adapters.web.tokens import TokenError, mint, verify
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER
from tests.golden import CONTEXT, MESSAGES
from tests.tables import check_admission, check_parse

FIXTURES = Path(__file__).parent / "fixtures" / "web"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text())
PARSED = [c for c in CASES if "events" in c]
SECRET = b"s" * 32
ADAPTER = WebAdapter(WebConfig(id="web", type="web", token_secret="t" * 32))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse(case: dict[str, Any]) -> None:
    check_parse(ADAPTER, (FIXTURES / case["file"]).read_bytes(), case)


@pytest.mark.parametrize("case", PARSED, ids=[c["name"] for c in PARSED])
def test_admission_reads_the_key_and_the_time(case: dict[str, Any]) -> None:
    check_admission(ADAPTER, (FIXTURES / case["file"]).read_bytes(), case)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_shared_message_goes_natively_as_one_frame(name: str) -> None:
    content = CONTENT_ADAPTER.validate_python(MESSAGES[name])
    if content.type == "template":
        pytest.skip("a provider template has no meaning on the web channel")
    planned = plan(content, ADAPTER.profile)
    assert planned.downgrades == []
    [request] = ADAPTER.render_parts(planned.parts, CONTEXT)
    assert request.json is not None
    assert request.json["user"] == CONTEXT.recipient_id
    assert request.json["message_id"] == CONTEXT.message_id and request.json["part"] == 0
    assert request.json["content"] == content.model_dump(mode="json", exclude_none=True)


def test_a_token_opens_only_its_channel_until_it_expires() -> None:
    token = mint(SECRET, "web", "u_123", expires_at=2000)
    claims = verify(SECRET, "web", token, now=1999)
    assert (claims.channel_id, claims.user_id, claims.expires_at) == ("web", "u_123", 2000)
    with pytest.raises(TokenError) as expired:
        verify(SECRET, "web", token, now=2000)
    assert expired.value.expired
    with pytest.raises(TokenError, match="not issued for this channel"):
        verify(SECRET, "web-2", token, now=1000)


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "no-dot",
        "x" * 3000,
        "eyJjIjoid2ViIn0.AAAA",
        "ü.ü",
        # A valid token's payload with another user swapped in, the signature kept.
        "eyJjIjoid2ViIiwidSI6InVfYWRtaW4iLCJleHAiOjIwMDB9."
        + mint(SECRET, "web", "u", 2000).split(".")[1],
    ],
)
def test_a_forged_or_malformed_token_is_refused_not_expired(forged: str) -> None:
    with pytest.raises(TokenError) as refused:
        verify(SECRET, "web", forged, now=1000)
    assert not refused.value.expired
    assert forged not in str(refused.value) or not forged


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ('{"type": "shout"}', "type"),
        (
            '{"type": "message", "id": "a b", "content": {"type": "text", "text": "x"}}',
            "message.id",
        ),
        ('{"type": "ack", "event_id": 0}', "ack.event_id"),
        ('{"type": "typing", "state": "maybe"}', "typing.state"),
        ("[1, 2]", "frame"),
        ("not json", "frame"),
    ],
)
def test_a_bad_frame_is_refused_naming_its_field(frame: str, field: str) -> None:
    with pytest.raises(ValueError) as refused:
        read_frame(frame)
    assert str(refused.value).startswith(f"{field}:"), str(refused.value)
