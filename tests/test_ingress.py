"""Webhook ingress: bad input gets its documented status and nothing is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from gateway.app import Gateway
from gateway.ingress import Ingress
from gateway.store import Store

from .conftest import (
    WA,
    assert_no_secrets,
    base_config,
    config_from,
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


def test_busy_follows_the_configured_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above `server.busy_webhooks_per_second` the normaliser is paced; below it, not."""
    clock = [1000.0]
    monkeypatch.setattr("gateway.ingress.time.monotonic", lambda: clock[0])
    ingress = Ingress(cast(Store, None), {}, "http://gw", 1024, lambda: None, busy_rate=50)
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
    monkeypatch.setattr("gateway.ingress.time.monotonic", lambda: clock[0])
    ingress = Ingress(cast(Store, None), {}, "http://gw", 1024, lambda: None, busy_rate=50)
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
    request, and the failed row names the field."""
    from .conftest import inbox_settled

    odd = (
        b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":'
        b'"messages","value":{"metadata":"not an object","errors":[{"code":1}]}}]}]}'
    )
    response = await post_whatsapp(gw.url, odd)
    assert response.status_code == 200
    assert '"dedupe_key_failed"' in gw.logs.getvalue()
    assert "entry[0].changes[0].value.metadata: expected an object" in gw.logs.getvalue()
    again = await post_whatsapp(gw.url, odd)  # a redelivery: the body's hash is its key
    assert again.status_code == 200 and await inbox_count(gw) == 1
    await inbox_settled(gw)
    [(_row, channel, reason)] = await gw.store.inbox_rows("failed")
    assert channel == "wa-main"
    assert (
        reason
        == "invalid payload: entry[0].changes[0].value.metadata: expected an object, got a string"
    )
