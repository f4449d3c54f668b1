"""Viber outbound side: golden send_message bodies, send-response classification, set_webhook.

fixtures/viber/render_cases.json holds, per content, the exact JSON bodies POSTed to
`/send_message`, and per provider answer the token returned or the SendError raised.
In that table `{"$repeat": [text, n]}` stands for `text * n`, to keep long bodies readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.base import ProviderRequest, SendContext, SendError
from adapters.viber import AUTH_HEADER, MAX_CAPTION, MAX_TEXT, ViberAdapter, ViberConfig
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER
from tests.tables import check_send_response, load_table, raw

parse = CONTENT_ADAPTER.validate_python

FIXTURES = Path(__file__).parent / "fixtures" / "viber"
TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"


TABLE: dict[str, Any] = load_table(FIXTURES / "render_cases.json")
RENDER, RESPONSES = TABLE["render"], TABLE["responses"]


def make_adapter(**extra: Any) -> ViberAdapter:
    config = {"id": "vb-main", "type": "viber", "auth_token": TOKEN, "sender_name": "Lucky Shrub"}
    return ViberAdapter(ViberConfig.model_validate(config | extra))


def requests_for(content: Any, adapter: ViberAdapter | None = None) -> list[ProviderRequest]:
    parsed = CONTENT_ADAPTER.validate_python(content) if isinstance(content, dict) else content
    requests = (adapter or make_adapter()).render(parsed, SendContext("msg_1", TABLE["to"], 0.0))
    assert [(r.method, r.path) for r in requests] == [("POST", TABLE["path"])] * len(requests)
    return requests


def render(content: Any, adapter: ViberAdapter | None = None) -> list[Any]:
    return [r.json for r in requests_for(content, adapter)]


@pytest.mark.parametrize("case", RENDER, ids=[c["name"] for c in RENDER])
def test_render(case: dict[str, Any]) -> None:
    requests = requests_for(case["content"])
    assert [r.json for r in requests] == case["bodies"]
    # A media fallback says why in the message history; nothing else carries a note.
    assert [r.note for r in requests] == [case.get("note")] + [None] * (len(requests) - 1)


def test_the_downgrade_engine_and_render_agree_on_limits() -> None:
    adapter = make_adapter()
    assert adapter.profile.text_max == MAX_TEXT and adapter.profile.caption_max == MAX_CAPTION
    assert adapter.profile.media == {"image", "video", "audio", "file", "sticker"}
    buttons = {
        "type": "buttons",
        "text": "Pick a pot",
        "actions": [{"type": "reply", "title": "Clay", "payload": "clay"}],
    }
    long_caption = {
        "type": "image",
        "media": {"url": "https://cdn.example.com/a.jpg"},
        "caption": "word " * 120,
    }
    planned = [p for c in (buttons, long_caption) for p in plan(parse(c), adapter.profile).parts]
    bodies = [body for part in planned for body in render(part, adapter)]
    assert [b["type"] for b in bodies] == ["text", "picture", "text"]
    assert bodies[0]["text"] == "Pick a pot" and bodies[1]["text"] == ""
    action_body = bodies[0]["keyboard"]["Buttons"][0]["ActionBody"]
    assert action_body.startswith("gw:postback:") and action_body.endswith(":clay")
    assert bodies[2]["text"] == "word " * 120


def test_long_text_chunks_fit_and_lose_nothing() -> None:
    case = next(c for c in RENDER if c["name"] == "text_over_7000_split_between_words")
    chunks = [body["text"] for body in case["bodies"]]
    assert len(chunks) == 2
    assert all(len(chunk) <= MAX_TEXT for chunk in chunks)
    assert "".join(chunks) == case["content"]["text"]


def test_a_long_caption_is_never_cut() -> None:
    case = next(c for c in RENDER if c["name"] == "image_caption_over_512_follows_as_text")
    picture, text = case["bodies"]
    assert len(case["content"]["caption"]) > MAX_CAPTION
    assert picture["text"] == "" and text["text"] == case["content"]["caption"]


def test_sender_avatar_and_min_api_version_come_from_the_config() -> None:
    adapter = make_adapter(sender_avatar="https://cdn.example.com/bot.jpg", min_api_version=3)
    [body] = render({"type": "text", "text": "hi"}, adapter)
    assert body["sender"] == {"name": "Lucky Shrub", "avatar": "https://cdn.example.com/bot.jpg"}
    assert body["min_api_version"] == 3


@pytest.mark.parametrize("case", RESPONSES, ids=[c["name"] for c in RESPONSES])
def test_read_send_response(case: dict[str, Any]) -> None:
    check_send_response(make_adapter(), case)


def test_every_classification_is_covered() -> None:
    seen = {c["error"]["category"] for c in RESPONSES if "error" in c}
    assert seen == {"retry", "permanent", "unreachable"}
    # No send error is an opt-out on Viber: only an `unsubscribed` callback is.
    assert not any(c["error"].get("unsubscribed") for c in RESPONSES if "error" in c)


def test_webhook_registration_body() -> None:
    request = make_adapter().webhook_registration("https://gw.example.com/webhooks/vb-main")
    assert (request.method, request.path) == ("POST", "/set_webhook")
    assert request.json == {
        "url": "https://gw.example.com/webhooks/vb-main",
        "event_types": [
            "delivered",
            "seen",
            "failed",
            "subscribed",
            "unsubscribed",
            "conversation_started",
        ],
        "send_name": True,
        "send_photo": True,
    }


def test_registration_answer_ok_is_summarised() -> None:
    answer = {
        "status": 0,
        "status_message": "ok",
        "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed"],
    }
    summary = make_adapter().read_registration_response(200, json.dumps(answer).encode())
    assert summary == "ok, event types: delivered, seen, failed, subscribed, unsubscribed"


@pytest.mark.parametrize(
    ("status", "body", "code", "title"),
    [
        (200, {"status": 1, "status_message": "invalidUrl"}, "1", "invalidUrl"),
        (200, {"status": 2, "status_message": "invalidAuthToken"}, "2", "invalidAuthToken"),
        (502, "Bad Gateway", "502", "HTTP 502 from Viber"),
    ],
    ids=["invalid_url", "invalid_token", "http_502"],
)
def test_registration_refused_raises_with_the_status_message(
    status: int, body: Any, code: str, title: str
) -> None:
    with pytest.raises(SendError) as caught:
        make_adapter().read_registration_response(status, raw(body))
    assert (caught.value.code, caught.value.title) == (code, title)


def test_auth_header_and_secrets() -> None:
    adapter = make_adapter()
    assert adapter.auth_headers() == {AUTH_HEADER: TOKEN}
    assert adapter.secrets() == [TOKEN]
    assert TOKEN not in repr(adapter.config)
