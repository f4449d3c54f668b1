"""Provider error text may quote the request it refused, credentials included: what the
gateway stores and what GET /v1/messages/{id} serves carry no secret (the log rules apply)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from .conftest import API_KEY, WA, base_config, config_from

AUTH = {"Authorization": f"Bearer {API_KEY}"}
TEMPLATE = {
    "to": {"channel": "wa-main", "id": "16505551234"},
    "content": {"type": "template", "template": {"name": "order_update", "language": "en_US"}},
}


def echoing_graph(request: httpx.Request) -> httpx.Response:
    """A Graph API that quotes the request's headers and query in its errors: first a
    retryable one (service down), then a permanent one (invalid parameter)."""
    echoed = f"got Authorization: {request.headers['Authorization']} (token {WA['access_token']})"
    retried = echoing_graph.calls  # type: ignore[attr-defined]
    echoing_graph.calls += 1  # type: ignore[attr-defined]
    code, status = (2, 503) if retried == 0 else (100, 400)
    error = {"message": echoed, "type": "OAuthException", "code": code, "fbtrace_id": "A1"}
    return httpx.Response(status, json={"error": {**error, "error_data": {"details": echoed}}})


async def view(gw: Any, message_id: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{gw.url}/v1/messages/{message_id}", headers=AUTH)


async def test_a_provider_echoing_the_token_stores_and_serves_none_of_it(
    tmp_path: Path, start_gateway: Any
) -> None:
    echoing_graph.calls = 0  # type: ignore[attr-defined]
    client = httpx.AsyncClient(transport=httpx.MockTransport(echoing_graph))
    gw = await start_gateway(config_from(base_config(tmp_path)), http_client=client)
    async with httpx.AsyncClient() as api:
        accepted = await api.post(f"{gw.url}/v1/messages", json=TEMPLATE, headers=AUTH)
    message_id = accepted.json()["id"]
    async with asyncio.timeout(10):
        while (answer := (await view(gw, message_id)).json())["state"] != "failed":
            await asyncio.sleep(0.05)
    await client.aclose()
    assert [h["state"] for h in answer["history"]] == ["queued", "retrying", "failed"]
    assert (
        "[redacted]" in answer["error"]["title"] and "[redacted]" in answer["history"][1]["detail"]
    )
    stored = await gw.store.db.run(
        lambda tx: tx.all(
            "SELECT error FROM messages UNION ALL SELECT detail FROM message_history"
            " UNION ALL SELECT last_error FROM outbox UNION ALL SELECT body FROM events"
        )
    )
    for text in (json.dumps(answer), json.dumps(stored), gw.logs.getvalue()):
        assert WA["access_token"] not in text


async def test_a_secret_an_older_release_stored_is_not_served(
    tmp_path: Path, start_gateway: Any
) -> None:
    gw = await start_gateway(config_from(base_config(tmp_path)))
    async with httpx.AsyncClient() as api:
        accepted = await api.post(f"{gw.url}/v1/messages", json=TEMPLATE, headers=AUTH)
    message_id = accepted.json()["id"]
    leaked = f"Bearer {WA['access_token']} refused"
    error = json.dumps({"code": "100", "title": leaked, "detail": leaked, "retryable": False})

    def store_as_an_older_release_did(tx: Any) -> None:
        tx.execute("UPDATE messages SET error = ? WHERE id = ?", (error, message_id))
        tx.execute(
            "INSERT INTO message_history (message_id, at, state, detail) VALUES (?, ?, ?, ?)",
            (message_id, 1.0, "failed", f"100: {leaked}"),
        )

    await gw.store.db.run(store_as_an_older_release_did)
    answer = await view(gw, message_id)
    assert answer.status_code == 200
    assert WA["access_token"] not in answer.text
    assert answer.json()["error"]["title"] == "Bearer [redacted] refused"
