"""Property: any valid message, planned with WhatsApp's real profile and rendered by its adapter,
gives Cloud API bodies within Meta's limits (checked on the rendered JSON), and every choice the
sender offered is reachable: a button or row id in a body, or a numbered answer."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from adapters.base import SendContext
from adapters.whatsapp import render as rich
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER
from gateway.simulator.whatsapp import validate

from .test_downgrade_properties import carousels, messages, offered, reachable
from .test_whatsapp_golden import make_adapter

ADAPTER = make_adapter()
CONTEXT = SendContext("msg_prop", "16505551234", now=1_700_000_060.0, last_inbound_at=1.7e9)


def check_body(body: dict[str, Any]) -> set[str]:
    """Assert one send body respects Meta's limits; the payloads (ids) it carries."""
    assert body["messaging_product"] == "whatsapp" and body["to"] == "16505551234"
    kind = body["type"]
    if kind == "text":
        assert 1 <= len(body["text"]["body"]) <= 4096
        return set()
    if kind != "interactive":
        assert kind in ("image", "video", "audio", "document", "sticker")
        return set()
    item = body["interactive"]
    for part, limit in (("footer", rich.FOOTER_MAX), ("header", rich.HEADER_MAX)):
        if part in item and item[part].get("type", "text") == "text":
            assert 1 <= len(item[part]["text"]) <= limit
    if item["type"] == "button":
        assert 1 <= len(item["body"]["text"]) <= rich.BUTTON_BODY_MAX
        replies = [b["reply"] for b in item["action"]["buttons"]]
        assert 1 <= len(replies) <= rich.BUTTONS_MAX
        titles, ids = [r["title"] for r in replies], [r["id"] for r in replies]
        assert all(1 <= len(t) <= rich.BUTTON_TITLE_MAX for t in titles)
        assert all(1 <= len(i) <= rich.BUTTON_ID_MAX for i in ids)
        assert len(set(titles)) == len(titles) and len(set(ids)) == len(ids)
        return set(ids)
    if item["type"] == "list":
        assert 1 <= len(item["body"]["text"]) <= rich.LIST_BODY_MAX
        assert 1 <= len(item["action"]["button"]) <= rich.LIST_BUTTON_MAX
        sections = item["action"]["sections"]
        assert 1 <= len(sections) <= rich.LIST_SECTIONS_MAX
        assert all(1 <= len(s["title"]) <= rich.SECTION_TITLE_MAX for s in sections)
        rows = [r for s in sections for r in s["rows"]]
        assert 1 <= len(rows) <= rich.LIST_ROWS_MAX
        assert all(1 <= len(r["title"]) <= rich.ROW_TITLE_MAX for r in rows)
        assert all(len(r.get("description", "")) <= rich.ROW_DESCRIPTION_MAX for r in rows)
        assert all(1 <= len(r["id"]) <= rich.ROW_ID_MAX for r in rows)
        assert len({r["id"] for r in rows}) == len(rows)
        return {r["id"] for r in rows}
    if item["type"] == "carousel":
        assert 1 <= len(item["body"]["text"]) <= rich.CAROUSEL_BODY_MAX
        cards = item["action"]["cards"]
        assert rich.CAROUSEL_CARDS_MIN <= len(cards) <= rich.CAROUSEL_CARDS_MAX
        ids: set[str] = set()
        for card in cards:
            text = card["body"]["text"]
            assert 1 <= len(text) <= rich.CARD_BODY_MAX
            assert text.count("\n") <= rich.CARD_LINE_BREAKS_MAX
            if card.get("type") == "cta_url":
                assert 1 <= len(card["action"]["parameters"]["display_text"]) <= 20
                continue
            replies = [b["quick_reply"] for b in card["action"]["buttons"]]
            assert 1 <= len(replies) <= rich.CARD_BUTTONS_MAX
            assert all(1 <= len(r["title"]) <= rich.BUTTON_TITLE_MAX for r in replies)
            assert all(1 <= len(r["id"]) <= rich.BUTTON_ID_MAX for r in replies)
            ids |= {r["id"] for r in replies}
        return ids
    assert item["type"] == "location_request_message"
    assert 1 <= len(item["body"]["text"]) <= rich.LOCATION_BODY_MAX
    return set()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages() | carousels())
def test_rendered_bodies_respect_metas_limits_and_keep_every_choice(
    message: dict[str, Any],
) -> None:
    planned = plan(CONTENT_ADAPTER.validate_python(message), ADAPTER.profile)
    requests = ADAPTER.render_parts(planned.parts, CONTEXT)
    native: set[str] = set()
    for request in requests:
        assert request.method == "POST" and request.path == "/106540352242922/messages"
        assert request.json is not None  # one message per request
        native |= check_body(request.json)
        validate(request.json)  # and the simulator, which checks like Meta, accepts it
    numbered = {c.payload for c in planned.choices}
    assert offered(message) <= native | numbered
    assert offered(message) <= reachable(planned)
