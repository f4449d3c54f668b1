"""A gateway with the console on over the five provider simulators, and logging in to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.console.auth import hash_password
from gateway.simulator.backend import BackendRecorder

from .test_everywhere import five_channel_gateway

OPERATOR = ("olivia", "operator-password-1")
AGENT = ("sam", "agent-password-22")
# Hashed once: argon2 takes its time on purpose.
HASHES = {name: hash_password(password) for name, password in (OPERATOR, AGENT)}


def console_section() -> dict[str, Any]:
    return {
        "enabled": True,
        "accounts": [
            {"name": OPERATOR[0], "role": "operator", "password_hash": HASHES[OPERATOR[0]]},
            {"name": AGENT[0], "role": "agent", "password_hash": HASHES[AGENT[0]]},
        ],
    }


async def console_gateway(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> Any:
    return await five_channel_gateway(
        tmp_path, start_gateway, sims, backend, console=console_section()
    )


async def logged_in(url: str, who: tuple[str, str]) -> tuple[httpx.AsyncClient, str]:
    """A client holding `who`'s session cookie, and the session's CSRF token."""
    client = httpx.AsyncClient(base_url=url, follow_redirects=False)
    answer = await client.post("/console/login", data={"name": who[0], "password": who[1]})
    assert answer.status_code == 303, answer.text
    page = await client.get("/console/conversations")
    token = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return client, token
