"""Messenger golden rendering: every message in fixtures/messages/ → the exact Send API bodies.

fixtures/messenger/golden.json was reviewed against Meta's docs: the button template and the
generic template (template/button, template/generic), postback, URL and call buttons
(reference/buttons/*) and text quick replies (send-messages/quick-replies).
"""

from __future__ import annotations

import pytest

from adapters.messenger import MessengerAdapter, MessengerConfig
from tests.golden import MESSAGES, check_golden, golden_cases


def make_adapter() -> MessengerAdapter:
    return MessengerAdapter(
        MessengerConfig(
            id="fb-golden",
            type="messenger",
            page_id="107331552213590",
            page_access_token="fb-page-token-golden",
            app_secret="fb-app-secret-golden",
            verify_token="fb-verify-golden",
        )
    )


def test_every_message_has_a_golden_case() -> None:
    assert set(golden_cases("messenger")) == set(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_golden(name: str) -> None:
    check_golden(make_adapter(), name)
