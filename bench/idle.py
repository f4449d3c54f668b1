"""CPU without work, and CPU per webhook at a steady rate, end to end to a backend.

A gateway with five channels (WhatsApp, Messenger, SMS, LINE, Viber) and one backend, pinned to
one core where `taskset` exists: first its CPU while nothing happens (`--idle-seconds`), then
while WhatsApp webhooks arrive at `--rate` a second for `--seconds` (open loop, like a
provider), each normalised and posted to the backend (a bare aiohttp receiver in this process)
before the round ends. The figures: share of a core while idle, and CPU per webhook.

    python bench/idle.py [--idle-seconds 60] [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingress import (  # the bench's own helpers, beside this file
    SECRET,
    cpu_seconds,
    free_port,
    serve_gateway,
    webhook,
    whatsapp_channel,
)
from sustained import post_at_rate

BACKEND_SECRET = "bench-backend-secret-0123"


def config(work: Path, backend_url: str) -> Path:
    unreachable = "http://127.0.0.1:9"  # nothing is sent: the channels only wait
    data: dict[str, Any] = {
        "public_url": "http://127.0.0.1",
        "storage": {"path": str(work / "idle.db")},
        "backends": [{"id": "bench", "url": backend_url, "secret": BACKEND_SECRET}],
        "channels": [
            whatsapp_channel("wa-bench", unreachable),
            {
                "id": "fb-bench",
                "type": "messenger",
                "page_id": "105623447512391",
                "page_access_token": "bench-page-token-0123",
                "app_secret": SECRET,
                "verify_token": "bench-verify",
                "api_base_url": unreachable,
            },
            {
                "id": "sms-bench",
                "type": "sms",
                "account_sid": "AC" + "c" * 32,
                "auth_token": "bench-twilio-token-0123",
                "from_number": "+14155550199",
                "api_base_url": unreachable,
            },
            {
                "id": "line-bench",
                "type": "line",
                "channel_secret": "bench-line-secret-0123",
                "channel_access_token": "bench-line-token-0123",
                "api_base_url": unreachable,
            },
            {
                "id": "viber-bench",
                "type": "viber",
                "auth_token": "bench-viber-token-0123",
                "sender_name": "Bench",
                "api_base_url": unreachable,
            },
        ],
        "logging": {"level": "warning"},
    }
    (work / "idle.yaml").write_text(yaml.safe_dump(data))
    return work / "idle.yaml"


def signed_webhooks(count: int) -> list[bytes]:
    """Pre-signed WhatsApp webhooks dated now (older ones would be replays to the gateway),
    as bench/sustained.py posts them: signature, tab, body."""
    lines = []
    for i in range(count):
        payload = json.loads(webhook(i))
        message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        message["timestamp"] = str(int(time.time()))
        body = json.dumps(payload, separators=(",", ":")).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        lines.append(signature.encode() + b"\t" + body)
    return lines


async def run(args: argparse.Namespace, work: Path) -> None:
    received = 0
    expected = int(args.rate * args.seconds) + 1  # till the posting ends: how many it posted
    all_in = asyncio.Event()

    async def events(request: web.Request) -> web.Response:
        nonlocal received
        received += len((await request.json())["events"])
        if received >= expected:
            all_in.set()
        return web.Response()

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    backend_url = f"http://127.0.0.1:{runner.addresses[0][1]}/events"
    port = free_port()
    gateway = serve_gateway(config(work, backend_url), port)
    try:
        await asyncio.sleep(2)  # past start-up
        before = cpu_seconds(gateway.pid)
        await asyncio.sleep(args.idle_seconds)
        idle = cpu_seconds(gateway.pid)
        lines = signed_webhooks(expected)
        figures, _ = await post_at_rate(port, lines, args.rate, args.seconds, None)
        expected = int(figures["sent"])
        if received >= expected:
            all_in.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 60)
        busy = cpu_seconds(gateway.pid)
    finally:
        gateway.terminate()
        gateway.wait()
        await runner.cleanup()
    if before is None or idle is None or busy is None:
        raise SystemExit("needs Linux's /proc to read the gateway's CPU")
    print(
        f"idle, five channels and a backend: {(idle - before) / args.idle_seconds * 100:.2f}%"
        f" of a core over {args.idle_seconds:g} s"
    )
    print(
        f"at {args.rate:g} webhooks/s for {args.seconds:g} s: {figures['sent']:.0f} posted,"
        f" {figures['failures']:.0f} not 200, {received} events at the backend;"
        f" CPU per webhook {(busy - idle) / figures['sent'] * 1000:.2f} ms (to the backend);"
        f" p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})  # the gateway gets core 1 (bench/ingress.py's `serve`)
    work = Path(tempfile.mkdtemp(prefix="gateway-idle-"))
    try:
        asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
