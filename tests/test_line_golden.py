"""LINE golden rendering: every message in fixtures/messages/ → the exact push bodies.

fixtures/line/golden.json was reviewed against LINE's Messaging API reference: the buttons and
carousel templates (#buttons, #carousel, #template-messages: altText), the postback action
(#postback-action: `data`, `displayText`), the URI action for links and `tel:` calls
(#uri-action), quick replies (#quick-reply) and the location action (#location-action), and
the five message objects per push (#send-push-message).
"""

from __future__ import annotations

import pytest

from adapters.line import LineAdapter, LineConfig
from tests.golden import MESSAGES, check_golden, golden_cases


def make_adapter() -> LineAdapter:
    return LineAdapter(
        LineConfig(
            id="line",
            type="line",
            channel_secret="8c570fa6dd201bb328f1c1eac23a96d8",
            channel_access_token="line-golden-token",
        )
    )


def test_every_message_has_a_golden_case() -> None:
    assert set(golden_cases("line")) == set(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_golden(name: str) -> None:
    check_golden(make_adapter(), name)
