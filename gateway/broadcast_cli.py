"""`gateway broadcast`: send a broadcast through a running gateway and follow it to its end.

It reads the config for the gateway's address (server.host and server.port, or --gateway) and
an API key (the first, or --key NAME), posts the message to a group, then prints the counts
once a second until the broadcast has completed or been cancelled (docs/broadcasts.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

from gateway.config import GatewayConfig

FINISHED = ("completed", "cancelled")
SHOWN = ("queued", "sent", "delivered", "read", "failed", "skipped", "cancelled", "expired")


def request_body(message: Any, group_id: str) -> dict[str, Any]:
    """MESSAGE.json is a content object, or a broadcast body without its audience
    (`content`, `options`, `metadata`)."""
    if not isinstance(message, dict):
        raise ValueError("MESSAGE.json must hold a JSON object")
    body = dict(message) if "content" in message else {"content": message}
    if "group_id" in body or "members" in body:
        raise ValueError("MESSAGE.json names its own audience: leave it to --group")
    return {**body, "group_id": group_id}


def progress_line(view: dict[str, Any]) -> str:
    counts = view.get("counts", {})
    shown = " ".join(f"{name}={counts[name]}" for name in SHOWN if counts.get(name))
    return f"{view['state']}: {view.get('expanded', 0)}/{view['audience_size']} {shown}".rstrip()


def _base_url(config: GatewayConfig, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    host = config.server.host if config.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{config.server.port}"


def _key(config: GatewayConfig, name: str | None) -> str:
    keys = [k for k in config.api_keys if name is None or k.name == name]
    if not keys:
        raise ValueError(f"no API key named {name!r} in the config" if name else "no API keys")
    return keys[0].key.get_secret_value()


def read_body(args: argparse.Namespace) -> dict[str, Any]:
    return request_body(json.loads(Path(args.message).read_text()), args.group)


async def follow(
    config: GatewayConfig,
    args: argparse.Namespace,
    body: dict[str, Any],
    out: TextIO = sys.stdout,
    interval: float = 1.0,
) -> int:
    headers = {"Authorization": f"Bearer {_key(config, args.key)}"}
    base = _base_url(config, args.gateway)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        accepted = await client.post("/v1/broadcasts", json=body)
        if accepted.status_code != 202:
            print(f"broadcast refused ({accepted.status_code}): {accepted.text}", file=sys.stderr)
            return 1
        broadcast_id = accepted.json()["id"]
        print(f"{broadcast_id} accepted for {accepted.json()['audience_size']} members", file=out)
        if args.no_wait:
            return 0
        last = ""
        while True:
            view = (await client.get(f"/v1/broadcasts/{broadcast_id}?limit=1")).json()
            line = progress_line(view)
            if line != last:
                print(line, file=out, flush=True)
                last = line
            if view["state"] in FINISHED:
                return 0
            await asyncio.sleep(interval)


def add_parser(commands: Any, run: Any) -> None:
    broadcast = commands.add_parser(
        "broadcast", help="send a message to every member of a group, and follow its progress"
    )
    broadcast.add_argument("--config", required=True, help="the running gateway's config")
    broadcast.add_argument("--group", required=True, help="the group's id (grp_...)")
    broadcast.add_argument("--key", help="the API key's name in the config (default: the first)")
    broadcast.add_argument("--gateway", help="the gateway's URL (default: from server.host/port)")
    broadcast.add_argument("--no-wait", action="store_true", help="exit once it is accepted")
    broadcast.add_argument(
        "message", help="JSON file: a content object, or {content, options, metadata}"
    )
    broadcast.set_defaults(func=run)
