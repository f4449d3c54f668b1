"""Golden rendering on Viber: every message in fixtures/messages, engine + adapter, exactly as
fixtures/viber/golden.json records it (reviewed against Viber's send-message and keyboards
pages; see adapters/viber/render.py for the sources of each limit)."""

from __future__ import annotations

import pytest

from adapters.viber import ViberAdapter, ViberConfig

from .golden import MESSAGES, check_golden, golden_cases

TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"


def adapter() -> ViberAdapter:
    config = {"id": "vb-main", "type": "viber", "auth_token": TOKEN, "sender_name": "Lucky Shrub"}
    return ViberAdapter(ViberConfig.model_validate(config))


def test_every_message_has_a_golden_case() -> None:
    assert set(golden_cases("viber")) == set(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_golden(name: str) -> None:
    check_golden(adapter(), name)
