"""Messenger end to end on loopback: simulator → gateway → backend, and back, with receipts.

Also the ingress rules through a running gateway: signatures (401 missing / 403 wrong), the
verify handshake, and two Messenger instances with different app secrets side by side.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.meta_graph import hub_signature
from gateway.simulator.backend import BackendRecorder
from gateway.simulator.messenger import MessengerSimulator

from .conftest import API_KEY, assert_no_secrets, base_config, config_from, with_backend

AUTH = {"Authorization": f"Bearer {API_KEY}"}
FB = {
    "page_id": "107331552213590",
    "page_access_token": "fb-page-token-e2e-7f3a9c",
    "app_secret": "fb-app-secret-e2e-51d2",
    "verify_token": "fb-verify-token-e2e",
}
FB_TWO = {
    "page_id": "998877665544332",
    "page_access_token": "fb-page-token-two-0b1c",
    "app_secret": "fb-app-secret-two-9e8d",
    "verify_token": "fb-verify-token-two",
}
PSID = "6291474124214458"
FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = (FIXTURES / "messenger" / "text.json").read_bytes()
CAROUSEL = json.loads((FIXTURES / "messages" / "carousel.json").read_text())


def channel(channel_id: str, settings: dict[str, str], api_base_url: str) -> dict[str, Any]:
    return {"id": channel_id, "type": "messenger", "api_base_url": api_base_url, **settings}


@pytest.fixture
async def simulator() -> AsyncIterator[MessengerSimulator]:
    sim = MessengerSimulator(
        page_id=FB["page_id"],
        page_access_token=FB["page_access_token"],
        app_secret=FB["app_secret"],
        auto_receipts=("delivery",),
        receipt_delay=0.02,
    )
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def stack(
    tmp_path: Path, start_gateway: Any, simulator: MessengerSimulator, backend: BackendRecorder
) -> Any:
    data = with_backend(base_config(tmp_path), backend)
    data["channels"] += [
        channel("fb-main", FB, simulator.base_url),
        channel("fb-two", FB_TWO, "http://127.0.0.1:9/v21.0"),
    ]
    gw = await start_gateway(config_from(data))
    simulator.webhook_url = f"{gw.url}/webhooks/fb-main"
    return gw


async def post_message(gw: Any, to: str, content: dict[str, Any], **extra: Any) -> str:
    message = {"to": {"channel": "fb-main", "id": to}, "content": content, **extra}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/v1/messages", json=message, headers=AUTH)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def view(gw: Any, message_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{gw.url}/v1/messages/{message_id}", headers=AUTH)
    return dict(response.json())


def statuses(events: list[dict[str, Any]], message_id: str, state: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"] == "status"
        and e["status"].get("message_id") == message_id
        and e["status"]["state"] == state
    ]


async def test_inbound_text_quick_reply_and_postback_reach_the_backend(
    stack: Any, simulator: MessengerSimulator, backend: BackendRecorder
) -> None:
    text_mid = await simulator.send_inbound_text(PSID, "Do you ship to Oslo?")
    reply_mid = await simulator.send_quick_reply(PSID, "Red", "COLOR_RED")
    post_mid = await simulator.send_postback(PSID, "Track my order", "TRACK_ORDER")
    events = await backend.wait_for(lambda ev: len(ev) >= 3)
    by_id = {e["external_id"]: e for e in events}
    message = by_id[text_mid]
    assert message["type"] == "message"
    assert message["message"]["content"] == {
        "type": "text",
        "text": "Do you ship to Oslo?",
        "quick_replies": [],
    }
    assert message["sender"] == {"id": PSID}
    assert message["channel"] == {"id": "fb-main", "type": "messenger"}
    assert message["conversation_id"].startswith("conv_")
    assert by_id[reply_mid]["postback"] == {"payload": "COLOR_RED", "title": "Red"}
    assert by_id[post_mid]["postback"] == {"payload": "TRACK_ORDER", "title": "Track my order"}
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_one_read_watermark_reads_every_message_it_covers(
    stack: Any, simulator: MessengerSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_inbound_text(PSID, "hi")  # opens the 24-hour window
    await backend.wait_for(lambda ev: len(ev) >= 1)
    first = await post_message(stack, PSID, {"type": "text", "text": "Your order shipped."})
    second = await post_message(
        stack, PSID, {"type": "image", "media": {"url": "https://cdn.example.com/box.jpg"}}
    )
    await backend.wait_for(
        lambda ev: all(statuses(ev, m, "delivered") for m in (first, second)), timeout=10
    )
    await simulator.drain()
    await simulator.send_read(PSID)  # one watermark for both
    events = await backend.wait_for(
        lambda ev: all(statuses(ev, m, "read") for m in (first, second)), timeout=10
    )
    await asyncio.sleep(0.2)  # room for a wrong extra event to show up

    mids = {s["body"]["message"].get("text", "image"): s["mid"] for s in simulator.sent}
    [read_first] = statuses(backend.events, first, "read")
    [read_second] = statuses(backend.events, second, "read")
    assert read_first["status"]["external_id"] == mids["Your order shipped."]
    assert read_second["status"]["external_id"] == mids["image"]
    assert read_first["recipient"] == {"id": PSID}
    for message_id in (first, second):
        assert len(statuses(events, message_id, "delivered")) == 1
        shown = await view(stack, message_id)
        assert shown["state"] == "read"
        assert [h["state"] for h in shown["history"]] == ["queued", "sent", "delivered", "read"]

    bodies = [s["body"] for s in simulator.sent]
    assert bodies[0] == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Your order shipped."},
    }
    assert bodies[1]["message"] == {
        "attachment": {
            "type": "image",
            "payload": {"url": "https://cdn.example.com/box.jpg", "is_reusable": True},
        }
    }
    for request in simulator.requests:  # the page token travels in a header, not the URL
        assert request.headers["Authorization"] == f"Bearer {FB['page_access_token']}"
        assert FB["page_access_token"] not in request.path
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_a_carousel_arrives_as_one_generic_template_and_a_tap_is_a_postback(
    stack: Any, simulator: MessengerSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_inbound_text(PSID, "What's on tonight?")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    message_id = await post_message(stack, PSID, CAROUSEL)
    await backend.wait_for(lambda ev: bool(statuses(ev, message_id, "delivered")), timeout=10)

    messages = [s["body"]["message"] for s in simulator.sent]
    assert messages[0] == {"text": "Tonight's picks"}
    templates = [m["attachment"]["payload"] for m in messages if "attachment" in m]
    [generic] = templates  # one template carries all three cards
    assert generic["template_type"] == "generic"
    assert [e["title"] for e in generic["elements"]] == ["Margherita", "Funghi", "Diavola"]
    assert generic["elements"][1] == {
        "title": "Funghi",
        "image_url": "https://cdn.example.com/funghi.jpg",
        "subtitle": "Mushrooms, mozzarella",
        "buttons": [{"type": "postback", "title": "Order", "payload": "ORDER_FUNGHI"}],
    }
    history = (await view(stack, message_id))["history"]
    assert [h for h in history if h["state"] == "downgraded"] == []  # natively, nothing lost

    tap_mid = await simulator.tap_button(PSID, element=1, button=0)  # "Order" on Funghi
    events = await backend.wait_for(lambda ev: any(e["type"] == "postback" for e in ev), timeout=10)
    [tap] = [e for e in events if e["type"] == "postback"]
    assert tap["external_id"] == tap_mid
    assert tap["postback"] == {"payload": "ORDER_FUNGHI", "title": "Order"}
    assert tap["sender"] == {"id": PSID}
    assert tap["channel"] == {"id": "fb-main", "type": "messenger"}


async def test_closed_window_is_refused_before_sending_and_a_tag_opens_it(
    stack: Any, simulator: MessengerSimulator, backend: BackendRecorder
) -> None:
    two_days_ago = time.time() - 2 * 24 * 3600
    await simulator.send_inbound_text(PSID, "old message", timestamp=two_days_ago)
    await backend.wait_for(lambda ev: len(ev) >= 1)

    refused = await post_message(stack, PSID, {"type": "text", "text": "Any news?"})
    await backend.wait_for(lambda ev: bool(statuses(ev, refused, "failed")))
    shown = await view(stack, refused)
    assert shown["state"] == "failed"
    assert shown["error"]["code"] == "window_closed"
    assert "24-hour" in shown["error"]["title"] and "messaging_tag" in shown["error"]["title"]
    assert simulator.requests == []  # nothing reached the provider

    tagged = await post_message(
        stack,
        PSID,
        {"type": "text", "text": "Your refund was processed."},
        options={"messaging_tag": "POST_PURCHASE_UPDATE"},
    )
    await backend.wait_for(lambda ev: bool(statuses(ev, tagged, "delivered")))
    [sent] = simulator.sent
    assert sent["body"]["messaging_type"] == "MESSAGE_TAG"
    assert sent["body"]["tag"] == "POST_PURCHASE_UPDATE"
    assert (await view(stack, tagged))["state"] == "delivered"


async def test_blocked_user_fails_the_message_as_unreachable(
    stack: Any, simulator: MessengerSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_inbound_text(PSID, "hi")
    await backend.wait_for(lambda ev: len(ev) >= 1)
    simulator.fail_next(551, subcode=1545041)
    message_id = await post_message(stack, PSID, {"type": "text", "text": "hello"})
    await backend.wait_for(lambda ev: bool(statuses(ev, message_id, "failed")))
    shown = await view(stack, message_id)
    assert shown["state"] == "failed" and shown["error"]["code"] == "551/1545041"
    assert len(simulator.requests) == 1  # not retried


async def inbox_count(gw: Any) -> int:
    row = await gw.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM inbox"))
    return int(row[0])


SIGNATURE_CASES = {
    "missing": ("fb-main", {}, 401, "missing_signature"),
    "wrong_secret": (
        "fb-main",
        {"X-Hub-Signature-256": hub_signature("not-the-secret", FIXTURE)},
        403,
        "invalid_signature",
    ),
    "signed_for_the_other_instance": (
        "fb-two",
        {"X-Hub-Signature-256": hub_signature(FB["app_secret"], FIXTURE)},
        403,
        "invalid_signature",
    ),
}


@pytest.mark.parametrize(
    ("channel_id", "headers", "status", "code"),
    SIGNATURE_CASES.values(),
    ids=SIGNATURE_CASES.keys(),
)
async def test_bad_signatures_are_rejected_and_nothing_is_stored(
    stack: Any, channel_id: str, headers: dict[str, str], status: int, code: str
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{stack.url}/webhooks/{channel_id}",
            content=FIXTURE,
            headers={"Content-Type": "application/json", **headers},
        )
    assert response.status_code == status
    assert response.json()["error"] == code
    assert await inbox_count(stack) == 0
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_each_instance_accepts_its_own_signature_once(stack: Any) -> None:
    async with httpx.AsyncClient() as client:
        for channel_id, secret in (("fb-main", FB["app_secret"]), ("fb-two", FB_TWO["app_secret"])):
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": hub_signature(secret, FIXTURE),
            }
            for _ in range(2):  # a redelivery is acknowledged but stored once
                response = await client.post(
                    f"{stack.url}/webhooks/{channel_id}", content=FIXTURE, headers=headers
                )
                assert response.status_code == 200
    assert await inbox_count(stack) == 2


@pytest.mark.parametrize(
    ("channel_id", "token", "status"),
    [
        ("fb-main", FB["verify_token"], 200),
        ("fb-two", FB_TWO["verify_token"], 200),
        ("fb-two", FB["verify_token"], 403),
    ],
)
async def test_verify_handshake_per_instance(
    stack: Any, channel_id: str, token: str, status: int
) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{stack.url}/webhooks/{channel_id}", params=query)
    assert response.status_code == status
    if status == 200:
        assert response.text == "1158201444"
