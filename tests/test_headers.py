"""Request headers have a deadline (server.header_timeout_seconds), bodies and idle
keep-alive connections do not share it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .conftest import base_config, config_from, hub_sign, webhook

BODY = webhook("wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "Hello")


def _request(body: bytes) -> bytes:
    head = (
        "POST /webhooks/wa-main HTTP/1.1\r\nHost: gateway\r\n"
        f"Content-Type: application/json\r\nX-Hub-Signature-256: {hub_sign(body)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    where = urlsplit(url)
    return await asyncio.open_connection(where.hostname, where.port)


async def _drip(writer: asyncio.StreamWriter, data: bytes, pause: float) -> None:
    """Send `data` a byte at a time, until the server closes the connection."""
    for byte in data:
        if writer.is_closing():
            return
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(pause)


async def _dripped_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> float:
    """Drip a request's headers (~20 s of them); seconds until the gateway closed the line."""
    drip = asyncio.create_task(_drip(writer, _request(BODY), 0.05))
    started = time.monotonic()
    try:
        async with asyncio.timeout(5):
            while await reader.read(4096):
                pass
    except ConnectionError:
        pass
    finally:
        drip.cancel()
        writer.close()
    return time.monotonic() - started


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    config = base_config(tmp_path, server={"header_timeout_seconds": 0.5})
    return await start_gateway(config_from(config))


async def test_headers_sent_a_byte_at_a_time_get_the_connection_closed(gw: Any) -> None:
    reader, writer = await _connect(gw.url)
    elapsed = await _dripped_until_closed(reader, writer)
    assert 0.4 <= elapsed < 2.5
    assert '"event": "header_timeout"' in gw.logs.getvalue()
    rows = await gw.gateway.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM inbox"))
    assert rows == (0,)


async def test_the_deadline_covers_each_request_of_a_kept_alive_connection(gw: Any) -> None:
    """A quick first request must not buy a slow second one more time."""
    reader, writer = await _connect(gw.url)
    writer.write(_request(BODY))
    async with asyncio.timeout(5):
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    await asyncio.sleep(0.8)  # idle past the header deadline: a pooled connection stays open
    elapsed = await _dripped_until_closed(reader, writer)
    assert elapsed < 2.5


async def test_a_request_whose_headers_arrive_in_time_is_answered(gw: Any) -> None:
    """Headers in a few parts within the deadline, then a body slower than the header deadline
    (bodies have their own): stored and answered, the connection kept."""
    reader, writer = await _connect(gw.url)
    request = _request(BODY)
    head_end = request.index(b"\r\n\r\n") + 4
    for start in range(0, head_end, 40):
        writer.write(request[start : min(start + 40, head_end)])
        await asyncio.sleep(0.02)
    writer.write(request[head_end : head_end + 10])
    await asyncio.sleep(0.8)
    writer.write(request[head_end + 10 :])
    async with asyncio.timeout(5):
        status = await reader.readline()
    assert status.startswith(b"HTTP/1.1 200")
    assert not writer.is_closing()
    writer.close()
