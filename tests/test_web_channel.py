"""The web channel end to end over its socket (aiohttp client): tokens, native content, events
back to the backend, acks and reads as statuses, several devices, resume without loss or
doubles, the offline wait failing a message."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.base import SendError
from gateway.schema.content import TextContent
from gateway.simulator.backend import BackendRecorder
from gateway.store.web_log import WebLog

from .conftest import assert_no_secrets, config_from, with_backend
from .golden import CONTEXT
from .web_support import AUTH, CHANNEL, Device, send, token, web_config

CAROUSEL = {
    "type": "carousel",
    "items": [
        {
            "title": "Margherita",
            "description": "Tomato, mozzarella, basil",
            "media": {"url": "https://example.com/margherita.jpg"},
            "actions": [{"type": "postback", "title": "Order", "payload": "ORDER_MARGHERITA"}],
        },
        {
            "title": "Diavola",
            "actions": [{"type": "postback", "title": "Order", "payload": "ORDER_DIAVOLA"}],
        },
    ],
}
FORM = {
    "type": "form",
    "title": "Delivery details",
    "fields": [
        {"name": "address", "label": "Address"},
        {"name": "size", "label": "Size", "type": "select",
         "options": [{"value": "S", "title": "Small"}, {"value": "L", "title": "Large"}]},
    ],
}  # fmt: skip


@pytest.fixture
async def stack(tmp_path: Path, start_gateway: Any, backend: BackendRecorder) -> Any:
    data = with_backend(web_config(tmp_path, offline_wait_seconds=60), backend)
    return await start_gateway(config_from(data))


async def message_state(url: str, message_id: str, state: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            view: dict[str, Any] = (
                await client.get(f"{url}/v1/messages/{message_id}", headers=AUTH)
            ).json()
            if view["state"] == state:
                return view
            await asyncio.sleep(0.05)
    raise AssertionError(f"{message_id} never reached {state}: {view}")


async def test_content_arrives_natively_and_taps_forms_and_text_reach_the_backend(
    stack: Any, backend: BackendRecorder
) -> None:
    device = await Device.connect(stack.url, await token(stack.url, "u_123"))
    carousel_id = await send(stack.url, "u_123", CAROUSEL)
    frame = await device.until("message")
    assert frame["message_id"] == carousel_id and frame["event_id"] == 1
    assert frame["content"]["type"] == "carousel"  # as sent: nothing downgraded
    assert [i["title"] for i in frame["content"]["items"]] == ["Margherita", "Diavola"]

    await device.send({"type": "postback", "id": "tap-1", "payload": "ORDER_DIAVOLA",
                       "title": "Order", "reply_to": frame["external_id"]})  # fmt: skip
    assert (await device.until("accepted"))["id"] == "tap-1"
    form_id = await send(stack.url, "u_123", FORM)
    form = await device.until("message")
    assert form["content"]["type"] == "form" and len(form["content"]["fields"]) == 2
    await device.send({"type": "form_response", "id": "form-1", "form_id": form_id,
                       "values": {"address": "1 Main St", "size": "L"}})  # fmt: skip
    await device.until("accepted")
    await device.say("thanks!")
    await device.send({"type": "typing", "state": "on"})

    events = await backend.wait_for(lambda e: len([x for x in e if x["type"] != "status"]) >= 4)
    postback = next(e for e in events if e["type"] == "postback")
    assert postback["postback"] == {"payload": "ORDER_DIAVOLA", "title": "Order",
                                    "reply_to": frame["external_id"]}  # fmt: skip
    assert postback["sender"]["id"] == "u_123" and postback["channel"] == {
        "id": CHANNEL,
        "type": "web",
    }
    messages = [e["message"]["content"] for e in events if e["type"] == "message"]
    assert {"type": "form_response", "form_id": form_id,
            "values": {"address": "1 Main St", "size": "L"}, "quick_replies": []} in messages  # fmt: skip
    assert any(m.get("text") == "thanks!" for m in messages)
    typing = next(e for e in events if e["type"] == "system")
    assert typing["system"]["kind"] == "typing" and typing["system"]["text"] == "on"
    await device.close()
    assert_no_secrets(stack.logs.getvalue(), stack.secrets())


async def test_ack_and_read_become_delivered_and_read_statuses(
    stack: Any, backend: BackendRecorder
) -> None:
    device = await Device.connect(stack.url, await token(stack.url, "u_1"))
    first = await send(stack.url, "u_1", {"type": "text", "text": "one"})
    second = await send(stack.url, "u_1", {"type": "text", "text": "two"})
    one, two = await device.until("message"), await device.until("message")
    await device.send({"type": "ack", "event_id": one["event_id"]})
    await message_state(stack.url, first, "delivered")
    await device.send({"type": "read", "event_id": two["event_id"]})  # read up to the second
    await message_state(stack.url, first, "read")
    await message_state(stack.url, second, "read")
    statuses = await backend.wait_for(
        lambda e: (
            len([x for x in e if x["type"] == "status" and x["status"]["state"] == "read"]) == 2
        )
    )
    second_states = [s["status"]["state"] for s in statuses
                     if s["type"] == "status" and s["status"]["message_id"] == second]  # fmt: skip
    assert second_states == ["sent", "delivered", "read"]
    await device.close()


async def test_every_device_of_a_user_gets_every_message_and_backend_actions(
    stack: Any,
) -> None:
    phone = await Device.connect(stack.url, await token(stack.url, "u_2"))
    laptop = await Device.connect(stack.url, await token(stack.url, "u_2"))
    other = await Device.connect(stack.url, await token(stack.url, "u_3"))
    await send(stack.url, "u_2", {"type": "text", "text": "hello"})
    assert (await phone.until("message"))["content"]["text"] == "hello"
    assert (await laptop.until("message"))["content"]["text"] == "hello"
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{stack.url}/v1/web/actions", headers=AUTH,
                                   json={"channel": CHANNEL, "user": "u_2", "action": "typing_on"})  # fmt: skip
        assert answer.status_code == 202 and answer.json() == {"devices": 2}
        read = await client.post(f"{stack.url}/v1/web/actions", headers=AUTH,
                                 json={"channel": CHANNEL, "user": "u_2", "action": "read",
                                       "external_id": "m-1"})  # fmt: skip
        assert read.status_code == 202
        missing = await client.post(f"{stack.url}/v1/web/actions", headers=AUTH,
                                    json={"channel": CHANNEL, "user": "u_2", "action": "read"})  # fmt: skip
        assert missing.status_code == 422 and "external_id" in missing.text
    for device in (phone, laptop):
        assert await device.until("typing") == {"type": "typing", "state": "on"}
        assert await device.until("read") == {"type": "read", "external_id": "m-1"}
    with pytest.raises(TimeoutError):
        await other.next(timeout=0.3)  # another user hears nothing of it
    for device in (phone, laptop, other):
        await device.close()


async def test_a_reconnecting_device_resumes_after_its_last_event_nothing_lost_or_doubled(
    stack: Any,
) -> None:
    device = await Device.connect(stack.url, await token(stack.url, "u_4"))
    await send(stack.url, "u_4", {"type": "text", "text": "m1"})
    seen = (await device.until("message"))["event_id"]
    await device.close()
    for text in ("m2", "m3", "m4"):  # while the user is offline
        await send(stack.url, "u_4", {"type": "text", "text": text})
    await asyncio.sleep(0.5)
    again = await Device.connect(stack.url, await token(stack.url, "u_4"), last_event_id=seen)
    await send(stack.url, "u_4", {"type": "text", "text": "m5"})
    got = [await again.until("message") for _ in range(4)]
    assert [m["content"]["text"] for m in got] == ["m2", "m3", "m4", "m5"]
    assert [m["event_id"] for m in got] == [2, 3, 4, 5]
    with pytest.raises(TimeoutError):
        await again.next(timeout=0.3)
    fresh = await Device.connect(stack.url, await token(stack.url, "u_4"))  # a new device
    await asyncio.sleep(0.3)
    assert [m["event_id"] for m in fresh.messages()] == [1, 2, 3, 4, 5]
    await again.close()
    await fresh.close()


async def test_a_resent_frame_is_stored_once(stack: Any, backend: BackendRecorder) -> None:
    device = await Device.connect(stack.url, await token(stack.url, "u_5"))
    frame = {"type": "message", "id": "c-1", "content": {"type": "text", "text": "once"}}
    await device.send(frame)
    await device.until("accepted")
    await device.send(frame)  # the app did not see `accepted`, reconnected, sent again
    await device.until("accepted")
    await device.say("after")
    await backend.wait_for(
        lambda e: any(x.get("message", {}).get("content", {}).get("text") == "after" for x in e)
    )
    texts = [e["message"]["content"]["text"] for e in backend.of_type("message")]
    assert texts == ["once", "after"]
    await device.close()


async def test_a_message_no_device_acknowledges_in_time_fails_with_a_reason(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder
) -> None:
    data = with_backend(web_config(tmp_path, offline_wait_seconds=0.5), backend)
    stack = await start_gateway(config_from(data))
    message_id = await send(stack.url, "u_offline", {"type": "text", "text": "are you there?"})
    view = await message_state(stack.url, message_id, "failed")
    assert view["error"]["code"] == "offline_timeout"
    events = await backend.wait_for(
        lambda e: any(x["type"] == "status" and x["status"]["state"] == "failed" for x in e)
    )
    failed = next(e for e in events if e["type"] == "status" and e["status"]["state"] == "failed")
    assert failed["status"]["message_id"] == message_id
    assert "offline_wait_seconds" in failed["status"]["error"]["title"]
    # It is not delivered later: failover may have sent it on another channel.
    device = await Device.connect(stack.url, await token(stack.url, "u_offline"))
    assert device.messages() == []
    await device.close()


async def test_tokens_are_minted_only_for_web_channels_and_users_of_the_form(stack: Any) -> None:
    async with httpx.AsyncClient() as client:
        wrong = await client.post(f"{stack.url}/v1/web/tokens", headers=AUTH,
                                  json={"channel": "nope", "user": "u"})  # fmt: skip
        assert wrong.status_code == 422 and "channel" in wrong.text
        bad_user = await client.post(f"{stack.url}/v1/web/tokens", headers=AUTH,
                                     json={"channel": CHANNEL, "user": "a b"})  # fmt: skip
        assert bad_user.status_code == 422 and "user" in bad_user.text
        unauthenticated = await client.post(f"{stack.url}/v1/web/tokens",
                                            json={"channel": CHANNEL, "user": "u"})  # fmt: skip
        assert unauthenticated.status_code == 401


async def test_a_device_ahead_of_the_log_resumes_from_its_end(stack: Any) -> None:
    device = await Device.connect(stack.url, await token(stack.url, "u_6"), last_event_id=500)
    assert device.frames[-1] == {"type": "ready", "last_event_id": 0}
    await send(stack.url, "u_6", {"type": "text", "text": "first"})
    assert (await device.until("message"))["event_id"] == 1
    await device.close()


async def test_what_another_gateway_process_logs_reaches_the_devices_here(stack: Any) -> None:
    """Several processes on one PostgreSQL store: the sender may run in another process. Its
    entry is written to the log only; the sweeper finds it for the devices connected here."""
    device = await Device.connect(stack.url, await token(stack.url, "u_7"))
    elsewhere = WebLog(stack.store.db)  # another process's writes: no push here
    await elsewhere.append(CHANNEL, "u_7", "msg_elsewhere", 0, '{"type":"text","text":"x"}', 2e9)
    frame = await device.until("message", timeout=5)
    assert (frame["event_id"], frame["message_id"]) == (1, "msg_elsewhere")
    await device.close()


async def test_a_preview_shows_a_form_as_the_one_message_the_web_channel_sends(
    stack: Any,
) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{stack.url}/v1/preview", headers=AUTH,
                                   json={"content": FORM, "channels": [CHANNEL]})  # fmt: skip
    assert answer.status_code == 200, answer.text
    [preview] = answer.json()["previews"]
    assert preview.get("downgrades", []) == [] and "form" not in preview
    [request] = preview["requests"]
    assert request["json"]["content"]["type"] == "form"
    assert len(request["json"]["content"]["fields"]) == 2


async def test_a_log_the_store_cannot_write_is_a_send_to_retry(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = stack.gateway.web

    async def locked(*_args: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(hub.log, "append", locked)
    [request] = hub.channel(CHANNEL).render(TextContent(text="hi"), CONTEXT)
    with pytest.raises(SendError) as refused:
        await hub.deliver(CHANNEL, request)
    assert (refused.value.category, refused.value.code) == ("retry", "store_unavailable")


async def test_after_a_reload_the_new_secret_signs_and_sends_still_reach_devices(
    tmp_path: Path, start_gateway: Any
) -> None:
    stack = await start_gateway(config_from(web_config(tmp_path)))
    old = await token(stack.url, "u_8")
    rotated = web_config(tmp_path, token_secret="rotated-web-secret-0123456789abcdefgh")
    assert await stack.gateway.reload(config_from(rotated))
    refused = await Device.connect(stack.url, old, ready=False)
    assert (await refused.closed())[0] == 4001  # minted under the old secret
    device = await Device.connect(stack.url, await token(stack.url, "u_8"))
    await send(stack.url, "u_8", {"type": "text", "text": "after the reload"})
    assert (await device.until("message"))["content"]["text"] == "after the reload"
    await refused.close()
    await device.close()
