"""The web channel's socket under abuse: bad and expired tokens, oversized and malformed
frames, floods, too many devices, a thousand idle connections. Each gets its close code and a
reason; memory stays bounded; other users carry on."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.web.tokens import mint
from gateway.http.websocket import (
    BAD_FRAME,
    BAD_TOKEN,
    EXPIRED_TOKEN,
    RATE_LIMITED,
    TOO_MANY_CONNECTIONS,
)

from .conftest import config_from
from .web_support import CHANNEL, TOKEN_SECRET, Device, send, token, web_config

IDLE_CONNECTIONS = 1000
# Both ends of each connection live in this process (the test's client and the gateway):
# what a thousand cost together, per connection, stays under this.
# Measured: about 28 KiB (aiohttp's reader and writer buffers on each end, the handler task).
MAX_BYTES_PER_CONNECTION = 64 * 1024


@pytest.fixture
async def stack(tmp_path: Path, start_gateway: Any) -> Any:
    data = web_config(
        tmp_path,
        max_frame_bytes=4096,
        frames_per_second=5,
        max_connections_per_user=2,
        auth_timeout_seconds=0.5,
    )
    return await start_gateway(config_from(data))


def socket_url(stack: Any) -> str:
    return f"{stack.url.replace('http', 'ws', 1)}/web/{CHANNEL}/socket"


async def closed_with(stack: Any, *frames: str | bytes) -> tuple[int | None, str]:
    async with aiohttp.ClientSession() as session, session.ws_connect(socket_url(stack)) as ws:
        for frame in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        while True:
            message = await ws.receive(timeout=10)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code, str(message.extra or "")


def auth(token_text: str) -> str:
    return json.dumps({"type": "auth", "token": token_text})


async def test_a_forged_token_closes_4001_and_an_expired_one_4002(stack: Any) -> None:
    forged = mint(b"another-secret-0123456789abcdefghij", CHANNEL, "u_1", time.time() + 60)
    code, reason = await closed_with(stack, auth(forged))
    assert (code, reason) == (BAD_TOKEN, "the token's signature does not match")
    expired = mint(TOKEN_SECRET.encode(), CHANNEL, "u_1", time.time() - 1)
    code, reason = await closed_with(stack, auth(expired))
    assert code == EXPIRED_TOKEN and "expired" in reason
    code, reason = await closed_with(stack, json.dumps({"type": "message", "id": "x",
                                                       "content": {"type": "text", "text": "hi"}}))  # fmt: skip
    assert (code, reason) == (BAD_TOKEN, "the first frame must be an auth frame")
    code, reason = await closed_with(stack)  # says nothing at all
    assert (code, reason) == (BAD_TOKEN, "no auth frame in time")
    assert forged not in stack.logs.getvalue() and expired not in stack.logs.getvalue()


async def test_bad_frames_close_with_a_reason_naming_the_fault(stack: Any) -> None:
    good = auth(await token(stack.url, "u_2"))
    cases: list[tuple[tuple[str | bytes, ...], int, str]] = [
        ((good, "not json"), BAD_FRAME, "frame: Invalid JSON"),
        ((good, '{"type": "shout"}'), BAD_FRAME, "type: Input tag 'shout'"),
        ((good, '{"type": "ack", "event_id": "x"}'), BAD_FRAME, "ack.event_id:"),
        ((good, b"\x00\x01"), BAD_FRAME, "frames are JSON text"),
        ((good, good), BAD_FRAME, "type: already authenticated"),
        ((good, "x" * 5000), 1009, ""),  # past max_frame_bytes: aiohttp's own close
    ]
    for frames, code, reason in cases:
        closed = await closed_with(stack, *frames)
        assert closed[0] == code and closed[1].startswith(reason), (frames[-1], closed)


async def test_a_flood_past_the_rate_closes_4008_and_others_carry_on(stack: Any) -> None:
    calm = await Device.connect(stack.url, await token(stack.url, "u_calm"))
    flood = await Device.connect(stack.url, await token(stack.url, "u_flood"))
    for _ in range(30):  # 5 a second, bursts of 10
        await flood.send({"type": "typing", "state": "on"})
    code, reason = await flood.closed()
    assert code == RATE_LIMITED and "frames_per_second" in reason
    await send(stack.url, "u_calm", {"type": "text", "text": "still here"})
    assert (await calm.until("message"))["content"]["text"] == "still here"
    await calm.close()
    await flood.close()


async def test_a_device_past_the_per_user_limit_closes_4009(stack: Any) -> None:
    text = await token(stack.url, "u_3")
    first, second = await Device.connect(stack.url, text), await Device.connect(stack.url, text)
    third = await Device.connect(stack.url, text, ready=False)
    code, reason = await third.closed()
    assert code == TOO_MANY_CONNECTIONS and "max_connections_per_user: 2" in reason
    await second.close()
    await asyncio.sleep(0.1)
    again = await Device.connect(stack.url, text)  # room again once one has left
    for device in (first, again, third):
        await device.close()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def test_a_thousand_idle_connections_cost_bounded_memory(
    tmp_path: Path, start_gateway: Any
) -> None:
    stack = await start_gateway(config_from(web_config(tmp_path)))
    users = ("u_busy", *(f"u_idle{i}" for i in range(IDLE_CONNECTIONS)))
    later = time.time() + 600
    text = {user: mint(TOKEN_SECRET.encode(), CHANNEL, user, later) for user in users}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def idle(user: str) -> aiohttp.ClientWebSocketResponse:
            ws = await session.ws_connect(socket_url(stack))
            await ws.send_str(auth(text[user]))
            ready = json.loads((await ws.receive(timeout=30)).data)
            assert ready["type"] == "ready"
            return ws

        # Warm up the code paths (and the allocator) before measuring.
        warm = await asyncio.gather(*(idle(f"u_idle{i}") for i in range(10)))
        before = rss_bytes()
        sockets = []
        for start in range(10, IDLE_CONNECTIONS, 100):
            batch = range(start, min(start + 100, IDLE_CONNECTIONS))
            sockets += await asyncio.gather(*(idle(f"u_idle{i}") for i in batch))
        grown = rss_bytes() - before
        per_connection = grown / len(sockets)
        print(f"RSS per idle connection (both ends): {per_connection / 1024:.1f} KiB")
        assert stack.gateway.web.connections == IDLE_CONNECTIONS
        assert per_connection < MAX_BYTES_PER_CONNECTION
        busy = await Device.connect(stack.url, text["u_busy"])
        started = time.perf_counter()
        await send(stack.url, "u_busy", {"type": "text", "text": "among the idle"})
        assert (await busy.until("message"))["content"]["text"] == "among the idle"
        assert time.perf_counter() - started < 5
        await busy.close()
        await asyncio.gather(*(ws.close() for ws in [*warm, *sockets]))


async def test_a_socket_outlives_the_header_deadline_of_http_requests(
    tmp_path: Path, start_gateway: Any
) -> None:
    """The deadline for slow request headers (gateway/headers.py) once cut every socket."""
    data = web_config(tmp_path)
    data["server"] = {"header_timeout_seconds": 0.3}
    stack = await start_gateway(config_from(data))
    device = await Device.connect(stack.url, await token(stack.url, "u_long"))
    for _ in range(3):
        await asyncio.sleep(0.4)
        await device.send({"type": "typing", "state": "on"})  # bytes after the headers
    await send(stack.url, "u_long", {"type": "text", "text": "still connected"})
    assert (await device.until("message"))["content"]["text"] == "still connected"
    assert not device.ws.closed
    await device.close()
