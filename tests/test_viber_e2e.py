"""End to end on loopback: Viber simulator → gateway → backend, and backend → API → simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.viber import ViberSimulator, rich_media_cards

from .conftest import API_KEY, assert_no_secrets, config_from, with_backend
from .golden import MESSAGES
from .viber_support import TOKEN, USER, viber_channel, viber_config

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def simulator() -> AsyncIterator[ViberSimulator]:
    sim = ViberSimulator(auth_token=TOKEN, status_delay=0.02)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def stack(
    tmp_path: Path, start_gateway: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> Any:
    channel = viber_channel(base_url=simulator.base_url)
    gw = await start_gateway(config_from(with_backend(viber_config(tmp_path, channel), backend)))
    simulator.webhook_url = f"{gw.url}/webhooks/vb-main"
    return gw


async def submit(stack: Any, content: dict[str, Any], to: str = USER) -> str:
    message = {"to": {"channel": "vb-main", "id": to}, "content": content}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{stack.url}/v1/messages", json=message, headers=AUTH)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def view(stack: Any, message_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{stack.url}/v1/messages/{message_id}", headers=AUTH)
    result: dict[str, Any] = response.json()
    return result


def states(events: list[dict[str, Any]], message_id: str) -> list[str]:
    return [
        e["status"]["state"]
        for e in events
        if e["type"] == "status" and e["status"].get("message_id") == message_id
    ]


async def test_inbound_message_reaches_the_backend(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    token = await simulator.send_inbound_text(USER, "Where is my order?", name="John McClane")
    [event] = await backend.wait_for(lambda ev: len(ev) >= 1)
    assert token > 2**53
    assert event["type"] == "message" and event["external_id"] == str(token)
    assert event["message"]["content"] == {
        "type": "text",
        "text": "Where is my order?",
        "quick_replies": [],
    }
    assert event["sender"] == {"id": USER, "name": "John McClane"}
    assert event["channel"] == {"id": "vb-main", "type": "viber"}
    assert event["channel_data"]["api_version"] == 10
    assert event["conversation_id"].startswith("conv_")
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_outbound_message_then_delivered_and_seen_for_the_right_message(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_inbound_text(USER, "hi", name="John McClane")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    other = await submit(stack, {"type": "text", "text": "first"})
    message_id = await submit(
        stack,
        {"type": "image", "media": {"url": "https://cdn.example.com/menu.jpg"}, "caption": "Menu"},
    )
    await backend.wait_for(
        lambda ev: "read" in states(ev, message_id) and "read" in states(ev, other)
    )

    sent = {entry["body"]["type"]: entry for entry in simulator.sent}
    token = sent["picture"]["message_token"]
    assert token > 2**53 and float(token) != token  # a float would not round-trip it
    assert sent["picture"]["body"] == {
        "receiver": USER,
        "min_api_version": 1,
        "sender": {"name": "Lucky Shrub"},
        "tracking_data": message_id,
        "type": "picture",
        "text": "Menu",
        "media": "https://cdn.example.com/menu.jpg",
    }
    assert states(backend.events, message_id) == ["sent", "delivered", "read"]
    statuses = [
        e
        for e in backend.events
        if e["type"] == "status" and e["status"]["message_id"] == message_id
    ]
    assert {e["status"]["external_id"] for e in statuses} == {str(token)}
    assert {e["recipient"]["id"] for e in statuses} == {USER}
    result = await view(stack, message_id)
    assert result["state"] == "read" and result["external_ids"] == [str(token)]
    assert [h["state"] for h in result["history"]] == ["queued", "sent", "delivered", "read"]
    assert (await view(stack, other))["external_ids"] == [str(sent["text"]["message_token"])]
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_after_unsubscribed_sends_fail_fast_until_the_user_writes_again(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_inbound_text(USER, "hi")
    await simulator.unsubscribe(USER)
    await backend.wait_for(lambda ev: any(e["type"] == "subscription" for e in ev))
    [subscription] = backend.of_type("subscription")
    assert subscription["subscription"] == {"state": "unsubscribed"}
    assert subscription["sender"] == {"id": USER}

    message_id = await submit(stack, {"type": "text", "text": "Come back!"})
    await backend.wait_for(lambda ev: "failed" in states(ev, message_id))
    result = await view(stack, message_id)
    assert result["state"] == "failed" and result["error"]["code"] == "unsubscribed"
    assert "unsubscribed" in result["error"]["title"]
    assert simulator.requests == []  # nothing reached Viber

    await simulator.send_inbound_text(USER, "I'm back")  # writing subscribes them again
    await backend.wait_for(lambda ev: len(backend.of_type("message")) == 2)
    reply = await submit(stack, {"type": "text", "text": "Welcome back!"})
    await backend.wait_for(lambda ev: "sent" in states(ev, reply))
    assert [s["body"]["text"] for s in simulator.sent] == ["Welcome back!"]
    assert (await stack.store.get_contact("vb-main", USER)).unsubscribed_at is None


async def test_status_6_fails_that_send_only(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    # Not subscribed yet is not an opt-out: each send is tried, and says why it failed.
    simulator.add_user("gone==", subscribed=False)
    for attempt, text in enumerate(["hello", "hello again"], start=1):
        message_id = await submit(stack, {"type": "text", "text": text}, to="gone==")
        await backend.wait_for(lambda ev, m=message_id: "failed" in states(ev, m))
        error = (await view(stack, message_id))["error"]
        assert error["code"] == "6"
        assert error["title"].startswith("receiverNotSubscribed: not on Viber or not subscribed")
        assert len(simulator.requests) == attempt  # both reached Viber
    contact = await stack.store.get_contact("vb-main", "gone==")
    assert contact.unsubscribed_at is None and contact.unsubscribe_reason is None


async def test_refused_with_5_then_the_user_writes_and_the_reply_is_sent(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    first = await submit(stack, {"type": "text", "text": "Your order shipped"}, to="new==")
    await backend.wait_for(lambda ev: "failed" in states(ev, first))
    assert (await view(stack, first))["error"]["code"] == "5"  # Viber does not know them yet

    await simulator.send_inbound_text("new==", "hi, any news on my order?")  # subscribes them
    await backend.wait_for(lambda ev: any(e["type"] == "message" for e in ev))
    reply = await submit(stack, {"type": "text", "text": "Yes: it shipped today"}, to="new==")
    await backend.wait_for(lambda ev: "sent" in states(ev, reply))
    assert simulator.sent[-1]["body"]["receiver"] == "new=="
    assert simulator.sent[-1]["body"]["text"] == "Yes: it shipped today"


async def test_rate_limited_send_is_retried(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    simulator.add_user(USER)
    simulator.fail_next(12, message="Too many requests")
    message_id = await submit(stack, {"type": "text", "text": "hello"})
    await backend.wait_for(lambda ev: "sent" in states(ev, message_id))
    history = [h["state"] for h in (await view(stack, message_id))["history"]]
    assert history[:3] == ["queued", "retrying", "sent"]
    assert len(simulator.requests) == 2 and len(simulator.sent) == 1


async def test_conversation_started_reaches_the_backend_as_a_system_event(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    await simulator.conversation_started("visitor==", name="Vi", context="spring")
    [event] = await backend.wait_for(lambda ev: len(ev) >= 1)
    assert event["type"] == "system" and event["system"]["kind"] == "conversation_started"
    assert event["sender"] == {"id": "visitor==", "name": "Vi"}
    assert event["channel_data"]["subscribed"] is False
    contact = await stack.store.get_contact("vb-main", "visitor==")
    assert contact.unsubscribed_at is None


async def test_carousel_arrives_as_rich_media_and_a_tap_is_a_postback(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    simulator.add_user(USER, name="John McClane")
    message_id = await submit(stack, MESSAGES["carousel"])
    await backend.wait_for(lambda ev: "sent" in states(ev, message_id))

    [intro, carousel] = simulator.sent
    assert intro["body"]["type"] == "text" and intro["body"]["text"] == "Tonight's picks"
    body = carousel["body"]
    assert body["type"] == "rich_media" and body["min_api_version"] == 2
    assert body["tracking_data"] == message_id
    cards = rich_media_cards(body["rich_media"])
    assert len(cards) == 3
    assert [b.get("Image") for b in cards[1] if "Image" in b] == [
        "https://cdn.example.com/funghi.jpg"
    ]
    [order] = [b for b in cards[1] if b["ActionType"] == "reply"]
    assert order["Text"] == "Order"

    await simulator.tap(carousel, order)
    await backend.wait_for(lambda ev: any(e["type"] == "postback" for e in ev))
    [postback] = backend.of_type("postback")
    assert postback["postback"] == {"payload": "ORDER_FUNGHI"}
    assert postback["sender"] == {"id": USER, "name": "John McClane"}
    assert postback["channel_data"]["tracking_data"] == message_id
    assert backend.of_type("message") == []  # not ordinary text


async def test_quick_replies_arrive_as_a_keyboard_and_a_tap_is_a_postback(
    stack: Any, simulator: ViberSimulator, backend: BackendRecorder
) -> None:
    simulator.add_user(USER)
    message_id = await submit(stack, MESSAGES["text_quick_replies"])
    await backend.wait_for(lambda ev: "sent" in states(ev, message_id))
    [sent] = simulator.sent
    buttons = sent["body"]["keyboard"]["Buttons"]
    assert [b["Text"] for b in buttons] == ["Yes", "No, not yet"]
    await simulator.tap(sent, buttons[1])
    await backend.wait_for(lambda ev: any(e["type"] == "postback" for e in ev))
    [postback] = backend.of_type("postback")
    assert postback["postback"]["payload"] == "ARRIVED_NO"
