"""SMS end to end on loopback: Twilio simulator → gateway → backend, and backend → API → SDK →
simulator → signed status callbacks, with the gateway behind a TLS-terminating proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.sms import TwilioSimulator, sign

from .conftest import (
    API_KEY,
    assert_no_secrets,
    base_config,
    config_from,
    inbox_settled,
    with_backend,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PUBLIC = "https://sms.example.com"
ACCOUNT_SID = "AC" + "7c" * 16
AUTH_TOKEN = "e2e-twilio-auth-token-abcdef012345"
OTHER_TOKEN = "e2e-twilio-other-token-9876543210"
NUMBER = "+14155550199"
USER = "+14155550100"


def sms_channel(channel_id: str, api_base_url: str, token: str = AUTH_TOKEN) -> dict[str, Any]:
    return {
        "id": channel_id,
        "type": "sms",
        "api_base_url": api_base_url,
        "account_sid": ACCOUNT_SID,
        "auth_token": token,
        "from_number": NUMBER,
        "rate_limit_per_second": 50,
    }


@pytest.fixture
async def simulator() -> AsyncIterator[TwilioSimulator]:
    sim = TwilioSimulator(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, phone_number=NUMBER, status_delay=0.02
    )
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def stack(
    tmp_path: Path, start_gateway: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> Any:
    return await start_stack(tmp_path, start_gateway, simulator, backend)


async def start_stack(
    tmp_path: Path,
    start_gateway: Any,
    simulator: TwilioSimulator,
    backend: BackendRecorder,
    **delivery: float,
) -> Any:
    data = with_backend(base_config(tmp_path, public_url=PUBLIC), backend)
    data["delivery"] |= delivery
    data["channels"] = [
        sms_channel("sms-main", simulator.base_url),
        sms_channel("sms-other", simulator.base_url, OTHER_TOKEN),
    ]
    gw = await start_gateway(config_from(data))
    # Twilio calls the public URL; the proxy in front of the gateway forwards to where it listens.
    simulator.webhook_url = f"{gw.url}/webhooks/sms-main"
    simulator.public_url = f"{PUBLIC}/webhooks/sms-main"
    return gw


async def post_message(gw: Any, to: str, content: dict[str, Any]) -> str:
    message = {"to": {"channel": "sms-main", "id": to}, "content": content}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/v1/messages", json=message, headers=AUTH)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def view(gw: Any, message_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{gw.url}/v1/messages/{message_id}", headers=AUTH)
    return response.json()  # type: ignore[no-any-return]


def states_of(message_id: str, events: list[dict[str, Any]]) -> list[str]:
    return [
        e["status"]["state"]
        for e in events
        if e["type"] == "status" and e["status"].get("message_id") == message_id
    ]


async def inbox_count(gw: Any) -> int:
    row = await gw.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM inbox"))
    return int(row[0])


async def test_inbound_sms_and_mms_reach_the_backend(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    sms = await simulator.send_inbound(USER, "Is my order ready?")
    mms = await simulator.send_inbound(
        USER,
        "Damaged box",
        media=[
            ("https://api.twilio.com/2010-04-01/x/Media/ME1", "image/jpeg"),
            ("https://api.twilio.com/2010-04-01/x/Media/ME2", "image/png"),
        ],
    )
    events = await backend.wait_for(lambda ev: len(ev) >= 3)
    assert [w["status"] for w in simulator.webhooks] == [200, 200]
    assert {w["body"] for w in simulator.webhooks} == {
        '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    }
    assert {w["content_type"] for w in simulator.webhooks} == {"text/xml"}
    text, first, second = events
    assert text["external_id"] == sms
    assert text["message"]["content"] == {
        "type": "text",
        "text": "Is my order ready?",
        "quick_replies": [],
    }
    assert text["sender"] == {"id": USER, "phone": USER}
    assert text["recipient"] == {"id": NUMBER, "phone": NUMBER}
    assert text["channel"] == {"id": "sms-main", "type": "sms"}
    assert [first["external_id"], second["external_id"]] == [mms, f"{mms}/1"]
    assert first["message"]["content"]["caption"] == "Damaged box"
    assert second["message"]["content"]["media"]["mime_type"] == "image/png"
    assert text["conversation_id"] == first["conversation_id"]
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_outbound_sms_with_segments_and_statuses(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    text = "Your order has shipped and will arrive tomorrow between 9 and 12. " * 3
    message_id = await post_message(stack, USER, {"type": "text", "text": text})
    await backend.wait_for(lambda ev: "delivered" in states_of(message_id, ev))
    [sent] = simulator.sent
    assert sent["params"] == {
        "To": [USER],
        "From": [NUMBER],
        "Body": [text],
        "StatusCallback": [f"{PUBLIC}/webhooks/sms-main"],
    }
    assert sent["response"]["num_segments"] == "2"
    assert states_of(message_id, backend.events) == ["sent", "delivered"]
    status = next(e for e in backend.events if e["type"] == "status")
    assert status["status"]["external_id"] == sent["sid"]
    result = await view(stack, message_id)
    assert result["state"] == "delivered" and result["external_ids"] == [sent["sid"]]
    history = [(h["state"], h.get("detail")) for h in result["history"]]
    assert ("sent", "2 SMS segments (GSM-7)") in history
    assert [state for state, _ in history] == ["queued", "sent", "delivered"]
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_image_goes_as_mms_and_undelivered_fails_with_the_code(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    simulator.fail_delivery_next(30005)
    content = {"type": "image", "media": {"url": "https://cdn.example.com/a.jpg"}, "caption": "Hi"}
    message_id = await post_message(stack, USER, content)
    await backend.wait_for(lambda ev: "failed" in states_of(message_id, ev))
    assert simulator.sent[0]["params"]["MediaUrl"] == ["https://cdn.example.com/a.jpg"]
    result = await view(stack, message_id)
    assert result["state"] == "failed"
    assert result["error"]["code"] == "30005" and result["error"]["retryable"] is False
    assert ("sent", "MMS with 1 media") in [
        (h["state"], h.get("detail")) for h in result["history"]
    ]


async def test_behind_a_proxy_only_the_public_url_signature_counts(stack: Any) -> None:
    body = {"MessageSid": "SM" + "ab" * 16, "From": USER, "To": NUMBER, "Body": "hi"}
    listening = f"{stack.url}/webhooks/sms-main"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient() as client:
        public = await client.post(
            listening,
            content=urlencode(body),
            headers=headers
            | {"X-Twilio-Signature": sign(AUTH_TOKEN, f"{PUBLIC}/webhooks/sms-main", body)},
        )
        local = await client.post(
            listening,
            content=urlencode(body | {"MessageSid": "SM" + "cd" * 16}),
            headers=headers
            | {
                "X-Twilio-Signature": sign(
                    AUTH_TOKEN, listening, body | {"MessageSid": "SM" + "cd" * 16}
                )
            },
        )
    assert public.status_code == 200 and public.headers["Content-Type"].startswith("text/xml")
    assert public.text == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    assert local.status_code == 403 and local.json()["error"] == "invalid_signature"
    assert await inbox_count(stack) == 1


async def test_missing_wrong_and_foreign_signatures_store_nothing(stack: Any) -> None:
    body = {"MessageSid": "SM" + "ef" * 16, "From": USER, "To": NUMBER, "Body": "hi"}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    url = f"{PUBLIC}/webhooks/sms-main"
    async with httpx.AsyncClient() as client:

        async def post(channel: str, extra: dict[str, str]) -> httpx.Response:
            return await client.post(
                f"{stack.url}/webhooks/{channel}", content=urlencode(body), headers=headers | extra
            )

        missing = await post("sms-main", {})
        wrong = await post("sms-main", {"X-Twilio-Signature": sign("x" * 32, url, body)})
        # Signed with sms-main's token: sms-other (its own token) refuses it, even for its URL.
        other_url = f"{PUBLIC}/webhooks/sms-other"
        foreign = await post("sms-other", {"X-Twilio-Signature": sign(AUTH_TOKEN, other_url, body)})
        own = await post("sms-other", {"X-Twilio-Signature": sign(OTHER_TOKEN, other_url, body)})
        json_body = await client.post(
            f"{stack.url}/webhooks/sms-main",
            json=body,
            headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, body)},
        )
    assert (missing.status_code, missing.json()["error"]) == (401, "missing_signature")
    assert (wrong.status_code, wrong.json()["error"]) == (403, "invalid_signature")
    assert (foreign.status_code, foreign.json()["error"]) == (403, "invalid_signature")
    assert json_body.status_code == 415
    assert own.status_code == 200
    assert await inbox_count(stack) == 1  # only sms-other's own request


async def test_stop_is_remembered_until_start(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    await simulator.send_inbound(USER, "stop")
    [event] = await backend.wait_for(lambda ev: len(ev) >= 1)
    assert event["type"] == "subscription"
    assert event["subscription"] == {"state": "unsubscribed", "keyword": "STOP"}
    assert event["sender"]["id"] == USER

    blocked = await post_message(stack, USER, {"type": "text", "text": "Flash sale!"})
    await backend.wait_for(lambda ev: "failed" in states_of(blocked, ev))
    result = await view(stack, blocked)
    assert result["state"] == "failed" and result["error"]["code"] == "unsubscribed"
    assert simulator.requests == []  # failed fast: Twilio never saw it

    await simulator.send_inbound(USER, "START")
    await backend.wait_for(
        lambda ev: any(e.get("subscription", {}).get("state") == "subscribed" for e in ev)
    )
    allowed = await post_message(stack, USER, {"type": "text", "text": "Welcome back"})
    await backend.wait_for(lambda ev: "delivered" in states_of(allowed, ev))
    assert [s["params"]["Body"] for s in simulator.sent] == [["Welcome back"]]


async def test_21610_from_twilio_marks_the_recipient_unsubscribed(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    simulator.opted_out.add(USER)  # they replied STOP to this number before the gateway existed
    first = await post_message(stack, USER, {"type": "text", "text": "Your code is 1234"})
    await backend.wait_for(lambda ev: "failed" in states_of(first, ev))
    assert (await view(stack, first))["error"]["code"] == "21610"
    assert len(simulator.requests) == 1

    second = await post_message(stack, USER, {"type": "text", "text": "Your code is 5678"})
    await backend.wait_for(lambda ev: "failed" in states_of(second, ev))
    result = await view(stack, second)
    assert result["error"]["code"] == "unsubscribed"
    assert "21610" in result["error"]["title"]
    assert len(simulator.requests) == 1  # no second provider call


async def test_callbacks_before_the_answer_reach_the_backend_naming_the_message(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    """A text over 1,600 characters goes as several messages; Twilio reports each one, here
    before answering its send, while the gateway records the send once all are accepted."""
    simulator.statuses_before_answer = True
    text = "Your order has shipped and will arrive tomorrow between 9 and 12. " * 40
    message_id = await post_message(stack, USER, {"type": "text", "text": text})
    await backend.wait_for(lambda ev: "delivered" in states_of(message_id, ev))
    parts = [s["sid"] for s in simulator.sent]
    assert len(parts) >= 2
    assert {c["params"]["MessageSid"] for c in simulator.callbacks} == set(parts)
    await inbox_settled(stack)
    statuses = [e["status"] for e in backend.events if e["type"] == "status"]
    assert [(s["state"], s.get("message_id")) for s in statuses] == [
        ("sent", message_id),
        ("delivered", message_id),
    ]
    # The callbacks kept (those that moved the message on, or were held) all name it.
    reported = await stack.store.db.run(
        lambda tx: tx.all(
            "SELECT external_id, message_id, held_since FROM events"
            " WHERE type = 'status' AND raw_id IS NOT NULL"
        )
    )
    assert (parts[0], message_id, None) in reported
    assert {(m, held) for _sid, m, held in reported} == {(message_id, None)}
    result = await view(stack, message_id)
    assert result["state"] == "delivered" and result["external_ids"] == parts


async def test_statuses_of_a_message_sent_elsewhere_go_without_a_message_id_after_the_hold(
    tmp_path: Path, start_gateway: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    gw = await start_stack(tmp_path, start_gateway, simulator, backend, status_hold_seconds=0.4)
    sid = await simulator.report_foreign_send(USER)
    await inbox_settled(gw)
    assert backend.events == []  # held: it might yet be ours
    events = await backend.wait_for(lambda ev: len(ev) >= 2)
    assert [(e["status"]["state"], e["external_id"]) for e in events] == [
        ("sent", sid),
        ("delivered", sid),
    ]
    assert all("message_id" not in e["status"] for e in events)
    assert '"status_unmatched"' in gw.logs.getvalue()
