"""LINE end to end on loopback: simulator → gateway → backend, and backend → API → simulator.

LINE has no delivery receipts, so the statuses a backend gets are the gateway's own `sent`
(or `failed`) events, for the gateway message id it was given.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adapters.base import SendContext
from adapters.line import RETRY_KEY_HEADER, retry_key, signature
from gateway.cli import main
from gateway.schema.content import TextContent
from gateway.simulator.backend import BackendRecorder
from gateway.simulator.line import Chat, LineSimulator

from .conftest import (
    API_KEY,
    assert_no_secrets,
    base_config,
    config_from,
    inbox_settled,
    with_backend,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
FIXTURES = Path(__file__).parent / "fixtures" / "line"
USER = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
GROUP = "Ca56f94637cc4347f90a25382909b24b9"
LINE_A = {
    "channel_secret": "8c570fa6dd201bb328f1c1eac23a96d8",
    "channel_access_token": "line-a-token-123",
}
LINE_B = {
    "channel_secret": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "channel_access_token": "line-b-token-456",
}


@pytest.fixture
async def simulator() -> AsyncIterator[LineSimulator]:
    sim = LineSimulator(
        channel_secret=LINE_A["channel_secret"],
        channel_access_token=LINE_A["channel_access_token"],
    )
    await sim.start()
    yield sim
    await sim.stop()


def line_config(
    tmp_path: Path, sim: LineSimulator, backend: BackendRecorder | None = None
) -> dict[str, Any]:
    data = base_config(tmp_path)
    if backend is not None:
        with_backend(data, backend)
    data["channels"] = [
        {"id": "line-main", "type": "line", "api_base_url": sim.base_url, **LINE_A},
        {"id": "line-other", "type": "line", "api_base_url": sim.base_url, **LINE_B},
    ]
    return data


@pytest.fixture
async def stack(
    tmp_path: Path, start_gateway: Any, simulator: LineSimulator, backend: BackendRecorder
) -> Any:
    gw = await start_gateway(config_from(line_config(tmp_path, simulator, backend)))
    simulator.webhook_url = f"{gw.url}/webhooks/line-main"
    return gw


async def send(gw: Any, to: str, content: dict[str, Any]) -> str:
    message = {"to": {"channel": "line-main", "id": to}, "content": content}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/v1/messages", json=message, headers=AUTH)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def view(gw: Any, message_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{gw.url}/v1/messages/{message_id}", headers=AUTH)
    return response.json()  # type: ignore[no-any-return]


def statuses(message_id: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            e
            for e in events
            if e["type"] == "status" and e["status"].get("message_id") == message_id
        ]

    return of


async def wait_state(backend: BackendRecorder, message_id: str, state: str) -> dict[str, Any]:
    of = statuses(message_id)
    await backend.wait_for(lambda ev: any(e["status"]["state"] == state for e in of(ev)))
    return next(e for e in of(backend.events) if e["status"]["state"] == state)


async def inbound_text(
    sim: LineSimulator, backend: BackendRecorder, text: str, **where: Any
) -> dict[str, Any]:
    event = await sim.send_text(USER, text, **where)
    await backend.wait_for(
        lambda ev: any(e.get("external_id") == event["message"]["id"] for e in ev)
    )
    return event


async def test_inbound_then_a_reply_within_the_window_uses_the_reply_token(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    event = await inbound_text(simulator, backend, "Where is my order?")
    [received] = backend.of_type("message")
    assert received["channel"] == {"id": "line-main", "type": "line"}
    assert received["sender"] == {"id": USER}
    assert received["message"]["content"]["text"] == "Where is my order?"
    assert received["channel_data"]["reply_token"] == event["replyToken"]

    message_id = await send(stack, USER, {"type": "text", "text": "It ships today."})
    sent = await wait_state(backend, message_id, "sent")

    [reply] = simulator.replies()
    assert reply.body == {
        "replyToken": event["replyToken"],
        "messages": [{"type": "text", "text": "It ships today."}],
    }
    assert simulator.pushes() == []
    assert sent["status"]["external_id"] == reply.message_ids[0]
    assert sent["channel"] == {"id": "line-main", "type": "line"}
    assert [s["status"]["state"] for s in statuses(message_id)(backend.events)] == ["sent"]
    assert (await view(stack, message_id))["state"] == "sent"

    # The token is spent: the next message to the same user goes by push, with a retry key.
    second = await send(stack, USER, {"type": "text", "text": "Anything else?"})
    await wait_state(backend, second, "sent")
    [push] = simulator.pushes()
    assert push.body == {"to": USER, "messages": [{"type": "text", "text": "Anything else?"}]}
    assert push.retry_key is not None
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_a_group_message_is_answered_in_the_group(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    event = await inbound_text(simulator, backend, "hi all", group_id=GROUP)
    [received] = backend.of_type("message")
    assert received["sender"] == {"id": USER}
    assert received["channel_data"]["group_id"] == GROUP
    message_id = await send(stack, GROUP, {"type": "text", "text": "Hello group"})
    await wait_state(backend, message_id, "sent")
    [reply] = simulator.replies()
    assert reply.body["replyToken"] == event["replyToken"]


async def test_an_old_reply_token_falls_back_to_push(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    chat = {"type": "user", "userId": USER}
    message = {"id": "468789577898262600", "type": "text", "quoteToken": "q", "text": "hello?"}
    old = simulator.event("message", Chat(USER), message=message)
    old["timestamp"] = int((time.time() - 55) * 1000)  # 55 s ago: past our 50 s margin
    assert old["source"] == chat
    await simulator.deliver([old])
    await backend.wait_for(lambda ev: any(e.get("external_id") == message["id"] for e in ev))

    message_id = await send(stack, USER, {"type": "text", "text": "Sorry for the wait"})
    sent = await wait_state(backend, message_id, "sent")
    [request] = [r for r in simulator.requests if r.path.startswith("/v2/bot/message/")]
    assert request.path == "/v2/bot/message/push"
    assert request.headers[RETRY_KEY_HEADER]
    assert simulator.replies() == []
    assert sent["status"]["external_id"] == simulator.pushes()[0].message_ids[0]


async def test_a_reply_token_line_refuses_is_retried_by_push(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    await inbound_text(simulator, backend, "hi")
    simulator.expire_reply_tokens()  # still fresh for the gateway, expired at LINE
    message_id = await send(stack, USER, {"type": "text", "text": "hello"})
    await wait_state(backend, message_id, "sent")
    paths = [r.path for r in simulator.requests if r.path.startswith("/v2/bot/message/")]
    assert paths == ["/v2/bot/message/reply", "/v2/bot/message/push"]
    assert [r.status for r in simulator.requests] == [400, 200]
    states = [h["state"] for h in (await view(stack, message_id))["history"]]
    assert states == ["queued", "retrying", "sent"]


async def test_a_retried_push_carries_the_same_retry_key(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    simulator.fail_next(500, path="/v2/bot/message/push")
    message_id = await send(stack, USER, {"type": "text", "text": "Your code is 4821"})
    await wait_state(backend, message_id, "sent")
    pushes = [r for r in simulator.requests if r.path == "/v2/bot/message/push"]
    assert [r.status for r in pushes] == [500, 200]
    keys = {r.headers[RETRY_KEY_HEADER] for r in pushes}
    assert len(keys) == 1 and len(simulator.pushes()) == 1
    assert simulator.pushes()[0].retry_key in keys


async def test_a_push_accepted_before_is_not_sent_twice(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    """A push accepted by LINE whose answer we lost: the retry gets 409 and counts as sent."""
    message_id = "msg_lost_answer"
    async with httpx.AsyncClient() as client:  # LINE accepted this key on an earlier attempt
        first = await client.post(
            simulator.base_url + "/v2/bot/message/push",
            json={"to": USER, "messages": [{"type": "text", "text": "hi"}]},
            headers={
                "Authorization": f"Bearer {LINE_A['channel_access_token']}",
                RETRY_KEY_HEADER: retry_key(message_id, 0),
            },
        )
    assert first.status_code == 200
    adapter = stack.gateway.adapters["line-main"]
    content = TextContent(text="hi")
    [request] = adapter.render(content, SendContext(message_id, USER, time.time()))
    external_id = await stack.gateway.transport.send(adapter, request)
    assert external_id == first.json()["sentMessages"][0]["id"]
    assert simulator.requests[-1].status == 409 and len(simulator.pushes()) == 1


async def test_more_than_five_message_objects_become_several_requests(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    event = await inbound_text(simulator, backend, "send me the long version")
    message_id = await send(stack, USER, {"type": "text", "text": "fern " * 5200})
    await wait_state(backend, message_id, "sent")
    [reply], [push] = simulator.replies(), simulator.pushes()
    assert reply.body["replyToken"] == event["replyToken"] and len(reply.body["messages"]) == 5
    assert push.body["to"] == USER and len(push.body["messages"]) == 1
    texts = [m["text"] for m in reply.body["messages"] + push.body["messages"]]
    assert "".join(texts) == "fern " * 5200
    shown = await view(stack, message_id)
    assert shown["external_ids"] == [reply.message_ids[0], push.message_ids[0]]


async def test_unfollow_stops_sends_until_the_user_follows_again(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_unfollow(USER)
    await backend.wait_for(lambda ev: any(e["type"] == "subscription" for e in ev))
    blocked = await send(stack, USER, {"type": "text", "text": "hello?"})
    failed = await wait_state(backend, blocked, "failed")
    assert failed["status"]["error"]["code"] == "unsubscribed"
    assert simulator.sent == []

    await simulator.send_follow(USER, unblocked=True)
    await backend.wait_for(lambda ev: len([e for e in ev if e["type"] == "subscription"]) == 2)
    welcome = await send(stack, USER, {"type": "text", "text": "Welcome back!"})
    await wait_state(backend, welcome, "sent")
    [reply] = simulator.replies()  # the follow event's reply token
    assert reply.body["messages"] == [{"type": "text", "text": "Welcome back!"}]


async def test_postback_reaches_the_backend(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_postback(USER, "action=buy&itemId=111", {"date": "2025-01-01"})
    [event] = await backend.wait_for(lambda ev: len(ev) >= 1)
    assert event["type"] == "postback"
    assert event["postback"] == {"payload": "action=buy&itemId=111"}
    assert event["channel_data"]["params"] == {"date": "2025-01-01"}


async def inbox_count(gw: Any) -> int:
    row = await gw.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM inbox"))
    return int(row[0])


async def post(gw: Any, channel: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{gw.url}/webhooks/{channel}",
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8", **headers},
        )


RAW = (FIXTURES / "text.json").read_bytes()


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_signature"),
        ({"x-line-signature": signature("not-the-secret", RAW)}, 403, "invalid_signature"),
        (
            {"x-line-signature": signature(LINE_A["channel_secret"], RAW + b" ")},
            403,
            "invalid_signature",
        ),
    ],
    ids=["missing", "wrong_secret", "other_body"],
)
async def test_unsigned_or_forged_webhooks_are_rejected_and_not_stored(
    stack: Any, headers: dict[str, str], status: int, code: str
) -> None:
    response = await post(stack, "line-main", RAW, headers)
    assert response.status_code == status and response.json()["error"] == code
    assert await inbox_count(stack) == 0


async def test_two_line_channels_each_accept_only_their_own_signature(
    stack: Any, backend: BackendRecorder
) -> None:
    signed_for_a = {"x-line-signature": signature(LINE_A["channel_secret"], RAW)}
    signed_for_b = {"x-line-signature": signature(LINE_B["channel_secret"], RAW)}
    assert (await post(stack, "line-other", RAW, signed_for_a)).status_code == 403
    assert (await post(stack, "line-main", RAW, signed_for_b)).status_code == 403
    assert await inbox_count(stack) == 0
    assert (await post(stack, "line-other", RAW, signed_for_b)).status_code == 200
    [event] = await backend.wait_for(lambda ev: len(ev) >= 1)
    assert event["channel"] == {"id": "line-other", "type": "line"}


async def test_the_console_verify_request_gets_200_and_makes_no_events(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    assert await simulator.verify_webhook() == 200
    assert await simulator.verify_webhook() == 200  # identical body again: still 200
    await inbox_settled(stack)
    rows = await stack.store.db.run(lambda tx: tx.all("SELECT status FROM inbox"))
    assert [r[0] for r in rows] == ["done"]
    await asyncio.sleep(0.1)
    assert backend.events == []


async def test_redelivered_event_is_stored_once(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    event = await inbound_text(simulator, backend, "once only")
    again = json.loads(json.dumps(event))
    again["deliveryContext"] = {"isRedelivery": True}
    await simulator.deliver([again])
    await inbox_settled(stack)
    assert await inbox_count(stack) == 1
    assert len(backend.of_type("message")) == 1


async def test_channels_register_points_line_at_the_gateway(
    tmp_path: Path, simulator: LineSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(line_config(tmp_path, simulator)))
    argv = ["channels", "register", "line-main", "--config", str(config_path)]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        "line-main: webhook set to https://gateway.example.com/webhooks/line-main (HTTP 200)"
    )
    assert simulator.webhook_endpoint == "https://gateway.example.com/webhooks/line-main"
    [request] = simulator.requests
    assert request.method == "PUT" and request.json() == {"endpoint": simulator.webhook_endpoint}
    assert request.headers["Authorization"] == f"Bearer {LINE_A['channel_access_token']}"


async def test_channels_register_reports_the_providers_refusal(
    tmp_path: Path, simulator: LineSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    data = line_config(tmp_path, simulator)
    data["public_url"] = "http://gateway.example.com"  # LINE wants HTTPS
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    argv = ["channels", "register", "line-main", "--config", str(config_path)]
    assert await asyncio.to_thread(main, argv) == 1
    err = capsys.readouterr().err
    assert "line refused the webhook http://gateway.example.com/webhooks/line-main" in err
    assert "Invalid webhook endpoint URL" in err
    assert LINE_A["channel_access_token"] not in err


def test_normalize_prints_line_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", "--channel", "line", str(FIXTURES / "batch.json")]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [e["type"] for e in events] == ["message", "message", "postback"]
    assert {e["channel"]["type"] for e in events} == {"line"}
    assert events[0]["channel_data"]["reply_token"] == "b1a2c3d4e5f60718293a4b5c6d7e8f90"


def test_normalize_reports_a_body_that_is_not_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", "--channel", "line", str(FIXTURES / "no_events.json")]) == 1
    assert "not a LINE webhook" in capsys.readouterr().err


MESSAGES = Path(__file__).parent / "fixtures" / "messages"


async def test_a_carousel_arrives_as_a_carousel_template_and_a_tap_comes_back_as_its_postback(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    event = await inbound_text(simulator, backend, "What's on tonight?")
    carousel = json.loads((MESSAGES / "carousel.json").read_text())
    message_id = await send(stack, USER, carousel)
    await wait_state(backend, message_id, "sent")

    [reply] = simulator.replies()  # within the minute: the free reply, with the user's token
    assert reply.body["replyToken"] == event["replyToken"]
    intro, template = reply.body["messages"]
    assert intro == {"type": "text", "text": "Tonight's picks"}
    assert template["type"] == "template" and template["template"]["type"] == "carousel"
    columns = template["template"]["columns"]
    assert [(c["title"], c["thumbnailImageUrl"]) for c in columns] == [
        (item["title"], item["media"]["url"]) for item in carousel["items"]
    ]
    assert [c["actions"][0]["data"] for c in columns] == [
        "ORDER_MARGHERITA",
        "ORDER_FUNGHI",
        "ORDER_DIAVOLA",
    ]
    assert (await view(stack, message_id))["state"] == "sent"

    tap = await simulator.tap(USER, column=1)  # LINE posts a postback event for the tap
    assert tap is not None and tap["postback"] == {"data": "ORDER_FUNGHI"}
    await backend.wait_for(lambda ev: any(e["type"] == "postback" for e in ev))
    [postback] = backend.of_type("postback")
    assert postback["postback"]["payload"] == "ORDER_FUNGHI"
    assert postback["sender"] == {"id": USER}
    assert postback["channel"] == {"id": "line-main", "type": "line"}
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_quick_replies_and_a_location_request_go_natively_by_push(
    stack: Any, simulator: LineSimulator, backend: BackendRecorder
) -> None:
    for name in ("text_quick_replies", "location_request", "buttons_actions"):
        content = json.loads((MESSAGES / f"{name}.json").read_text())
        await wait_state(backend, await send(stack, USER, content), "sent")
    quick, location, buttons = (p.body["messages"] for p in simulator.pushes())
    assert [i["action"]["data"] for i in quick[0]["quickReply"]["items"]] == [
        "ARRIVED_YES",
        "ARRIVED_NO",
    ]
    assert location[0]["quickReply"]["items"] == [
        {"type": "action", "action": {"type": "location", "label": "Send location"}}
    ]
    assert [a["uri"] for a in buttons[0]["template"]["actions"]] == [
        "https://pay.example.com/o/A-1042",
        "https://shop.example.com/o/A-1042",
        "tel:+4930123456",
    ]

    assert await simulator.tap(USER, action=1) is None  # a URI button posts nothing...
    await simulator.send_text(USER, "1")  # ...and no numbered mapping turns "1" into a choice
    await backend.wait_for(lambda ev: any(e["type"] == "message" for e in ev))
    [text] = backend.of_type("message")
    assert text["message"]["content"]["text"] == "1"
    assert backend.of_type("postback") == []
