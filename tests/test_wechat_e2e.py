"""End to end on loopback, in plain and safe mode: WeChat simulator -> gateway -> backend, and
backend -> API -> simulator, with the access token fetched, shared and refreshed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.wechat import WeChatSimulator

from .conftest import API_KEY, assert_no_secrets, base_config, config_from, with_backend
from .golden import MESSAGES
from .wechat_support import APP_ID, APP_SECRET, ENCODING_AES_KEY, TOKEN

AUTH = {"Authorization": f"Bearer {API_KEY}"}
USER = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"


@pytest.fixture(params=["plain", "safe"])
async def simulator(request: pytest.FixtureRequest) -> AsyncIterator[WeChatSimulator]:
    key = ENCODING_AES_KEY if request.param == "safe" else None
    sim = WeChatSimulator(app_id=APP_ID, app_secret=APP_SECRET, token=TOKEN, encoding_aes_key=key)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def stack(
    tmp_path: Path, start_gateway: Any, simulator: WeChatSimulator, backend: BackendRecorder
) -> Any:
    channel: dict[str, Any] = {
        "id": "wc-main",
        "type": "wechat",
        "api_base_url": simulator.base_url,
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "token": TOKEN,
    }
    if simulator.key is not None:
        channel["encoding_aes_key"] = ENCODING_AES_KEY
    data = with_backend(base_config(tmp_path, channels=[channel]), backend)
    gw = await start_gateway(config_from(data))
    simulator.webhook_url = f"{gw.url}/webhooks/wc-main"
    return gw


async def submit(stack: Any, content: dict[str, Any], **options: Any) -> str:
    message = {"to": {"channel": "wc-main", "id": USER}, "content": content, **options}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{stack.url}/v1/messages", json=message, headers=AUTH)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def settled(stack: Any, message_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            response = await client.get(f"{stack.url}/v1/messages/{message_id}", headers=AUTH)
            result: dict[str, Any] = response.json()
            if result["state"] in ("sent", "failed", "dead"):
                return result
            await _sleep()
    raise AssertionError(f"{message_id} never settled: {result}")


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_inbound_pushes_reach_the_backend(
    stack: Any, simulator: WeChatSimulator, backend: BackendRecorder
) -> None:
    assert await simulator.subscribe(USER) == 200
    assert await simulator.send_text(USER, "你好 & <hello>") == 200
    pic = "http://mmbiz.qpic.cn/mmbiz_jpg/teapot/0"
    assert await simulator.send_image(USER, pic, "PGKsO3LAgbVTsFYO7FGu51KUYa07D0C") == 200
    assert await simulator.send_location(USER, 31.230416, 121.473701, "人民广场") == 200
    events = await backend.wait_for(lambda ev: len(ev) >= 4)
    assert [e["type"] for e in events] == ["subscription", "message", "message", "message"]
    assert events[0]["subscription"]["state"] == "subscribed"
    assert events[1]["message"]["content"]["text"] == "你好 & <hello>"
    assert events[2]["message"]["content"]["media"]["url"] == pic
    location = events[3]["message"]["content"]
    assert (location["latitude"], location["longitude"]) == (31.230416, 121.473701)
    assert {e["channel"]["type"] for e in events} == {"wechat"}
    assert not simulator.failed_webhooks  # every push answered "success" at once
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_a_redelivered_push_reaches_the_backend_once(
    stack: Any, simulator: WeChatSimulator, backend: BackendRecorder
) -> None:
    url, body = simulator.signed(simulator.compose(USER, "text", Content="once"))
    async with httpx.AsyncClient() as client:
        for _ in range(3):  # WeChat's retries of one push
            answer = await client.post(url, content=body, headers={"Content-Type": "text/xml"})
            assert (answer.status_code, answer.text) == (200, "success")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    await simulator.send_text(USER, "next")
    events = await backend.wait_for(lambda ev: len(ev) >= 2)
    assert [e["message"]["content"]["text"] for e in events] == ["once", "next"]


async def test_text_menu_and_a_tap_that_comes_back_as_a_postback(
    stack: Any, simulator: WeChatSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_text(USER, "hi")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    text = await submit(stack, {"type": "text", "text": "Your teapot ships today."})
    assert (await settled(stack, text))["state"] == "sent"
    menu_id = await submit(
        stack,
        {
            "type": "buttons",
            "text": "Was the delivery OK?",
            "actions": [
                {"type": "reply", "title": "满意", "payload": "RATE_GOOD"},
                {"type": "reply", "title": "不满意", "payload": "RATE_BAD"},
            ],
        },
    )
    assert (await settled(stack, menu_id))["state"] == "sent"
    [first, menu] = [s.body for s in simulator.sent]
    assert first == {
        "touser": USER,
        "msgtype": "text",
        "text": {"content": "Your teapot ships today."},
    }
    assert menu["msgmenu"]["list"] == [
        {"id": "RATE_GOOD", "content": "满意"},
        {"id": "RATE_BAD", "content": "不满意"},
    ]
    await simulator.tap_menu(USER, menu, 0)
    events = await backend.wait_for(lambda ev: any(e["type"] == "postback" for e in ev))
    [postback] = [e for e in events if e["type"] == "postback"]
    assert postback["postback"]["payload"] == "RATE_GOOD"
    assert simulator.tokens_issued == 1  # one token shared by every send


async def test_a_carousel_goes_as_picture_cards_with_menus(
    stack: Any, simulator: WeChatSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_text(USER, "hi")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    card = {
        "title": "Celadon teapot",
        "description": "0.8 l",
        "media": {"url": "https://cdn.example.com/celadon.jpg"},
        "actions": [{"type": "reply", "title": "Order", "payload": "ORDER_CELADON"}],
    }
    other = {**card, "title": "Tenmoku teapot", "media": {"url": "https://cdn.example.com/t.jpg"}}
    message_id = await submit(stack, {"type": "carousel", "items": [card, other]})
    result = await settled(stack, message_id)
    assert result["state"] == "sent"
    kinds = [s.body["msgtype"] for s in simulator.sent]
    assert kinds == ["news", "msgmenu", "news", "msgmenu"]
    article = simulator.sent[0].body["news"]["articles"][0]
    assert article["title"] == "Celadon teapot"
    assert article["picurl"] == "https://cdn.example.com/celadon.jpg"
    assert len(set(result["external_ids"])) == 4  # each accepted part named apart


async def test_the_shared_carousel_is_tapped_back_as_its_items_postback(
    stack: Any, simulator: WeChatSimulator, backend: BackendRecorder
) -> None:
    """The carousel every channel is tested with (fixtures/messages/carousel.json): a picture
    card and a menu per item, and a tap on the second item's menu is its postback."""
    await simulator.send_text(USER, "今晚有什么?")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    carousel = MESSAGES["carousel"]
    assert (await settled(stack, await submit(stack, carousel)))["state"] == "sent"
    sent = [s.body for s in simulator.sent]
    assert [b["msgtype"] for b in sent] == ["text", *["news", "msgmenu"] * 3]
    assert [b["news"]["articles"][0]["picurl"] for b in sent if b["msgtype"] == "news"] == [
        item["media"]["url"] for item in carousel["items"]
    ]
    await simulator.tap_menu(USER, sent[4], 0)  # Funghi's "Order"
    events = await backend.wait_for(lambda ev: any(e["type"] == "postback" for e in ev))
    [postback] = [e for e in events if e["type"] == "postback"]
    assert postback["postback"]["payload"] == "ORDER_FUNGHI"


