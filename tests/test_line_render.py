"""LINE outbound side: golden reply/push requests and send-response classification.

fixtures/line/render_cases.json holds, per content (and reply-token context), the exact
requests rendered — path, JSON body, headers (the retry key) and whether the reply token is
spent — and per provider answer the id returned or the SendError raised.
In that table `{"$repeat": [text, n]}` stands for `text * n`, to keep long bodies readable.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from adapters.base import SendContext, SendError
from adapters.line import (
    MAX_MESSAGES_PER_REQUEST,
    MAX_TEXT,
    RETRY_KEY_HEADER,
    LineAdapter,
    LineConfig,
    retry_key,
)
from adapters.line.render import utf16_len
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER
from gateway.schema.content import TextContent
from gateway.simulator.line import validate_messages
from tests.tables import check_send_response, load_table

FIXTURES = Path(__file__).parent / "fixtures" / "line"


TABLE: dict[str, Any] = load_table(FIXTURES / "render_cases.json")
RENDER, RESPONSES = TABLE["render"], TABLE["responses"]


def make_adapter(**config: Any) -> LineAdapter:
    return LineAdapter(
        LineConfig(
            id="line-main",
            type="line",
            channel_secret="8c570fa6dd201bb328f1c1eac23a96d8",
            channel_access_token="line-access-token-abcdef",
            **config,
        )
    )


def context(case: dict[str, Any]) -> SendContext:
    extra = case.get("context", {})
    return SendContext(
        TABLE["message_id"],
        TABLE["to"],
        extra.get("now", 0.0),
        reply_token=extra.get("reply_token"),
        reply_token_at=extra.get("reply_token_at"),
    )


@pytest.mark.parametrize("case", RENDER, ids=[c["name"] for c in RENDER])
def test_render(case: dict[str, Any]) -> None:
    content = CONTENT_ADAPTER.validate_python(case["content"])
    requests = make_adapter(**case.get("config", {})).render(content, context(case))
    rendered = [
        {
            "method": r.method,
            "path": r.path,
            "json": r.json,
            "headers": r.headers,
            "uses_reply_token": r.uses_reply_token,
        }
        for r in requests
    ]
    assert rendered == case["requests"]


@pytest.mark.parametrize("case", RENDER, ids=[c["name"] for c in RENDER])
def test_every_request_is_within_line_limits(case: dict[str, Any]) -> None:
    content = CONTENT_ADAPTER.validate_python(case["content"])
    for request in make_adapter(**case.get("config", {})).render(content, context(case)):
        assert request.json is not None
        messages = request.json["messages"]
        assert 1 <= len(messages) <= MAX_MESSAGES_PER_REQUEST
        for message in messages:
            if message["type"] == "text":
                assert 1 <= utf16_len(message["text"]) <= MAX_TEXT
        validate_messages(messages)  # as LINE validates them (the simulator's rules)
        if request.uses_reply_token:
            assert RETRY_KEY_HEADER not in request.headers  # reply does not take one
        else:
            uuid.UUID(request.headers[RETRY_KEY_HEADER])


@pytest.mark.parametrize(
    "name",
    [
        "text_over_5000_split_between_words",
        "text_emoji_counted_in_utf16_units",
        "text_of_six_messages_becomes_two_pushes",
    ],
)
def test_long_text_chunks_lose_nothing(name: str) -> None:
    case = next(c for c in RENDER if c["name"] == name)
    chunks = [m["text"] for r in case["requests"] for m in r["json"]["messages"]]
    assert len(chunks) > 1
    assert "".join(chunks) == case["content"]["text"]


def test_retry_keys_are_stable_per_message_and_request() -> None:
    assert retry_key("msg_1", 0) == retry_key("msg_1", 0)
    assert len({retry_key("msg_1", 0), retry_key("msg_1", 1), retry_key("msg_2", 0)}) == 3
    assert uuid.UUID(retry_key("msg_1", 0)).version == 5


def test_a_rerender_after_the_reply_was_spent_keeps_the_push_keys() -> None:
    """The dispatcher re-renders on retry; pushes must carry the keys of the first attempt."""
    adapter = make_adapter()
    content = TextContent(text="fern " * 5200)
    first = adapter.render(
        content, SendContext("msg_9", "Uabc", 1001.0, reply_token="tok", reply_token_at=1000.0)
    )
    again = adapter.render(content, SendContext("msg_9", "Uabc", 1010.0))
    assert [r.uses_reply_token for r in first] == [True, False]
    assert [r.uses_reply_token for r in again] == [False, False]
    assert first[1].headers == again[1].headers == {RETRY_KEY_HEADER: retry_key("msg_9", 1)}
    assert again[0].json == {"to": "Uabc", "messages": first[0].json["messages"]}  # type: ignore[index]


def test_a_reply_token_without_its_time_is_not_used() -> None:
    content = TextContent(text="hi")
    [request] = make_adapter().render(content, SendContext("m", "Uabc", 10.0, reply_token="t"))
    assert request.path == "/v2/bot/message/push"


def test_webhook_registration() -> None:
    request = make_adapter().webhook_registration("https://gw.example.com/webhooks/line-main")
    assert (request.method, request.path, request.json) == (
        "PUT",
        "/v2/bot/channel/webhook/endpoint",
        {"endpoint": "https://gw.example.com/webhooks/line-main"},
    )
    assert make_adapter().read_registration_response(200, b"{}") == "HTTP 200"
    with pytest.raises(SendError, match="Invalid webhook endpoint URL") as caught:
        make_adapter().read_registration_response(
            400, b'{"message":"Invalid webhook endpoint URL"}'
        )
    assert caught.value.category == "permanent"


def test_auth_header() -> None:
    assert make_adapter().auth_headers() == {"Authorization": "Bearer line-access-token-abcdef"}


@pytest.mark.parametrize("case", RESPONSES, ids=[c["name"] for c in RESPONSES])
def test_read_send_response(case: dict[str, Any]) -> None:
    # LINE signals a block by the unfollow webhook, never in a send's answer.
    check_send_response(make_adapter(), case)


def test_planned_parts_share_requests_five_messages_at_a_time() -> None:
    parts: list[Any] = [TextContent(text=f"part {i}") for i in range(7)]
    requests = make_adapter().render_parts(parts, SendContext("msg_7", "Uabc", 0.0))
    assert [len(r.json["messages"]) for r in requests if r.json] == [5, 2]
    assert [r.headers[RETRY_KEY_HEADER] for r in requests] == [
        retry_key("msg_7", 0),
        retry_key("msg_7", 1),
    ]


def test_identical_parts_never_share_a_retry_key_or_the_reply_token() -> None:
    parts: list[Any] = [TextContent(text="fern " * 1000)] * 12
    context = SendContext("msg_8", "Uabc", 1001.0, reply_token="tok", reply_token_at=1000.0)
    requests = make_adapter().render_parts(parts, context)
    assert [r.uses_reply_token for r in requests] == [True, False, False]
    keys = [r.headers.get(RETRY_KEY_HEADER) for r in requests[1:]]
    assert keys == [retry_key("msg_8", 1), retry_key("msg_8", 2)]


def test_the_engine_plans_line_sends_within_its_profile() -> None:
    adapter = make_adapter()
    file = CONTENT_ADAPTER.validate_python(
        {"type": "file", "media": {"url": "https://e.x/invoice.pdf", "filename": "invoice.pdf"}}
    )
    audio = CONTENT_ADAPTER.validate_python(
        {"type": "audio", "media": {"url": "https://e.x/welcome.m4a"}}
    )
    for content in (file, audio):  # no file sends, and audio needs a configured duration
        planned = plan(content, adapter.profile)
        assert [p.type for p in planned.parts] == ["text"] and planned.downgrades
    with_duration = make_adapter(audio_duration_ms=30000)
    assert plan(audio, with_duration.profile).parts == [audio]
    image = CONTENT_ADAPTER.validate_python(
        {"type": "image", "media": {"url": "https://e.x/a.jpg"}, "caption": "A fern"}
    )
    planned = plan(image, adapter.profile)
    assert planned.downgrades == []
    [request] = adapter.render_parts(planned.parts, SendContext("m", "Uabc", 0.0))
    assert request.json is not None
    assert [m["type"] for m in request.json["messages"]] == ["image", "text"]
    assert adapter.profile.messages_per_request == MAX_MESSAGES_PER_REQUEST


def test_a_location_prompt_before_the_last_message_gives_it_its_button() -> None:
    """LINE shows only the last message's quick reply: the location button moves there."""
    adapter = make_adapter()
    context = SendContext("msg_loc", "Uabc", 0.0)

    def sent(message: dict[str, Any]) -> list[dict[str, Any]]:
        content = CONTENT_ADAPTER.validate_python(message)
        [request] = adapter.render_parts(plan(content, adapter.profile).parts, context)
        assert request.json is not None
        return list(request.json["messages"])

    location = {"type": "action", "action": {"type": "location", "label": "Send location"}}
    pick_up = {"type": "postback", "label": "Pick up", "data": "pickup", "displayText": "Pick up"}
    short = {"type": "location_request", "title": "Send location"}
    reply = {"type": "reply", "title": "Pick up", "payload": "pickup"}
    assert sent({"type": "buttons", "text": "How?", "actions": [reply, short]}) == [
        {
            "type": "text",
            "text": "How?",
            "quickReply": {"items": [{"type": "action", "action": pick_up}, location]},
        }
    ]
    long = {"type": "location_request", "title": "Deliver to where I am now"}
    [message] = sent({"type": "buttons", "text": "How?", "actions": [reply, long]})
    assert message["text"] == "How?"
    assert message["quickReply"]["items"][1]["action"] == {
        "type": "location",
        "label": "Deliver to where I…",  # shortened, and recorded as a downgrade
    }


def test_retry_keys_are_uuid5_of_message_and_request_index() -> None:
    import uuid

    from adapters.line import RETRY_KEY_NAMESPACE, retry_key

    for message_id, index in (("msg_01HZX3K7Q2", 0), ("msg_01HZX3K7Q2", 1), ("msg_é", 7)):
        expected = uuid.uuid5(RETRY_KEY_NAMESPACE, f"{message_id}:{index}")
        assert retry_key(message_id, index) == str(expected)
