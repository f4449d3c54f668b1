"""WhatsApp Cloud API outbound side: golden send bodies and send-response classification.

fixtures/whatsapp/render_cases.json holds, per content, the exact JSON bodies POSTed to
`/<phone number id>/messages`, and per provider answer the id returned or the SendError raised.
In that table `{"$repeat": [text, n]}` stands for `text * n`, to keep long bodies readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.base import SendContext, SendError
from adapters.whatsapp import WhatsAppAdapter, WhatsAppConfig
from gateway.schema import CONTENT_ADAPTER
from tests.tables import check_send_response, load_table

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"


TABLE: dict[str, Any] = load_table(FIXTURES / "render_cases.json")
RENDER, RESPONSES = TABLE["render"], TABLE["responses"]


# Inside the customer service window: the customer wrote a minute ago.
OPEN = SendContext("msg_1", TABLE["to"], now=1_700_000_060.0, last_inbound_at=1_700_000_000.0)


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


@pytest.mark.parametrize("case", RENDER, ids=[c["name"] for c in RENDER])
def test_render(case: dict[str, Any]) -> None:
    content = CONTENT_ADAPTER.validate_python(case["content"])
    requests = make_adapter().render(content, OPEN)
    assert [(r.method, r.path) for r in requests] == [("POST", TABLE["path"])] * len(requests)
    assert [r.json for r in requests] == case["bodies"]


def test_long_text_chunks_fit_and_lose_nothing() -> None:
    case = next(c for c in RENDER if c["name"] == "text_over_4096_split_between_words")
    chunks = [body["text"]["body"] for body in case["bodies"]]
    assert len(chunks) > 1
    assert all(len(chunk) <= 4096 for chunk in chunks)
    assert "".join(chunks) == case["content"]["text"]


@pytest.mark.parametrize("case", RESPONSES, ids=[c["name"] for c in RESPONSES])
def test_read_send_response(case: dict[str, Any]) -> None:
    check_send_response(make_adapter(), case)


@pytest.mark.parametrize(
    ("recipient_id", "address"),
    [
        ("16505551234", {"to": "16505551234"}),
        # Business-scoped user ids go in `recipient`: BSUID docs, "Messages API".
        ("US.13491208655302741918", {"recipient": "US.13491208655302741918"}),
        ("US.ENT.11815799212886844830", {"recipient": "US.ENT.11815799212886844830"}),
        ("BR.1502576394655843", {"recipient": "BR.1502576394655843"}),
        # Not a BSUID (lower-case country, a hyphen): left in `to` for Meta to judge.
        ("us.13491208655302741918", {"to": "us.13491208655302741918"}),
        ("US.1349-1208", {"to": "US.1349-1208"}),
        ("+16505551234", {"to": "+16505551234"}),
        # A group id goes in `to` with recipient_type group: Group messaging, "Send group
        # message" (developers.facebook.com/documentation/business-messaging/whatsapp/groups/groups-messaging/).
        (
            "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
            {
                "recipient_type": "group",
                "to": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
            },
        ),
    ],
)
def test_a_business_scoped_user_id_is_addressed_as_recipient(
    recipient_id: str, address: dict[str, str]
) -> None:
    context = SendContext(
        "msg_1", recipient_id, now=1_700_000_060.0, last_inbound_at=1_700_000_000.0
    )
    text = CONTENT_ADAPTER.validate_python({"type": "text", "text": "hi"})
    [request] = make_adapter().render(text, context)
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",  # unless the address sets it
        **address,
        "type": "text",
        "text": {"preview_url": False, "body": "hi"},
    }


def test_free_form_outside_the_window_is_refused_but_a_template_goes() -> None:
    closed = SendContext("msg_1", TABLE["to"], now=1_700_100_000.0, last_inbound_at=1_700_000_000.0)
    text = CONTENT_ADAPTER.validate_python({"type": "text", "text": "hi"})
    with pytest.raises(SendError, match="within 24 hours") as refused:
        make_adapter().render(text, closed)
    assert refused.value.code == "window_closed" and not refused.value.retryable
    template = CONTENT_ADAPTER.validate_python(
        {"type": "template", "template": {"name": "order_update", "language": "en_US"}}
    )
    [request] = make_adapter().render(template, closed)
    assert request.json is not None
    assert request.json["template"] == {"name": "order_update", "language": {"code": "en_US"}}
