"""Twilio SMS/MMS outbound side: golden send forms, segment notes and error classification.

fixtures/sms/render_cases.json holds, per content, the exact forms given to Messages create
(with the history note of each), and per REST answer the sid returned or the SendError raised.
`{"$repeat": [text, n]}` stands for `text * n`, to keep long bodies readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.base import SendContext, SendError
from adapters.sms import MAX_BODY, SmsAdapter, SmsConfig, error_category
from adapters.sms.segments import segments
from gateway.schema import CONTENT_ADAPTER
from tests.tables import check_send_response, load_table

FIXTURES = Path(__file__).parent / "fixtures" / "sms"


TABLE: dict[str, Any] = load_table(FIXTURES / "render_cases.json")
RENDER, RESPONSES = TABLE["render"], TABLE["responses"]
SERVICE = "MG9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"


def make_adapter(**overrides: Any) -> SmsAdapter:
    settings: dict[str, Any] = {
        "id": "sms-main",
        "type": "sms",
        "account_sid": "AC3f1b5d7e9a2c4e6f8b0d2f4a6c8e0b1d",
        "auth_token": "0123456789abcdef0123456789abcdef",
        "from_number": "+14155550199",
    }
    return SmsAdapter(SmsConfig(**(settings | overrides)))


def context(callback: str | None = TABLE["status_callback_url"]) -> SendContext:
    return SendContext("msg_1", TABLE["to"], 0.0, status_callback_url=callback)


def content_of(name: str) -> Any:
    case = next(c for c in RENDER if c["name"] == name)
    return CONTENT_ADAPTER.validate_python(case["content"])


@pytest.mark.parametrize("case", RENDER, ids=[c["name"] for c in RENDER])
def test_render(case: dict[str, Any]) -> None:
    requests = make_adapter().render(CONTENT_ADAPTER.validate_python(case["content"]), context())
    assert [(r.method, r.path) for r in requests] == [("POST", TABLE["path"])] * len(requests)
    assert [{"form": r.form, "note": r.note} for r in requests] == case["requests"]


@pytest.mark.parametrize("case", RENDER, ids=[c["name"] for c in RENDER])
def test_every_body_fits_and_its_note_counts_its_segments(case: dict[str, Any]) -> None:
    for request in case["requests"]:
        body = request["form"].get("Body", "")
        assert len(body.encode("utf-16-le")) // 2 <= MAX_BODY
        if "MediaUrl" not in request["form"]:
            assert request["note"] == segments(body).describe()


def test_long_text_is_split_between_words_and_loses_nothing() -> None:
    case = next(c for c in RENDER if c["name"] == "text_over_1600_split_between_words")
    bodies = [r["form"]["Body"] for r in case["requests"]]
    assert len(bodies) == 2 and "".join(bodies) == case["content"]["text"]
    assert all(b.endswith(" ") for b in bodies)


def test_messaging_service_replaces_from_and_no_callback_without_public_url() -> None:
    adapter = make_adapter(from_number=None, messaging_service_sid=SERVICE)
    [request] = adapter.render(content_of("text_gsm_one_segment"), context(None))
    assert request.form is not None
    assert set(request.form) == {"To", "MessagingServiceSid", "Body"}
    assert request.form["MessagingServiceSid"] == SERVICE


def test_media_without_a_public_url_is_refused_not_dropped() -> None:
    content = CONTENT_ADAPTER.validate_python(
        {"type": "image", "media": {"provider_media_id": "1003383421387256"}}
    )
    with pytest.raises(SendError) as caught:
        make_adapter().render(content, context())
    assert (caught.value.category, caught.value.code) == ("permanent", "media_url_required")


def test_media_over_5_mb_is_refused() -> None:
    content = CONTENT_ADAPTER.validate_python(
        {"type": "video", "media": {"url": "https://x.example/v.mp4", "size": 6 * 1024 * 1024}}
    )
    with pytest.raises(SendError, match="media_too_large"):
        make_adapter().render(content, context())


@pytest.mark.parametrize("case", RESPONSES, ids=[c["name"] for c in RESPONSES])
def test_read_send_response(case: dict[str, Any]) -> None:
    check_send_response(make_adapter(), case)


CLASSES = {
    # Retry later: concurrency, Twilio-side trouble, handsets that may come back.
    20429: "retry",
    20500: "retry",
    30001: "retry",
    30003: "retry",
    30008: "retry",
    # The recipient cannot be reached at this number.
    21610: "unreachable",
    21211: "unreachable",
    21612: "unreachable",
    21614: "unreachable",
    30005: "unreachable",
    30006: "unreachable",
    # Fix the account, the sender or the content first.
    20003: "permanent",
    21408: "permanent",
    30002: "permanent",
    30007: "permanent",
    30034: "permanent",
}


@pytest.mark.parametrize(("code", "category"), CLASSES.items(), ids=[str(c) for c in CLASSES])
def test_error_classes(code: int, category: str) -> None:
    assert error_category(code) == category
