"""Every content type on SMS/MMS: the exact Twilio requests, downgrades and numbered choices."""

from __future__ import annotations

import pytest

from tests.golden import MESSAGES, check_golden

from .test_sms_render import make_adapter


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_golden(name: str) -> None:
    check_golden(make_adapter(), name)


def test_a_number_without_mms_sends_links() -> None:
    from adapters.base import CapabilityOverrides

    adapter = make_adapter(capabilities=CapabilityOverrides(media=[]))
    from tests.golden import render_all

    rendered = render_all(adapter, MESSAGES["carousel"])
    [request] = rendered["requests"]
    assert "MediaUrl" not in request["form"]
    assert "https://cdn.example.com/funghi.jpg" in request["form"]["Body"]
