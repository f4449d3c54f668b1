"""Shared bits of the Viber gateway-level tests: channel configs and signed callback posts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from adapters.viber import SIGNATURE_HEADER, signature

from .conftest import base_config

TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
OTHER_TOKEN = "4f1e2d3c4b5a6978-8796a5b4c3d2e1f0-0a1b2c3d4e5f6a7b"
USER = "01234567890A="
FIXTURES = Path(__file__).parent / "fixtures" / "viber"


def viber_channel(
    channel_id: str = "vb-main", token: str = TOKEN, base_url: str = "http://127.0.0.1:9/pa"
) -> dict[str, Any]:
    return {
        "id": channel_id,
        "type": "viber",
        "api_base_url": base_url,
        "auth_token": token,
        "sender_name": "Lucky Shrub",
    }


def viber_config(tmp_path: Path, *channels: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return base_config(tmp_path, channels=list(channels) or [viber_channel()], **overrides)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def post_callback(
    url: str, body: bytes, token: str | None = TOKEN, sig: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers[SIGNATURE_HEADER] = sig if sig is not None else signature(token, body)
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers=headers)


async def inbox_rows(gateway: Any) -> list[tuple[str, str]]:
    rows = await gateway.store.db.run(
        lambda tx: tx.all("SELECT dedupe_key, status FROM inbox ORDER BY id")
    )
    return [(str(k), str(s)) for k, s in rows]
