"""WeChat outbound side: what `render` refuses or splits, how WeChat's answers are classified,
and the sender's token handling against respx (WeChat's documented answers)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from adapters.base import SendContext, SendError
from adapters.wechat import CUSTOM_SEND_PATH, MAX_TEXT_BYTES, TOKEN_PATH
from adapters.wechat.sender import WeChatSender
from gateway.schema import CONTENT_ADAPTER
from tests.wechat_support import make_adapter

NOW = 1_700_000_000.0
OPEN = SendContext("msg_1", "oLVPpjqs9BhvzwPj5A-vTYAX3GLc", NOW, last_inbound_at=NOW - 3600)
CLOSED = SendContext("msg_1", "oLVPpjqs9BhvzwPj5A-vTYAX3GLc", NOW, last_inbound_at=NOW - 49 * 3600)


def render(content: dict[str, Any], context: SendContext = OPEN) -> list[dict[str, Any]]:
    requests = make_adapter().render(CONTENT_ADAPTER.validate_python(content), context)
    return [r.json or {} for r in requests]


def test_text_is_split_by_utf8_bytes() -> None:
    bodies = render({"type": "text", "text": "茶" * 1000})  # 3,000 bytes
    chunks = [b["text"]["content"] for b in bodies]
    assert "".join(chunks) == "茶" * 1000
    assert all(len(c.encode()) <= MAX_TEXT_BYTES for c in chunks) and len(chunks) == 2


def test_outside_the_48_hour_window_only_a_template_is_rendered() -> None:
    with pytest.raises(SendError) as caught:
        render({"type": "text", "text": "hi"}, CLOSED)
    assert (caught.value.category, caught.value.code) == ("permanent", "window_closed")
    template = {
        "type": "template",
        "template": {"name": "tmpl_1", "language": "zh_CN", "components": [{"k": {"value": "v"}}]},
    }
    assert render(template, CLOSED) == [
        {"touser": OPEN.recipient_id, "template_id": "tmpl_1", "data": {"k": {"value": "v"}}}
    ]


def test_a_menu_id_past_64_bytes_is_refused_plainly() -> None:
    buttons = {
        "type": "buttons",
        "text": "Pick",
        "actions": [{"type": "reply", "title": "茶", "payload": "茶" * 22}],  # 66 bytes
    }
    with pytest.raises(SendError, match="msgmenu id holds 64 bytes"):
        render(buttons)


def test_an_image_with_a_media_id_goes_as_a_native_image() -> None:
    image = {"type": "image", "media": {"provider_media_id": "MEDIA_1"}, "caption": "Menu"}
    assert [b["msgtype"] for b in render(image)] == ["image", "text"]


RESPONSES = [
    (200, {"errcode": 0, "errmsg": "ok", "msgid": 200228332}, "200228332", None),
    (200, {"errcode": 45015, "errmsg": "response out of time limit"}, None, ("permanent", "window_closed", False)),
    (200, {"errcode": 43004, "errmsg": "require subscribe"}, None, ("permanent", "43004", True)),
    (200, {"errcode": 40003, "errmsg": "invalid openid"}, None, ("unreachable", "40003", False)),
    (200, {"errcode": -1, "errmsg": "system error"}, None, ("retry", "-1", False)),
    (200, {"errcode": 42001, "errmsg": "access_token expired"}, None, ("retry", "42001", False)),
    (200, {"errcode": 45047, "errmsg": "out of response count limit"}, None, ("permanent", "45047", False)),
    (502, None, None, ("retry", "502", False)),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "sent_id", "error"), RESPONSES)
def test_answers_are_classified(
    status: int, body: Any, sent_id: str | None, error: tuple[str, str, bool] | None
) -> None:
    raw = json.dumps(body).encode() if body is not None else b"<html>bad gateway</html>"
    if error is None:
        assert make_adapter().read_send_response(status, raw, {}) == sent_id
        return
    with pytest.raises(SendError) as caught:
        make_adapter().read_send_response(status, raw, {})
    got = caught.value
    assert (got.category, got.code, got.unsubscribed) == error


def test_a_custom_send_without_msgid_gets_distinct_ids() -> None:
    ok = b'{"errcode":0,"errmsg":"ok"}'
    ids = {make_adapter().read_send_response(200, ok, {}) for _ in range(3)}
    assert len(ids) == 3


@respx.mock
async def test_a_refused_token_is_fetched_again_and_the_send_retried_once() -> None:
    base = "https://api.weixin.qq.com"
    tokens = iter(["TOKEN_A", "TOKEN_B"])
    token_route = respx.post(base + TOKEN_PATH).mock(
        side_effect=lambda _: httpx.Response(
            200, json={"access_token": next(tokens), "expires_in": 7200}
        )
    )
    answers = iter(
        [{"errcode": 40001, "errmsg": "invalid credential"}, {"errcode": 0, "errmsg": "ok"}]
    )
    send_route = respx.post(base + CUSTOM_SEND_PATH).mock(
        side_effect=lambda _: httpx.Response(200, json=next(answers))
    )
    adapter = make_adapter()
    async with httpx.AsyncClient() as client:
        sender = WeChatSender(adapter, client)
        [request] = adapter.render(
            CONTENT_ADAPTER.validate_python({"type": "text", "text": "hi"}), OPEN
        )
        assert (await sender.send(request)).startswith("custom-")
    assert token_route.call_count == 2
    assert [c.request.url.params["access_token"] for c in send_route.calls] == [
        "TOKEN_A",
        "TOKEN_B",
    ]
    assert json.loads(token_route.calls[0].request.content)["force_refresh"] is False


@respx.mock
async def test_a_token_near_its_expiry_is_fetched_before_the_send() -> None:
    base = "https://api.weixin.qq.com"
    token_route = respx.post(base + TOKEN_PATH).mock(
        return_value=httpx.Response(200, json={"access_token": "T", "expires_in": 7200})
    )
    respx.post(base + CUSTOM_SEND_PATH).mock(return_value=httpx.Response(200, json={"errcode": 0}))
    clock = [0.0]
    adapter = make_adapter()
    async with httpx.AsyncClient() as client:
        sender = WeChatSender(adapter, client, clock=lambda: clock[0])
        [request] = adapter.render(
            CONTENT_ADAPTER.validate_python({"type": "text", "text": "hi"}), OPEN
        )
        await sender.send(request)
        clock[0] = 7200 - 600  # still well within its life: shared
        await sender.send(request)
        clock[0] = 7200 - 60  # within the refresh margin: fetched again
        await sender.send(request)
    assert token_route.call_count == 2
