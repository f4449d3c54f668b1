"""Messenger outbound side: golden Send API bodies, the 24-hour window, error classification.

fixtures/messenger/render_cases.json holds, per content, the exact JSON bodies POSTed to
`/me/messages`; per window case, the `messaging_type`/`tag` chosen or the refusal; and per
provider answer, the id returned or the SendError raised. `{"$repeat": [text, n]}` stands for
`text * n`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.base import SendContext, SendError
from adapters.messenger import MAX_TEXT, MessengerAdapter, MessengerConfig
from gateway.schema import CONTENT_ADAPTER
from gateway.schema.content import TextContent
from tests.tables import check_send_response, load_table

FIXTURES = Path(__file__).parent / "fixtures" / "messenger"
PAGE_TOKEN = "fb-page-token-abcdef"


TABLE: dict[str, Any] = load_table(FIXTURES / "render_cases.json")
RENDER, WINDOWS, RESPONSES = TABLE["render"], TABLE["windows"], TABLE["responses"]
NOW: float = TABLE["now"]


def make_adapter() -> MessengerAdapter:
    return MessengerAdapter(
        MessengerConfig(
            id="fb-main",
            type="messenger",
            page_id="107331552213590",
            page_access_token=PAGE_TOKEN,
            app_secret="fb-test-app-secret-123",
            verify_token="fb-verify-me-please",
        )
    )


def context(age: float | None = 60.0, tag: str | None = None) -> SendContext:
    last = NOW - age if age is not None else None
    return SendContext("msg_1", TABLE["to"], NOW, last_inbound_at=last, messaging_tag=tag)


@pytest.mark.parametrize("case", RENDER, ids=[c["name"] for c in RENDER])
def test_render(case: dict[str, Any]) -> None:
    content = CONTENT_ADAPTER.validate_python(case["content"])
    requests = make_adapter().render(content, context())
    assert [(r.method, r.path) for r in requests] == [("POST", TABLE["path"])] * len(requests)
    assert [r.json for r in requests] == case["bodies"]
    assert all(PAGE_TOKEN not in r.path for r in requests)  # the token travels in a header


def test_long_text_chunks_fit_and_lose_nothing() -> None:
    case = next(c for c in RENDER if c["name"] == "text_over_2000_split_between_words")
    chunks = [body["message"]["text"] for body in case["bodies"]]
    assert len(chunks) > 1
    assert all(len(chunk) <= MAX_TEXT for chunk in chunks)
    assert "".join(chunks) == case["content"]["text"]


@pytest.mark.parametrize("case", WINDOWS, ids=[c["name"] for c in WINDOWS])
def test_messaging_window(case: dict[str, Any]) -> None:
    adapter = make_adapter()
    content = TextContent(text="Your order has shipped.")
    if "fields" in case:
        [request] = adapter.render(content, context(case["age"], case["tag"]))
        assert request.json is not None
        fields = {k: v for k, v in request.json.items() if k in ("messaging_type", "tag")}
        assert fields == case["fields"]
        return
    with pytest.raises(SendError) as caught:
        adapter.render(content, context(case["age"], case["tag"]))
    error = caught.value
    assert {"category": error.category, "code": error.code} == case["error"]
    assert not error.retryable


def test_window_refusal_explains_the_rule_and_the_way_out() -> None:
    with pytest.raises(SendError) as caught:
        make_adapter().render(TextContent(text="hi"), context(age=30 * 3600))
    title = caught.value.title
    assert "24-hour" in title and "messaging_tag" in title and "HUMAN_AGENT" in title
    assert "30 hours ago" in title


def test_auth_header_carries_the_page_token() -> None:
    adapter = make_adapter()
    assert adapter.auth_headers() == {"Authorization": f"Bearer {PAGE_TOKEN}"}
    assert PAGE_TOKEN in adapter.secrets()


@pytest.mark.parametrize("case", RESPONSES, ids=[c["name"] for c in RESPONSES])
def test_read_send_response(case: dict[str, Any]) -> None:
    # A block is not an opt-out the gateway should remember.
    check_send_response(make_adapter(), case)
