"""End to end on loopback: simulator → gateway → backend, and backend → API → simulator → statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.whatsapp import WhatsAppSimulator

from .conftest import API_KEY, WA, assert_no_secrets, base_config, config_from, with_backend

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def simulator() -> AsyncIterator[WhatsAppSimulator]:
    sim = WhatsAppSimulator(
        phone_number_id=WA["phone_number_id"],
        display_phone_number=WA["display_phone_number"],
        access_token=WA["access_token"],
        app_secret=WA["app_secret"],
        status_delay=0.02,
    )
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

        def states(events: list[dict[str, Any]]) -> list[str]:
            return [
                e["status"]["state"]
                for e in events
                if e["type"] == "status" and e["status"].get("message_id") == message_id
            ]

        await backend.wait_for(lambda ev: "read" in states(ev))
        view = (await client.get(f"{stack.url}/v1/messages/{message_id}", headers=AUTH)).json()

    sent_body = _last_send(simulator)
    assert sent_body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "image",
        "image": {"link": "https://cdn.example.com/menu.jpg", "caption": "Today's menu"},
    }
    assert states(backend.events) == ["sent", "delivered", "read"]
    assert view["state"] == "read"
    assert [h["state"] for h in view["history"]] == ["queued", "sent", "delivered", "read"]
    assert len(view["external_ids"]) == 1
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_provider_error_fails_the_message_with_its_reason(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
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


def _last_send(simulator: WhatsAppSimulator) -> dict[str, Any]:
    last = simulator.sent[-1]
    return last.get("body", last) if isinstance(last, dict) else last  # type: ignore[no-any-return]
