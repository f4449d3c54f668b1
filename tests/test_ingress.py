"""Webhook ingress: bad input gets its documented status and nothing is stored."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiohttp import web

from adapters import ADAPTERS
from adapters.base import InboundRequest
from gateway.app import Gateway
from gateway.http.ingress import Ingress
from gateway.http.request_body import BodyReader
from gateway.preview import placeholder_config
from gateway.store import Store

from .conftest import (
    API_KEY,
    WA,
    assert_no_secrets,
    base_config,
    config_from,
    eventually,
    hub_sign,
    post_whatsapp,
    webhook,
)

BODY = webhook(
    "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
    "Does it come in another color?",
)


async def inbox_count(gateway: Any) -> int:
    rows = await gateway.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM inbox"))
    return int(rows[0])


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    return await start_gateway(config_from(base_config(tmp_path, server={"max_body_bytes": 4096})))


CASES = [
    (
        "forged signature",
        BODY,
        {"X-Hub-Signature-256": hub_sign(BODY, "not-the-secret")},
        403,
        "invalid_signature",
    ),
    ("missing signature", BODY, {}, 401, "missing_signature"),
    (
        "signature over other body",
        BODY,
        {"X-Hub-Signature-256": hub_sign(BODY + b" ")},
        403,
        "invalid_signature",
    ),
    ("malformed JSON", b'{"object": "whatsapp_business_account", ', None, 400, "malformed_payload"),
    (
        "JSON nested too deeply",
        b"[" * 1500 + b"]" * 1500,  # orjson and the standard library both give up
        None,
        400,
        "malformed_payload",
    ),
    # aiohttp decodes Content-Encoding before the body reaches the handler.
    ("broken gzip", b"not gzip", {"Content-Encoding": "gzip"}, 400, "unreadable_body"),
    ("wrong content type", BODY, {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("oversized body", b"{" + b" " * 5000 + b"}", None, 413, "body_too_large"),
]


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_webhooks_are_rejected_and_not_stored(
    gw: Any, name: str, body: bytes, headers: dict[str, str] | None, status: int, code: str
) -> None:
    sent_headers = {"Content-Type": "application/json", "X-Hub-Signature-256": hub_sign(body)}
    sent_headers.update(headers or {})
    if headers == {}:
        del sent_headers["X-Hub-Signature-256"]
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/webhooks/wa-main", content=body, headers=sent_headers
        )
    assert response.status_code == status
    assert response.json()["error"] == code
    assert await inbox_count(gw) == 0
    assert_no_secrets(gw.logs.getvalue(), gw.secrets())


async def test_unknown_channel_is_404(gw: Any) -> None:
    response = await post_whatsapp(gw.url, BODY, channel_id="nope")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_channel"


async def test_valid_webhook_is_stored_once_and_acknowledged(gw: Any) -> None:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": hub_sign(BODY)}
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            response = await client.post(
                f"{gw.url}/webhooks/wa-main", content=BODY, headers=headers
            )
            assert response.status_code == 200
    assert await inbox_count(gw) == 1
    row = await gw.store.db.run(lambda tx: tx.one("SELECT body, url FROM inbox"))
    assert bytes(row[0]) == BODY  # the raw bytes, exactly as signed
    assert row[1] == "https://gateway.example.com/webhooks/wa-main"


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        (
            {
                "hub.mode": "subscribe",
                "hub.verify_token": WA["verify_token"],
                "hub.challenge": "1158201444",
            },
            200,
            "1158201444",
        ),
        (
            {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1158201444"},
            403,
            None,
        ),
        ({"hub.challenge": "1158201444"}, 403, None),
    ],
)
async def test_meta_verification_handshake(
    gw: Any, query: dict[str, str], status: int, body: str | None
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{gw.url}/webhooks/wa-main", params=query)
    assert response.status_code == status
    if body is not None:
        assert response.text == body


def _bare_ingress() -> Ingress:
    """An ingress with no store and no channel, for what it measures of arrivals."""
    return Ingress(
        cast(Store, None),
        {},
        "http://gw",
        1024,
        lambda: None,
        BodyReader(),
        busy_rate=50,
        max_bytes_awaiting_store=1 << 20,
    )


def test_busy_follows_the_configured_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above `server.busy_webhooks_per_second` the normaliser is paced; below it, not."""
    clock = [1000.0]
    monkeypatch.setattr("gateway.http.ingress.time.monotonic", lambda: clock[0])
    ingress = _bare_ingress()
    ingress.busy()  # the first question only marks the start
    clock[0] += 1.0
    ingress.received += 40
    assert not ingress.busy()
    clock[0] += 1.0
    ingress.received += 60
    assert ingress.busy()
    clock[0] += 2.0
    ingress.received += 90  # 45 a second over the two seconds since the last question
    assert not ingress.busy()