async def test_outside_the_window_a_template_goes_instead_or_the_send_is_refused(
    stack: Any, simulator: WeChatSimulator
) -> None:
    # The user never wrote: no 48-hour window is open.
    refused = await submit(stack, {"type": "text", "text": "Your order shipped"})
    result = await settled(stack, refused)
    assert result["state"] in ("failed", "dead")
    assert "48 hours" in str(result)
    template = {
        "name": "order_shipped_tmpl",
        "language": "zh_CN",
        "components": [{"keyword1": {"value": "A-1042"}}],
    }
    replaced = await submit(
        stack, {"type": "text", "text": "Your order shipped"}, options={"template": template}
    )
    assert (await settled(stack, replaced))["state"] == "sent"
    [sent] = simulator.sent
    assert sent.kind == "template"
    assert sent.body == {
        "touser": USER,
        "template_id": "order_shipped_tmpl",
        "data": {"keyword1": {"value": "A-1042"}},
    }


async def test_an_expired_token_is_refreshed_and_the_send_tried_again(
    stack: Any, simulator: WeChatSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_text(USER, "hi")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    first = await submit(stack, {"type": "text", "text": "one"})
    assert (await settled(stack, first))["state"] == "sent"
    simulator.expire_tokens()  # WeChat's 7,200 s are over
    second = await submit(stack, {"type": "text", "text": "two"})
    assert (await settled(stack, second))["state"] == "sent"
    assert simulator.tokens_issued == 2
    assert [r["errcode"] for r in simulator.refused] == []  # 42001 is answered before refusal
    assert [s.body["text"]["content"] for s in simulator.sent] == ["one", "two"]
    assert_no_secrets(stack.logs.getvalue(), [*stack.secrets(), *simulator.tokens])


async def test_ingress_checks_the_query_signature_and_answers_the_url_check(
    stack: Any, simulator: WeChatSimulator, backend: BackendRecorder
) -> None:
    url, body = simulator.signed(simulator.compose(USER, "text", Content="forged?"))
    bare, _, query = url.partition("?")
    headers = {"Content-Type": "text/xml"}
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(bare, content=body, headers=headers)
        forged = await client.post(url.replace("nonce=", "nonce=1"), content=body, headers=headers)
        params = dict(p.split("=", 1) for p in query.split("&"))
        check = {k: params[k] for k in ("signature", "timestamp", "nonce")}
        echoed = await client.get(bare, params={**check, "echostr": "5837397520665436492"})
        refused = await client.get(bare, params={**check, "nonce": "1", "echostr": "x"})
    assert unsigned.status_code == 401
    assert "signature query parameter" in unsigned.json()["message"]
    assert forged.status_code == 403
    assert (echoed.status_code, echoed.text) == (200, "5837397520665436492")
    assert refused.status_code == 403 and refused.text != "x"
    assert backend.events == []
