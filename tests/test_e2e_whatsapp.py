"""End to end on loopback: simulator → gateway → backend, and backend → API → simulator → statuses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.whatsapp import WhatsAppSimulator

from .conftest import API_KEY, WA, assert_no_secrets, base_config, config_from, with_backend

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def whatsapp_simulator() -> WhatsAppSimulator:
    """A simulator of the test config's WhatsApp number (conftest.WA), not yet started."""
    return WhatsAppSimulator(
        phone_number_id=WA["phone_number_id"],
        display_phone_number=WA["display_phone_number"],
        access_token=WA["access_token"],
        app_secret=WA["app_secret"],
        status_delay=0.02,
    )


@pytest.fixture
async def simulator() -> AsyncIterator[WhatsAppSimulator]:
    sim = whatsapp_simulator()
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def stack(
    tmp_path: Path, start_gateway: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> Any:
    data = with_backend(base_config(tmp_path), backend)
    data["channels"][0]["api_base_url"] = simulator.base_url
    gw = await start_gateway(config_from(data))
    simulator.webhook_url = f"{gw.url}/webhooks/wa-main"
    return gw


async def test_inbound_message_reaches_the_backend(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    wamid = await simulator.send_inbound_text(
        "16505551234", "Where is my order?", name="Sheena Nelson"
    )
    [event] = [e for e in await backend.wait_for(lambda ev: len(ev) >= 1) if e["type"] == "message"]
    assert event["external_id"] == wamid
    assert event["message"]["content"] == {
        "type": "text",
        "text": "Where is my order?",
        "quick_replies": [],
    }
    assert event["sender"] == {
        "id": "16505551234",
        "name": "Sheena Nelson",
        "phone": "+16505551234",
    }
    assert event["channel"] == {"id": "wa-main", "type": "whatsapp"}
    assert event["id"].startswith("evt_") and event["conversation_id"].startswith("conv_")
    assert isinstance(event["raw_id"], int)
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_outbound_message_and_its_statuses(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_inbound_text("16505551234", "hi", name="Sheena Nelson")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    message = {
        "to": {"channel": "wa-main", "id": "16505551234"},
        "content": {
            "type": "image",
            "media": {"url": "https://cdn.example.com/menu.jpg"},
            "caption": "Today's menu",
        },
    }
    async with httpx.AsyncClient() as client:
        accepted = (
            await client.post(f"{stack.url}/v1/messages", json=message, headers=AUTH)
        ).json()
        message_id = accepted["id"]
        await backend.wait_for(lambda ev: "read" in states(ev, message_id))
        view = (await client.get(f"{stack.url}/v1/messages/{message_id}", headers=AUTH)).json()

    sent_body = _last_send(simulator)
    assert sent_body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "image",
        "image": {"link": "https://cdn.example.com/menu.jpg", "caption": "Today's menu"},
    }
    assert states(backend.events, message_id) == ["sent", "delivered", "read"]
    assert view["state"] == "read"
    assert [h["state"] for h in view["history"]] == ["queued", "sent", "delivered", "read"]
    assert len(view["external_ids"]) == 1
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_a_username_user_known_only_by_their_business_scoped_id_is_reached(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    """Meta withholds the number of a user with a username: the BSUID is the only address."""
    bsuid = "US.13491208655302741918"
    wamid = await simulator.send_inbound_text(bsuid, "Is my order ready?", name="Maria")
    [event] = await backend.wait_for(lambda ev: [e for e in ev if e["external_id"] == wamid])
    assert event["sender"] == {"id": bsuid, "name": "Maria", "user_id": bsuid}
    message = {
        "to": {"channel": "wa-main", "id": bsuid},
        "content": {"type": "text", "text": "Yes!"},
    }
    message_id = await send(stack, message)
    await backend.wait_for(lambda ev: "read" in states(ev, message_id))
    assert _last_send(simulator) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "recipient": bsuid,
        "type": "text",
        "text": {"preview_url": False, "body": "Yes!"},
    }
    assert states(backend.events, message_id) == ["sent", "delivered", "read"]
    [read] = [e for e in backend.events if e["type"] == "status" and e["status"]["state"] == "read"]
    assert read["recipient"] == {"id": bsuid, "user_id": bsuid}
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_provider_error_fails_the_message_with_its_reason(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    await open_window(simulator, backend, "16505550000")
    simulator.fail_next(131026, details="Message undeliverable")
    message = {
        "to": {"channel": "wa-main", "id": "16505550000"},
        "content": {"type": "text", "text": "hello"},
    }
    async with httpx.AsyncClient() as client:
        message_id = (
            await client.post(f"{stack.url}/v1/messages", json=message, headers=AUTH)
        ).json()["id"]
        await backend.wait_for(
            lambda ev: any(e["type"] == "status" and e["status"]["state"] == "failed" for e in ev)
        )
        view = (await client.get(f"{stack.url}/v1/messages/{message_id}", headers=AUTH)).json()
    assert view["state"] == "failed"
    assert view["error"]["code"] == "131026"


async def test_rate_limited_send_is_retried_after_retry_after(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    await open_window(simulator, backend, "16505551234")
    simulator.fail_next(130429, http_status=429, retry_after=0.3)
    message = {
        "to": {"channel": "wa-main", "id": "16505551234"},
        "content": {"type": "text", "text": "hello"},
    }
    async with httpx.AsyncClient() as client:
        message_id = (
            await client.post(f"{stack.url}/v1/messages", json=message, headers=AUTH)
        ).json()["id"]
        await backend.wait_for(
            lambda ev: any(
                e["type"] == "status"
                and e["status"].get("message_id") == message_id
                and e["status"]["state"] == "sent"
                for e in ev
            )
        )
        view = (await client.get(f"{stack.url}/v1/messages/{message_id}", headers=AUTH)).json()
    states = [h["state"] for h in view["history"]]
    assert states[:3] == ["queued", "retrying", "sent"]
    retried_at, sent_at = (h["at"] for h in view["history"][1:3])
    assert retried_at < sent_at


def states(events: list[dict[str, Any]], message_id: str) -> list[str]:
    """The states the backend was told of for one gateway message, in order."""
    return [
        e["status"]["state"]
        for e in events
        if e["type"] == "status" and e["status"].get("message_id") == message_id
    ]


async def open_window(simulator: WhatsAppSimulator, backend: BackendRecorder, user: str) -> None:
    """The customer writes first: free-form replies are allowed for 24 hours."""
    wamid = await simulator.send_inbound_text(user, "hi")
    await backend.wait_for(lambda ev: any(e.get("external_id") == wamid for e in ev))


async def send(stack: Any, message: dict[str, Any]) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{stack.url}/v1/messages", json=message, headers=AUTH)
    return str(response.json()["id"])


async def final_view(stack: Any, backend: BackendRecorder, message_id: str) -> dict[str, Any]:
    await backend.wait_for(
        lambda ev: any(
            e["type"] == "status"
            and e["status"].get("message_id") == message_id
            and e["status"]["state"] in ("sent", "failed")
            for e in ev
        )
    )
    async with httpx.AsyncClient() as client:
        view = await client.get(f"{stack.url}/v1/messages/{message_id}", headers=AUTH)
    return dict(view.json())


ORDER_TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-1042"}]}],
}


async def test_free_form_outside_the_window_is_refused_before_the_provider(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    before = len(simulator.sent)
    message_id = await send(
        stack,
        {
            "to": {"channel": "wa-main", "id": "16505559999"},
            "content": {"type": "text", "text": "Hi"},
        },
    )
    view = await final_view(stack, backend, message_id)
    assert view["state"] == "failed"
    assert view["error"]["code"] == "window_closed"
    assert "24 hours" in view["error"]["title"]
    assert len(simulator.sent) == before


async def test_outside_the_window_the_template_fallback_goes_instead(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    message_id = await send(
        stack,
        {
            "to": {"channel": "wa-main", "id": "16505559998"},
            "content": {"type": "text", "text": "Your order A-1042 is on its way"},
            "options": {"template": ORDER_TEMPLATE},
        },
    )
    view = await final_view(stack, backend, message_id)
    # Sent; the simulator may already have reported it delivered by the time we read.
    assert view["state"] in ("sent", "delivered", "read")
    body = _last_send(simulator)
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": ORDER_TEMPLATE["components"],
    }
    # The history says what went instead of the text, and why.
    assert [(h["state"], h["detail"]) for h in view["history"] if h["state"] == "downgraded"] == [
        (
            "downgraded",
            "text → template order_update: the recipient has not written yet; whatsapp takes"
            " free-form messages only 24 hours after the user's last",
        )
    ]


async def test_a_template_message_needs_no_window(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    message_id = await send(
        stack,
        {
            "to": {"channel": "wa-main", "id": "16505559997"},
            "content": {
                "type": "template",
                "template": ORDER_TEMPLATE,
                "fallback": {"type": "text", "text": "Your order A-1042 is on its way"},
            },
        },
    )
    assert (await final_view(stack, backend, message_id))["state"] == "sent"
    assert _last_send(simulator)["template"]["name"] == "order_update"


def _last_send(simulator: WhatsAppSimulator) -> dict[str, Any]:
    last = simulator.sent[-1]
    return last.get("body", last) if isinstance(last, dict) else last  # type: ignore[no-any-return]


CAROUSEL = json.loads(
    (Path(__file__).parent / "fixtures" / "messages" / "carousel.json").read_text()
)


async def test_carousel_arrives_as_a_media_carousel_and_a_tap_is_the_items_postback(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    user = "16505551234"
    await open_window(simulator, backend, user)
    before = len(simulator.sent)
    message_id = await send(stack, {"to": {"channel": "wa-main", "id": user}, "content": CAROUSEL})
    async with asyncio.timeout(10):
        while len(simulator.sent) < before + 1:
            await asyncio.sleep(0.02)
    # The richest WhatsApp form: one media carousel, the text as its body, one card per item.
    [sent] = simulator.sent[before:]
    carousel = sent["body"]["interactive"]
    assert carousel["type"] == "carousel" and carousel["body"] == {"text": "Tonight's picks"}
    assert carousel["action"]["cards"][1] == {
        "card_index": 1,
        "header": {"type": "image", "image": {"link": "https://cdn.example.com/funghi.jpg"}},
        "body": {"text": "*Funghi*\nMushrooms, mozzarella"},
        "action": {
            "buttons": [
                {"type": "quick_reply", "quick_reply": {"id": "ORDER_FUNGHI", "title": "Order"}}
            ]
        },
    }

    # The user taps "Order" on the second card: Meta posts an interactive button_reply.
    tap = await simulator.send_inbound_button_reply(user, "ORDER_FUNGHI")
    events = await backend.wait_for(lambda ev: any(e.get("external_id") == tap for e in ev))
    [postback] = [e for e in events if e.get("external_id") == tap]
    assert postback["type"] == "postback"
    assert postback["postback"]["payload"] == "ORDER_FUNGHI"
    assert postback["postback"]["title"] == "Order"
    assert postback["postback"]["reply_to"] == sent["wamid"]
    view = await final_view(stack, backend, message_id)
    assert view["state"] in ("sent", "delivered", "read") and len(view["external_ids"]) == 1
    assert [h for h in view["history"] if h["state"] == "downgraded"] == []


async def test_carousel_of_unlike_cards_arrives_as_one_card_per_item(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    # WhatsApp's cards must all be alike: a card with two buttons among cards with one
    # cannot be a media carousel, so each item goes as a reply-buttons message of its own.
    user = "16505551234"
    await open_window(simulator, backend, user)
    unlike = json.loads(json.dumps(CAROUSEL))
    unlike["items"][0]["actions"].append({"type": "reply", "title": "Info", "payload": "INFO_M"})
    before = len(simulator.sent)
    message_id = await send(stack, {"to": {"channel": "wa-main", "id": user}, "content": unlike})
    async with asyncio.timeout(10):
        while len(simulator.sent) < before + 4:
            await asyncio.sleep(0.02)
    bodies = [s["body"] for s in simulator.sent[before:]]
    assert bodies[0]["text"]["body"] == "Tonight's picks"
    assert bodies[2]["interactive"] == {
        "type": "button",
        "header": {"type": "image", "image": {"link": "https://cdn.example.com/funghi.jpg"}},
        "body": {"text": "Funghi\nMushrooms, mozzarella"},
        "action": {
            "buttons": [{"type": "reply", "reply": {"id": "ORDER_FUNGHI", "title": "Order"}}]
        },
    }
    view = await final_view(stack, backend, message_id)
    assert len(view["external_ids"]) == 4
    downgraded = [h["detail"] for h in view["history"] if h["state"] == "downgraded"]
    assert downgraded == ["carousel → cards: whatsapp carousel cards must all have as many actions"]