def test_each_asker_measures_its_own_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retention asks too: its questions must not shorten the normaliser's window."""
    clock = [1000.0]
    monkeypatch.setattr("gateway.http.ingress.time.monotonic", lambda: clock[0])
    ingress = _bare_ingress()
    other = ingress.busy_meter()
    clock[0] += 1.0
    ingress.received += 40
    assert not other()  # 40 a second
    clock[0] += 0.01
    ingress.received += 2
    assert other()  # 200 a second over its own last 10 ms
    assert not ingress.busy()  # 42 over the normaliser's 1.01 s


async def test_the_busy_rate_comes_from_the_config(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["server"] = {"busy_webhooks_per_second": 5000}
    gateway = Gateway(config_from(data))
    try:
        assert gateway.ingress.busy_rate == 5000
    finally:
        await gateway.http.aclose()


async def test_a_store_failure_is_503_so_the_provider_retries(
    gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    async def full(*_args: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(gw.store, "append_inbox", full)
    response = await post_whatsapp(gw.url, BODY)
    assert response.status_code == 503
    assert response.json()["error"] == "store_unavailable"
    assert '"webhook_store_failed"' in gw.logs.getvalue()
    assert "database or disk is full" in gw.logs.getvalue()
    monkeypatch.undo()
    assert await inbox_count(gw.gateway) == 0


async def test_a_shape_the_adapter_trips_on_is_kept_raw_and_failed_with_the_reason(
    gw: Any,
) -> None:
    """Raw first: an odd (but signed) shape that trips the adapter costs a replay, never the
    request, and the failed row names the field. The key reads what it can (the typed
    admission skips what it cannot key), so a redelivery is still recognised."""
    from .conftest import inbox_settled

    odd = (
        b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":'
        b'"messages","value":{"metadata":"not an object","errors":[{"code":1}]}}]}]}'
    )
    response = await post_whatsapp(gw.url, odd)
    assert response.status_code == 200
    again = await post_whatsapp(gw.url, odd)  # a redelivery: the same key
    assert again.status_code == 200 and await inbox_count(gw) == 1
    await inbox_settled(gw)
    [(_row, channel, reason)] = await gw.store.inbox_rows("failed")
    assert channel == "wa-main"
    assert (
        reason
        == "invalid payload: entry[0].changes[0].value.metadata: expected an object, got a string"
    )


async def test_a_body_whose_key_the_adapter_trips_on_is_kept_under_its_hash(
    gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw first, even past an adapter bug in reading the key: the body is stored under its
    hash (a redelivery is still one row) and the failure is logged, for a fix and a replay."""
    adapter = gw.gateway.adapters["wa-main"]

    def broken(body: bytes) -> Any:
        raise TypeError("an adapter bug")

    monkeypatch.setattr(adapter, "admission", broken)
    monkeypatch.setattr(adapter, "dedupe_key", broken)
    assert (await post_whatsapp(gw.url, BODY)).status_code == 200
    assert '"dedupe_key_failed"' in gw.logs.getvalue()
    assert (await post_whatsapp(gw.url, BODY)).status_code == 200
    assert await inbox_count(gw) == 1


# Header bytes that are not UTF-8 (obs-text, which HTTP allows): aiohttp hands them over as
# surrogate escapes, which `.encode()` and orjson refuse. A proxy adding a Latin-1 header to a
# genuine webhook, or a forger sending such a signature, once got a 500 with a traceback.
LATIN_1 = b"caf\xe9"


async def test_a_signed_webhook_with_a_header_that_is_not_utf8_is_stored_with_it(gw: Any) -> None:
    headers = [
        (b"Content-Type", b"application/json"),
        (b"X-Hub-Signature-256", hub_sign(BODY).encode()),
        (b"X-Forwarded-Note", LATIN_1),
    ]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/webhooks/wa-main", content=BODY, headers=headers)
    assert response.status_code == 200
    row = await gw.store.db.run(lambda tx: tx.one("SELECT body, headers FROM inbox"))
    assert bytes(row[0]) == BODY
    kept = json.loads(row[1])  # the bytes stay recoverable from the stored headers
    assert kept["X-Forwarded-Note"].encode("utf-8", "surrogateescape") == LATIN_1


async def test_a_signature_that_is_not_utf8_is_403_not_a_crash(gw: Any) -> None:
    headers = [(b"Content-Type", b"application/json"), (b"X-Hub-Signature-256", b"sha256=\xff\xfe")]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/webhooks/wa-main", content=BODY, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "invalid_signature"
    assert await inbox_count(gw) == 0


@pytest.mark.parametrize("channel_type", sorted(ADAPTERS))
def test_every_adapter_refuses_a_signature_that_is_not_utf8(channel_type: str) -> None:
    adapter_type = ADAPTERS[channel_type]
    adapter = adapter_type(placeholder_config(adapter_type.config_model, channel_type))
    body = b"Body=hello&From=%2B14155550100" if channel_type == "sms" else b"{}"
    forged = "sha256=" + LATIN_1.decode("utf-8", "surrogateescape")
    url = "https://gateway.example.com/webhooks/x"
    if adapter.signature_query is not None:  # signed in the query string (WeChat), as bytes
        url += f"?{adapter.signature_query}=sha256%3D%FF%FE&timestamp=1&nonce=%FF"
        headers = {}
    else:
        headers = {adapter.signature_header: forged}
    request = InboundRequest("POST", url, headers, body)
    assert adapter.verify(request) is False


async def test_api_headers_that_are_not_utf8_get_their_documented_answers(gw: Any) -> None:
    message = {
        "to": {"channel": "wa-main", "id": "16505551234"},
        "content": {"type": "text", "text": "hi"},
    }
    async with httpx.AsyncClient(base_url=gw.url) as client:
        forged = await client.post(
            "/v1/messages", json=message, headers=[(b"Authorization", b"Bearer " + LATIN_1)]
        )
        assert forged.status_code == 401
        assert forged.json()["error"] == "unauthorized"
        odd_key = await client.post(
            "/v1/messages",
            json=message,
            headers=[
                (b"Authorization", f"Bearer {API_KEY}".encode()),
                (b"Idempotency-Key", LATIN_1),
            ],
        )
        assert odd_key.status_code == 400
        assert odd_key.json()["error"] == "invalid_idempotency_key"


async def test_a_graceful_shutdown_answers_a_half_read_body_503_at_once(tmp_path: Path) -> None:
    """aiohttp drops the bytes of closing connections (aio-libs/aiohttp#2298): a webhook whose
    body was still arriving when a shutdown began waited for its client to give up, and the
    shutdown waited for it. It is answered 503 now (the provider retries), nothing stored."""
    gateway = Gateway(config_from(base_config(tmp_path)))
    # How long aiohttp's shutdown waits for handlers (its default): the time a shutdown
    # waiting for the client took. Answered at once, it takes a small part of it, however
    # loaded the machine (a 2 s guess was a latency threshold).
    shutdown_timeout = 60.0
    runner = web.AppRunner(
        gateway.application(), access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /webhooks/wa-main HTTP/1.1\r\nHost: gateway.example.com\r\n"
        f"Content-Type: application/json\r\nX-Hub-Signature-256: {hub_sign(BODY)}\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    )
    writer.write(head.encode() + BODY[:20])  # the rest of the body is still on its way
    await writer.drain()
    async with asyncio.timeout(5):
        while not gateway.bodies._waiting:
            await asyncio.sleep(0.01)
    started = time.monotonic()
    shutdown = asyncio.create_task(runner.cleanup())
    await asyncio.sleep(0.05)
    writer.write(BODY[20:])  # too late: the connection no longer reads
    async with asyncio.timeout(shutdown_timeout / 2):
        answer = await reader.read()
        await shutdown
    assert time.monotonic() - started < shutdown_timeout / 2
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 503 Service Unavailable"
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "shutting_down"
    writer.close()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        assert db.execute("SELECT COUNT(*) FROM inbox").fetchone() == (0,)


async def _send_in_parts(
    url: str, path: str, headers: dict[str, str], body: bytes, cut: int
) -> Any:
    """A raw connection that sends the head and `body[:cut]`, for bodies that stall mid-way."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:cut]
    )
    await writer.drain()
    return reader, writer


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status_line, *lines = head.strip().split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def test_a_body_that_stalls_is_answered_408_and_its_connection_closed(
    tmp_path: Path, start_gateway: Any
) -> None:
    """Nothing else ends a handler waiting for the rest of a body: each stalled request held a
    connection and a handler for ever. Past server.body_timeout_seconds it gets 408, nothing is
    stored, and the connection is closed (its remaining bytes could not be told from a request)."""
    gw = await start_gateway(
        config_from(base_config(tmp_path, server={"body_timeout_seconds": 0.3}))
    )
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": hub_sign(BODY)}
    reader, writer = await _send_in_parts(gw.url, "/webhooks/wa-main", headers, BODY, 20)
    started = time.monotonic()
    async with asyncio.timeout(5):
        status, answer_headers, answer = await _read_answer(reader)
    assert 0.3 <= time.monotonic() - started < 3
    assert status == 408
    assert json.loads(answer) == {
        "error": "body_timeout",
        "message": "the body did not arrive within 0.3 s",
    }
    assert answer_headers["connection"] == "close"
    assert not gw.gateway.bodies._waiting
    assert await inbox_count(gw.gateway) == 0
    assert '"reason": "body_timeout"' in gw.logs.getvalue()
    writer.close()


async def test_an_api_body_that_stalls_is_answered_408(tmp_path: Path, start_gateway: Any) -> None:
    gw = await start_gateway(
        config_from(base_config(tmp_path, server={"body_timeout_seconds": 0.3}))
    )
    body = json.dumps({"to": {"channel": "wa-main", "id": "16505551234"}, "content": {}}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    reader, writer = await _send_in_parts(gw.url, "/v1/messages", headers, body, 10)
    async with asyncio.timeout(5):
        status, answer_headers, answer = await _read_answer(reader)
    assert status == 408
    assert json.loads(answer)["error"] == "body_timeout"
    assert answer_headers["connection"] == "close"
    rows = await gw.gateway.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM outbox"))
    assert rows == (0,)
    writer.close()


async def test_a_body_that_arrives_in_parts_within_the_timeout_is_stored(
    tmp_path: Path, start_gateway: Any
) -> None:
    gw = await start_gateway(config_from(base_config(tmp_path, server={"body_timeout_seconds": 5})))
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": hub_sign(BODY)}
    reader, writer = await _send_in_parts(gw.url, "/webhooks/wa-main", headers, BODY, 20)
    # The handler waits for the rest, with its timer armed (a fixed 0.2 s was not always
    # enough for the handler to get there on a loaded machine).
    await eventually(lambda: gw.gateway.bodies._waiting)
    writer.write(BODY[20:])
    async with asyncio.timeout(5):
        status, answer_headers, _ = await _read_answer(reader)
    assert status == 200
    assert answer_headers.get("connection") != "close"
    assert await inbox_count(gw.gateway) == 1
    writer.close()


async def test_bodies_past_the_store_budget_get_503_until_the_store_catches_up(
    tmp_path: Path, start_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that is slow or stuck must not make bodies pile up in memory until the process
    dies: past server.max_bytes_awaiting_store they are refused (the provider retries)."""
    bodies = [webhook(f"wamid.BUDGET{n}", "hello") for n in range(3)]
    size = len(bodies[0])
    assert {len(b) for b in bodies} == {size}
    budget = 2 * size + 10  # two webhooks may wait, not three
    gw = await start_gateway(
        config_from(base_config(tmp_path, server={"max_bytes_awaiting_store": budget}))
    )
    stuck = asyncio.Event()
    append = gw.gateway.store.append_inbox

    async def slow_append(*args: Any) -> int | None:
        await stuck.wait()
        return await append(*args)

    monkeypatch.setattr(gw.gateway.store, "append_inbox", slow_append)
    waiting = [asyncio.create_task(post_whatsapp(gw.url, body)) for body in bodies[:2]]
    async with asyncio.timeout(5):
        while gw.gateway.ingress.bytes_awaiting_store < 2 * size:
            await asyncio.sleep(0.01)
    refused = await post_whatsapp(gw.url, bodies[2])
    assert refused.status_code == 503
    assert refused.json()["error"] == "store_busy"
    stuck.set()
    assert [r.status_code for r in await asyncio.gather(*waiting)] == [200, 200]
    assert gw.gateway.ingress.bytes_awaiting_store == 0
    assert await inbox_count(gw.gateway) == 2
    assert (await post_whatsapp(gw.url, bodies[2])).status_code == 200  # room again
