"""Outbound HTTP to providers: a whole exchange has a deadline, whatever its pace."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from adapters.base import ProviderRequest, SendError
from gateway.app import build_adapters
from gateway.outbound import http_client, transport

from .conftest import base_config, config_from
from .test_lanes import trickle


async def test_an_answer_that_trickles_in_is_cut_at_the_send_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx's timeouts bound each read: a byte every 100 ms would have held the send, and its
    channel's lane, for ever."""

    app = web.Application()
    app.router.add_post("/{tail:.*}", trickle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    data = base_config(tmp_path)
    data["channels"][0]["api_base_url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
    adapter = build_adapters(config_from(data))["wa-main"]
    monkeypatch.setattr(transport, "SEND_DEADLINE_SECONDS", 0.5)
    request = ProviderRequest("POST", "/v21.0/106540352242922/messages", json={"to": "1"})
    try:
        async with httpx.AsyncClient() as client:
            started = time.monotonic()
            with pytest.raises(SendError) as refused:
                await transport.Transport(client).send(adapter, request)
        assert 0.5 <= time.monotonic() - started < 3
        assert (refused.value.category, refused.value.code) == ("retry", "timeout")
    finally:
        await runner.cleanup()


SMS_CHANNEL = {
    "id": "sms-main",
    "type": "sms",
    "account_sid": "AC" + "a" * 32,
    "auth_token": "twilio-token-0123456789",
    "from_number": "+14155550199",
    "api_base_url": "https://twilio.test",
}


async def test_twilio_sends_go_through_the_gateways_one_client(tmp_path: Path) -> None:
    """The SDK does its I/O through the client it is handed: one pool, one mocking seam."""
    seen: list[httpx.Request] = []

    def twilio(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 2:  # throttled: the answer's Retry-After pauses the channel
            error = {"code": 20429, "message": "Too Many Requests", "status": 429}
            return httpx.Response(429, json=error, headers={"Retry-After": "7"})
        return httpx.Response(201, json={"sid": "SM" + "1" * 32, "status": "queued"})

    adapter = build_adapters(config_from(base_config(tmp_path, channels=[SMS_CHANNEL])))["sms-main"]
    request = ProviderRequest("POST", "/ignored", form={"To": "+16505551234", "Body": "hi"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(twilio)) as client:
        sending = transport.Transport(client)
        assert await sending.send(adapter, request) == "SM" + "1" * 32
        with pytest.raises(SendError) as refused:
            await sending.send(adapter, request)
        await sending.aclose()
    assert (refused.value.category, refused.value.retry_after) == ("retry", 7.0)
    assert 6 < sending.paused_for("sms-main") <= 7
    first = seen[0]
    assert (
        str(first.url) == f"https://twilio.test/2010-04-01/Accounts/{'AC' + 'a' * 32}/Messages.json"
    )
    assert first.headers["Authorization"].startswith("Basic ")
    assert dict(httpx.QueryParams(first.content.decode())) == {
        "To": "+16505551234",
        "Body": "hi",
    }


async def test_the_outbound_client_reuses_connections_and_bounds_them_per_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peers: set[object] = set()
    in_flight = most = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/send"
    monkeypatch.setattr(http_client, "MAX_CONNECTIONS_PER_HOST", 4)
    client = http_client.new_client()
    try:
        answers = await asyncio.gather(*(client.post(url, content=b"{}") for _ in range(40)))
        answers += [await client.post(url, content=b"{}") for _ in range(10)]
    finally:
        await client.aclose()
        await runner.cleanup()
    assert [a.status_code for a in answers] == [200] * 50
    assert [a.json() for a in answers[:1]] == [{"ok": True}]
    # 40 at once over at most 4 connections, and the 10 after them on those same ones.
    assert most <= 4 and len(peers) <= 4


async def test_the_outbound_client_keeps_header_names_and_says_what_failed() -> None:
    seen: list[tuple[str, ...]] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append(tuple(name.decode() for name, _value in request.raw_headers))
        if request.path == "/drop":
            assert request.transport is not None
            request.transport.close()  # the server drops the connection mid-exchange
        if request.path == "/slow":
            await asyncio.sleep(1)
        return web.json_response({"ok": True}, headers={"Retry-After": "3"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client = http_client.new_client()
    try:
        ok = await client.post(f"{base}/ok", content=b"{}", headers={"X-Line-Retry-Key": "k"})
        assert ok.json() == {"ok": True} and ok.headers["retry-after"] == "3"
        assert "X-Line-Retry-Key" in seen[0]  # as written: some servers compare case
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{base}/drop", content=b"{}")
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{base}/slow", content=b"{}", timeout=httpx.Timeout(0.2))
        with pytest.raises(httpx.ConnectError):
            await client.post("http://127.0.0.1:9/refused", content=b"{}")
    finally:
        await client.aclose()
        await runner.cleanup()


async def test_the_direct_path_sends_the_same_request_and_says_what_failed() -> None:
    """`AiohttpTransport.exchange` (the provider sends' path past httpx's objects): header names
    as written, the body as given, the answer's headers read in any case, httpx's errors."""
    seen: list[tuple[tuple[str, ...], bytes]] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append(
            (tuple(name.decode() for name, _value in request.raw_headers), await request.read())
        )
        if request.path == "/drop":
            assert request.transport is not None
            request.transport.close()
        if request.path == "/slow":
            await asyncio.sleep(1)
        return web.json_response({"ok": True}, status=429, headers={"Retry-After": "3"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client = http_client.new_client()
    direct = http_client.direct(client)
    assert direct is not None and http_client.direct(httpx.AsyncClient()) is None
    timeout = client.timeout
    try:
        got = await direct.exchange("POST", f"{base}/ok", {"X-Line-Retry-Key": "k"}, b"{}", timeout)
        assert (got.status, got.content, got.headers["retry-after"]) == (429, b'{"ok": true}', "3")
        assert "X-Line-Retry-Key" in seen[0][0] and seen[0][1] == b"{}"
        with pytest.raises(httpx.RemoteProtocolError):
            await direct.exchange("POST", f"{base}/drop", {}, b"{}", timeout)
        with pytest.raises(httpx.ReadTimeout):
            await direct.exchange("POST", f"{base}/slow", {}, None, httpx.Timeout(0.2))
        with pytest.raises(httpx.ConnectError):
            await direct.exchange("POST", "http://127.0.0.1:9/refused", {}, None, timeout)
    finally:
        await client.aclose()
        await runner.cleanup()
