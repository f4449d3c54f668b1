"""WeChat golden rendering: every message in fixtures/messages/ -> the exact custom-send bodies.

fixtures/wechat/golden.json was reviewed against WeChat's customer-service message page (text,
image, news with one article, msgmenu: head_content, list of {id, content}, tail_content) and
the template message page (template_id, data).
"""

from __future__ import annotations

import pytest

from tests.golden import MESSAGES, check_golden, golden_cases
from tests.wechat_support import make_adapter


def test_every_message_has_a_golden_case() -> None:
    assert set(golden_cases("wechat")) == set(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_golden(name: str) -> None:
    check_golden(make_adapter(), name)
