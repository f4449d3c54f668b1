"""Golden rendering on WhatsApp: every message in fixtures/messages through the engine and the
adapter, against the exact Cloud API send bodies in fixtures/whatsapp/golden.json.

Each body was checked against Meta's pages: reply buttons, list, location request, text, media,
location, contacts and template messages (links in adapters/whatsapp/__init__.py and render.py).
"""

from __future__ import annotations

import pytest

from adapters.whatsapp import WhatsAppAdapter, WhatsAppConfig
from gateway.simulator.whatsapp import validate
from tests.golden import MESSAGES, check_golden, golden_cases


def make_adapter() -> WhatsAppAdapter:
    return WhatsAppAdapter(
        WhatsAppConfig(
            id="wa-main",
            type="whatsapp",
            phone_number_id="106540352242922",
            access_token="test-token-abcdef",
            app_secret="test-app-secret-123",
            verify_token="verify-me-please",
        )
    )


def test_every_message_has_a_golden_case() -> None:
    assert sorted(golden_cases("whatsapp")) == sorted(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_golden(name: str) -> None:
    check_golden(make_adapter(), name)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_golden_bodies_pass_the_simulators_checks(name: str) -> None:
    for request in golden_cases("whatsapp")[name].get("requests", []):
        validate(request["json"])
