"""The Viber simulator speaks Viber's formats: HTTP 200 with a status, 64-bit tokens, signed callbacks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.simulator.viber import ViberSimulator, rich_media_cards
from tests.webhook_receiver import WebhookReceiver

TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
AUTH = {"X-Viber-Auth-Token": TOKEN}
USER = "01234567890A="
SENDER = {"name": "Lucky Shrub"}


def signature_ok(headers: dict[str, str], body: bytes) -> bool:
    expected = hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Viber-Content-Signature", ""), expected)


@pytest.fixture
async def sim(receiver: WebhookReceiver) -> AsyncIterator[ViberSimulator]:
    simulator = ViberSimulator(
        auth_token=TOKEN, webhook_url=receiver.url, status_delay=0.01, retry_backoff=0.01
    )
    simulator.add_user(USER, name="John McClane")
    await simulator.start()
    yield simulator
    await simulator.stop()


async def call(
    sim: ViberSimulator, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.base_url}/{path}", json=body, headers=AUTH if headers is None else headers
        ) as response,
    ):
        return response.status, await response.read()


async def send(sim: ViberSimulator, body: Any, **kwargs: Any) -> dict[str, Any]:
    status, raw = await call(sim, "send_message", body, **kwargs)
    assert status == 200  # Viber answers 200 even when it refuses
    answer: dict[str, Any] = json.loads(raw)
    return answer


def text(body: str = "hello", receiver: str = USER) -> dict[str, Any]:
    return {
        "receiver": receiver,
        "min_api_version": 1,
        "sender": SENDER,
        "type": "text",
        "text": body,
    }


async def test_text_send_gets_a_64_bit_token_then_signed_receipts(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    status, raw = await call(sim, "send_message", text())
    answer = json.loads(raw)
    token = answer["message_token"]
    assert status == 200 and isinstance(token, int) and token > 2**53
    assert re.search(rb'"message_token": %d[,}]' % token, raw)  # every digit on the wire
    assert answer == {
        "status": 0,
        "status_message": "ok",
        "message_token": token,
        "chat_hostname": "SN-CHAT-05_",
    }
    assert sim.sent == [{"message_token": token, "body": text()}]

    await sim.drain()
    assert [p["event"] for p in receiver.payloads()] == ["delivered", "seen"]
    for (headers, body), payload in zip(receiver.received, receiver.payloads(), strict=True):
        assert signature_ok(headers, body)
        assert headers["Content-Type"] == "application/json"
        assert str(token).encode() in body
        assert payload["message_token"] == token and payload["user_id"] == USER
        assert payload["timestamp"] > 1_600_000_000_000  # milliseconds


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "missing_auth_token"), ({"X-Viber-Auth-Token": "wrong"}, "invalidAuthToken")],
    ids=["missing", "wrong"],
)
async def test_bad_token_is_status_2(
    sim: ViberSimulator, headers: dict[str, str], message: str
) -> None:
    answer = await send(sim, text(), headers=headers)
    assert answer == {"status": 2, "status_message": message}
    assert sim.sent == [] and len(sim.requests) == 1


async def test_unknown_and_unsubscribed_receivers(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    assert (await send(sim, text(receiver="nobody==")))["status"] == 5
    await sim.unsubscribe(USER)
    answer = await send(sim, text())
    assert answer["status"] == 6 and answer["status_message"] == "receiverNotSubscribed"
    assert isinstance(answer["message_token"], int)
    assert sim.sent == []
    await sim.subscribe(USER)
    assert (await send(sim, text()))["status"] == 0
    assert [p["event"] for p in receiver.payloads()][:2] == ["unsubscribed", "subscribed"]


async def test_min_api_version_above_the_users_is_status_13(sim: ViberSimulator) -> None:
    sim.add_user(USER, api_version=2)
    assert (await send(sim, text() | {"min_api_version": 3}))["status"] == 13
    assert (await send(sim, text() | {"min_api_version": 2}))["status"] == 0


async def test_fail_next_status_and_http_error_then_recovery(sim: ViberSimulator) -> None:
    sim.fail_next(12, message="Too many requests")
    answer = await send(sim, text())
    assert answer["status"] == 12 and answer["status_message"] == "Too many requests"
    sim.fail_next(0, http_status=503, count=2)
    for _ in range(2):
        assert (await call(sim, "send_message", text()))[0] == 503
    assert (await send(sim, text()))["status"] == 0
    assert len(sim.sent) == 1


async def test_sends_need_a_webhook(sim: ViberSimulator) -> None:
    sim.webhook_url = None
    answer = await send(sim, text())
    assert answer["status"] == 10 and answer["status_message"] == "webhookNotSet"


async def test_set_webhook_checks_the_url_with_a_signed_webhook_callback(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    sim.webhook_url = None
    body = {"url": receiver.url, "event_types": ["delivered", "seen"], "send_name": True}
    status, raw = await call(sim, "set_webhook", body)
    assert status == 200
    assert json.loads(raw) == {
        "status": 0,
        "status_message": "ok",
        "event_types": ["delivered", "seen"],
    }
    [(headers, check)] = receiver.received
    assert signature_ok(headers, check)
    payload = json.loads(check)
    assert set(payload) == {"event", "timestamp", "chat_hostname", "message_token"}
    assert payload["event"] == "webhook" and payload["message_token"] > 2**53
    assert sim.webhook_url == receiver.url and sim.event_types == ["delivered", "seen"]


async def test_set_webhook_fails_unless_the_url_answers_200(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    sim.webhook_url = None
    receiver.answers = [403]
    answer = json.loads((await call(sim, "set_webhook", {"url": receiver.url}))[1])
    assert answer["status"] == 1 and "403" in answer["status_message"]
    assert sim.webhook_url is None
    answer = json.loads((await call(sim, "set_webhook", {"url": "http://127.0.0.1:9/x"}))[1])
    assert answer["status"] == 1 and sim.webhook_url is None


async def test_set_webhook_needs_the_token_and_empty_url_removes_it(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    bad = json.loads((await call(sim, "set_webhook", {"url": receiver.url}, headers={}))[1])
    assert bad["status"] == 2 and receiver.received == []
    assert json.loads((await call(sim, "set_webhook", {"url": ""}))[1])["status"] == 0
    assert sim.webhook_url is None


async def test_event_types_filter_receipts_but_not_messages(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    await call(sim, "set_webhook", {"url": receiver.url, "event_types": ["delivered"]})
    await send(sim, text())
    await sim.drain()
    await sim.send_inbound_text(USER, "hi")
    await sim.unsubscribe(USER)
    events = [p["event"] for p in receiver.payloads()]
    assert events == ["webhook", "delivered", "message", "unsubscribed"]


async def test_inbound_text_is_a_signed_message_callback(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    token = await sim.send_inbound_text("new-user==", "Où est ma commande?", name="Ann")
    [(headers, body)] = receiver.received
    assert signature_ok(headers, body)
    assert "Où".encode() in body  # UTF-8 on the wire; the signature covers these bytes
    payload = json.loads(body)
    assert payload.pop("timestamp") > 0
    assert payload == {
        "event": "message",
        "chat_hostname": "SN-CHAT-05_",
        "message_token": token,
        "sender": {
            "id": "new-user==",
            "name": "Ann",
            "country": "UK",
            "language": "en",
            "api_version": 10,
        },
        "message": {"type": "text", "text": "Où est ma commande?"},
        "silent": False,
    }
    assert (await send(sim, text(receiver="new-user==")))["status"] == 0  # now subscribed


async def test_conversation_started_does_not_subscribe(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    await sim.conversation_started("visitor==", name="Vi", context="spring")
    [payload] = receiver.payloads()
    assert payload["event"] == "conversation_started" and payload["type"] == "open"
    assert payload["subscribed"] is False and payload["context"] == "spring"
    assert payload["user"]["id"] == "visitor=="
    assert (await send(sim, text(receiver="visitor==")))["status"] == 6


async def test_callbacks_are_retried_then_given_up(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    receiver.answers = [500, 503]
    await sim.send_inbound_text(USER, "hi")
    assert len(receiver.received) == 3 and len(sim.webhooks) == 1
    receiver.answers = [500] * sim.webhook_attempts
    await sim.subscribe(USER)
    [dropped] = sim.failed_webhooks
    assert dropped["event"] == "subscribed"


async def test_unreachable_gateway_is_given_up_quietly(sim: ViberSimulator) -> None:
    sim.webhook_url = "http://127.0.0.1:9/nowhere"
    assert (await send(sim, text()))["status"] == 0
    await asyncio.wait_for(sim.drain(), 5)
    assert [p["event"] for p in sim.failed_webhooks] == ["delivered", "seen"]


PICTURE: dict[str, Any] = {
    "type": "picture",
    "media": "https://cdn.example.com/a.jpg",
    "text": "caption",
}
VALID: dict[str, dict[str, Any]] = {
    "text 7000": {"type": "text", "text": "x" * 7000},
    "picture": PICTURE,
    "picture empty text": PICTURE | {"text": ""},
    "video": {"type": "video", "media": "https://cdn.example.com/a.mp4", "size": 1024},
    "file": {
        "type": "file",
        "media": "https://cdn.example.com/a.pdf",
        "size": 1024,
        "file_name": "a.pdf",
    },
    "location numbers": {"type": "location", "location": {"lat": 37.7898, "lon": -122.3942}},
    "location strings": {"type": "location", "location": {"lat": "37.7898", "lon": "-122.3942"}},
    "contact": {"type": "contact", "contact": {"name": "Itamar", "phone_number": "+972511123123"}},
    "sticker": {"type": "sticker", "sticker_id": 46105},
    "url": {"type": "url", "media": "https://shop.example.com"},
    "avatar and tracking": {
        "type": "text",
        "text": "hi",
        "sender": SENDER | {"avatar": "https://cdn.example.com/bot.jpg"},
        "tracking_data": "msg_1",
    },
}
REPLY = {
    "Columns": 3,
    "Rows": 1,
    "ActionType": "reply",
    "ActionBody": "gw:postback:Y",
    "Text": "Yes",
}
KEYBOARD: dict[str, Any] = {
    "type": "text",
    "text": "Sure?",
    "keyboard": {"Type": "keyboard", "Buttons": [REPLY]},
}
PICKER = {"ActionType": "location-picker", "ActionBody": "location", "Text": "Send location"}
CARD = [
    {
        "Columns": 6,
        "Rows": 3,
        "ActionType": "none",
        "ActionBody": "none",
        "Image": "https://x/a.jpg",
    },
    {"Columns": 6, "Rows": 3, "ActionType": "none", "ActionBody": "none", "Text": "<b>A</b>"},
    {"Columns": 6, "Rows": 1, "ActionType": "reply", "ActionBody": "gw:postback:A", "Text": "Buy"},
]
RICH: dict[str, Any] = {
    "type": "rich_media",
    "min_api_version": 2,
    "rich_media": {"Type": "rich_media", "ButtonsGroupColumns": 6, "ButtonsGroupRows": 7},
    "alt_text": "A",
}


def rich(buttons: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return RICH | {"rich_media": RICH["rich_media"] | {"Buttons": buttons} | extra}


def keyboard(*buttons: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return KEYBOARD | {"keyboard": {"Type": "keyboard", "Buttons": list(buttons)}} | extra


VALID |= {
    "keyboard on text": KEYBOARD,
    "keyboard on picture": PICTURE | {"keyboard": KEYBOARD["keyboard"]},
    "keyboard open-url": keyboard(REPLY | {"ActionType": "open-url", "ActionBody": "https://x"}),
    "location picker at api 3": keyboard(PICKER, min_api_version=3),
    "keyboard button 2 rows, text 250": keyboard(REPLY | {"Rows": 2, "Text": "x" * 250}),
    "rich media six cards": rich(CARD * 6),
    "rich media one button": rich([CARD[2]]),
}
INVALID: dict[str, tuple[dict[str, Any], int]] = {
    "keyboard not an object": (KEYBOARD | {"keyboard": []}, 3),
    "keyboard without buttons": (KEYBOARD | {"keyboard": {"Type": "keyboard", "Buttons": []}}, 4),
    "keyboard wrong Type": (KEYBOARD | {"keyboard": {"Type": "rich", "Buttons": [REPLY]}}, 3),
    "button without ActionBody": (keyboard(REPLY | {"ActionBody": ""}), 4),
    "button without Text or image": (keyboard({"ActionType": "reply", "ActionBody": "a"}), 4),
    "button Text 251": (keyboard(REPLY | {"Text": "x" * 251}), 3),
    "button 7 columns": (keyboard(REPLY | {"Columns": 7}), 3),
    "keyboard button 3 rows": (keyboard(REPLY | {"Rows": 3}), 3),
    "unknown ActionType": (keyboard(REPLY | {"ActionType": "call"}), 3),
    "Silent not a bool": (keyboard(REPLY | {"Silent": "yes"}), 3),
    "location picker at api 1": (keyboard(PICKER), 14),
    "rich media at api 1": (rich(CARD) | {"min_api_version": 1}, 14),
    "rich media 8 rows": (rich(CARD, ButtonsGroupRows=8), 3),
    "rich media button taller than its block": (
        rich([CARD[0] | {"Rows": 4}], ButtonsGroupRows=3),
        3,
    ),
    "rich media over 6 blocks of buttons": (
        rich([CARD[2]] * 43, ButtonsGroupColumns=6, ButtonsGroupRows=1),
        3,
    ),
    "rich media location picker": (rich([PICKER]) | {"min_api_version": 3}, 3),
    "rich media no buttons": (rich([]), 4),
    "alt_text 7001": (rich(CARD) | {"alt_text": "x" * 7001}, 3),
    "no receiver": ({"receiver": "", "type": "text", "text": "hi"}, 4),
    "no sender name": ({"sender": {}, "type": "text", "text": "hi"}, 4),
    "sender name 29": ({"sender": {"name": "x" * 29}, "type": "text", "text": "hi"}, 3),
    "unknown type": ({"type": "poll", "text": "hi"}, 3),
    "min_api_version 0": ({"type": "text", "text": "hi", "min_api_version": 0}, 3),
    "text 7001": ({"type": "text", "text": "x" * 7001}, 3),
    "text missing": ({"type": "text"}, 4),
    "caption 513": (PICTURE | {"text": "x" * 513}, 3),
    "picture no media": ({"type": "picture", "text": ""}, 4),
    "video no size": ({"type": "video", "media": "https://cdn.example.com/a.mp4"}, 4),
    "video too big": (
        {"type": "video", "media": "https://cdn.example.com/a.mp4", "size": 27 * 2**20},
        3,
    ),
    "file no name": ({"type": "file", "media": "https://x.example/a", "size": 1}, 4),
    "location out of range": ({"type": "location", "location": {"lat": 91, "lon": 0}}, 3),
    "contact phone 19": (
        {"type": "contact", "contact": {"name": "A", "phone_number": "+" + "1" * 18}},
        3,
    ),
    "sticker as string": ({"type": "sticker", "sticker_id": "46105"}, 3),
    "tracking_data 4001": ({"type": "text", "text": "hi", "tracking_data": "x" * 4001}, 3),
    "over 30KB": (
        {"type": "text", "text": "x" * 7000, "tracking_data": "é" * 4000, "pad": "y" * 20000},
        3,
    ),
}


@pytest.mark.parametrize("body", VALID.values(), ids=VALID.keys())
async def test_valid_bodies_are_accepted(sim: ViberSimulator, body: dict[str, Any]) -> None:
    answer = await send(sim, {"receiver": USER, "sender": SENDER} | body)
    assert answer["status"] == 0, answer


@pytest.mark.parametrize(("body", "status"), INVALID.values(), ids=INVALID.keys())
async def test_invalid_bodies_are_refused(
    sim: ViberSimulator, body: dict[str, Any], status: int
) -> None:
    answer = await send(sim, {"receiver": USER, "sender": SENDER} | body)
    assert answer["status"] == status, answer
    assert sim.sent == []


async def test_control_endpoints(sim: ViberSimulator, receiver: WebhookReceiver) -> None:
    await send(sim, text("one"))
    root = sim.base_url.removesuffix("/pa")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{root}/_sim/sent") as response:
            [entry] = json.loads(await response.read())
        async with session.post(f"{root}/_sim/inbound", json={"from": USER, "text": "hey"}) as r:
            token = json.loads(await r.read())["message_token"]
    assert entry["body"]["text"] == "one" and entry["message_token"] == sim.sent[0]["message_token"]
    await sim.drain()
    messages = [p for p in receiver.payloads() if p["event"] == "message"]
    assert [m["message_token"] for m in messages] == [token]


def test_rich_media_cards_follow_viber_layout() -> None:
    body = rich(CARD * 2 + [CARD[1] | {"Rows": 6}, CARD[2]])
    cards = rich_media_cards(body["rich_media"])
    assert [len(card) for card in cards] == [3, 3, 2]
    assert cards[1][2]["ActionBody"] == "gw:postback:A"
    half = {"Columns": 3, "Rows": 1, "ActionBody": "a", "Text": "a"}
    small = {"ButtonsGroupColumns": 6, "ButtonsGroupRows": 1, "Buttons": [half] * 5}
    assert [len(card) for card in rich_media_cards(small)] == [2, 2, 1]


async def test_tap_sends_the_action_body_with_the_tracking_data(
    sim: ViberSimulator, receiver: WebhookReceiver
) -> None:
    answer = await send(
        sim,
        {"receiver": USER, "sender": SENDER, "tracking_data": "msg_9"}
        | RICH
        | {"rich_media": RICH["rich_media"] | {"Buttons": CARD}},
    )
    assert answer["status"] == 0
    [sent] = sim.sent
    [[image, _, buy]] = rich_media_cards(sent["body"]["rich_media"])
    await sim.tap(sent, buy)
    with pytest.raises(ValueError, match="reply buttons"):
        await sim.tap(sent, image)
    await sim.drain()
    [tap] = [p for p in receiver.payloads() if p["event"] == "message"]
    assert tap["message"] == {"type": "text", "text": "gw:postback:A", "tracking_data": "msg_9"}
    assert tap["sender"]["id"] == USER and tap["sender"]["name"] == "John McClane"
