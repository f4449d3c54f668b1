"""Recipient ids are checked against the channel's documented form before a message is
queued (each adapter's `address`): one the provider would refuse is a 422 naming `to.id`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import API_KEY, base_config, config_from
from .test_line_e2e import LINE_A
from .test_messenger_e2e import FB
from .test_sms_e2e import sms_channel
from .viber_support import viber_channel

AUTH = {"Authorization": f"Bearer {API_KEY}"}
UNUSED = "http://127.0.0.1:9"  # nothing is sent: these messages stay queued


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    data = base_config(tmp_path)
    data["channels"] += [
        {"id": "fb-main", "type": "messenger", "api_base_url": UNUSED, **FB},
        sms_channel("sms-main", UNUSED),
        {"id": "line-main", "type": "line", "api_base_url": UNUSED, **LINE_A},
        viber_channel(base_url=UNUSED),
    ]
    return await start_gateway(config_from(data))


@pytest.mark.parametrize(
    ("channel", "recipient", "accepted"),
    [
        ("sms-main", "+14155550100", True),
        ("sms-main", "+447700900123", True),
        ("sms-main", "hello", False),  # accepted with 202 before, refused by Twilio (21211)
        ("sms-main", "14155550100", False),  # Twilio wants the + of E.164
        ("sms-main", "+0123456789", False),  # no country code starts with 0
        ("sms-main", "+1415555010012345", False),  # 16 digits: longer than E.164 allows
        ("wa-main", "16505551234", True),
        ("wa-main", "+16505551234", True),
        ("wa-main", "US.ENT.11815799212886844830", True),  # business-scoped ids (§1.5)
        ("wa-main", "BR.1502576394655843", True),
        ("wa-main", "hello", False),
        ("wa-main", "1650-555-1234", False),
        ("wa-main", "us.1502576394655843", False),
        ("fb-main", "6291474124214458", True),
        ("fb-main", "+16505551234", False),
        ("fb-main", "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", False),
        ("line-main", "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", True),
        ("line-main", "Ca56f94637cc4b5f8d9e0f1a2b3c4d5e6", True),  # a group
        ("line-main", "R0123456789abcdef0123456789abcdef", True),  # a multi-person chat
        ("line-main", "U4AF4980629A0B1C2D3E4F5A6B7C8D9E0", False),  # LINE ids are lowercase hex
        ("line-main", "U4af4980629a0b1c2d3e4f5a6b7c8d9e", False),  # 31 digits
        ("line-main", "6291474124214458", False),
        ("vb-main", "01234567890A=", True),
        ("vb-main", "d3jxe61Z4W73nmNkjYGgZg==", True),
        ("vb-main", "not a viber id", False),
    ],
)
async def test_a_recipient_in_the_channels_form_is_queued_another_is_422(
    gw: Any, channel: str, recipient: str, accepted: bool
) -> None:
    body = {"to": {"channel": channel, "id": recipient}, "content": {"type": "text", "text": "x"}}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/v1/messages", json=body, headers=AUTH)
    if accepted:
        assert response.status_code == 202, response.text
        return
    assert response.status_code == 422
    [problem] = response.json()["problems"]
    assert problem["field"] == "to.id" and problem["message"].startswith("expected ")
