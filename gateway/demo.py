"""`gateway demo`: a WhatsApp round trip on loopback, with no credentials.

A simulated customer writes on WhatsApp; the gateway stores and normalises the webhook and
forwards it to a small backend, which answers through the API; the simulator receives the
Cloud API send and reports delivered and read, which reach the backend again.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from gateway.app import Gateway, secrets_of
from gateway.config import parse_config
from gateway.logs import configure_logging
from gateway.simulator.backend import BackendRecorder
from gateway.simulator.whatsapp import WhatsAppSimulator

CUSTOMER = "15551234567"


def say(who: str, text: str) -> None:
    print(f"[{who:>24}] {text}", flush=True)


async def run_demo(port: int = 8080, once: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    api_key = secrets.token_urlsafe(24)
    backend_secret = secrets.token_urlsafe(24)
    wa = {
        "phone_number_id": "106540352242922",
        "display_phone_number": "15550783881",
        "access_token": secrets.token_urlsafe(24),
        "app_secret": secrets.token_urlsafe(24),
    }
    simulator = WhatsAppSimulator(
        phone_number_id=wa["phone_number_id"],
        display_phone_number=wa["display_phone_number"],
        access_token=wa["access_token"],
        app_secret=wa["app_secret"],
    )
    await simulator.start()
    done = asyncio.Event()
    client = httpx.AsyncClient()
    gateway_url = ""

    async def backend_logic(event: dict[str, Any]) -> None:
        if event["type"] == "message":
            text = event["message"]["content"].get("text", "")
            name = (event.get("sender") or {}).get("name") or "there"
            say("backend <- gateway", f"message from {name} on {event['channel']['id']}: {text!r}")
            reply = {
                "to": {"channel": event["channel"]["id"], "id": event["sender"]["id"]},
                "content": {"type": "text", "text": f"Hi {name}! Your order #1234 is on its way."},
            }
            response = await client.post(
                f"{gateway_url}/v1/messages",
                json=reply,
                headers={"Authorization": f"Bearer {api_key}"},
            )
            say("backend -> gateway", f"reply queued: {response.json()}")
        elif event["type"] == "status":
            status = event["status"]
            say("backend <- gateway", f"status {status['state']} for {status.get('message_id')}")
            if status["state"] == "read":
                done.set()

    backend = BackendRecorder(backend_secret, on_event=backend_logic)
    await backend.start()
    config = parse_config(
        {
            "public_url": "http://127.0.0.1",
            "storage": {"path": str(workdir / "gateway.db")},
            "api_keys": [{"name": "demo", "key": api_key}],
            "backends": [{"id": "demo-backend", "url": backend.url, "secret": backend_secret}],
            "channels": [
                {
                    "id": "wa-demo",
                    "type": "whatsapp",
                    "api_base_url": simulator.base_url,
                    "phone_number_id": wa["phone_number_id"],
                    "access_token": wa["access_token"],
                    "app_secret": wa["app_secret"],
                    "verify_token": secrets.token_urlsafe(16),
                }
            ],
            "logging": {"level": "warning", "format": "console"},
        },
        "demo",
    )
    gateway = Gateway(config)
    configure_logging("warning", "console", secrets_of(config, gateway.adapters))
    runner = web.AppRunner(gateway.application(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); try --port 0", file=sys.stderr)
        await _shutdown(runner, simulator, backend, client, workdir)
        return 1
    gateway_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    simulator.webhook_url = f"{gateway_url}/webhooks/wa-demo"
    say("demo", f"gateway on {gateway_url} (SQLite at {workdir / 'gateway.db'})")
    say("demo", f"WhatsApp simulator on {simulator.base_url}, backend on {backend.url}")

    text = "Hi! Where is my order #1234?"
    say("customer -> WhatsApp", text)
    await simulator.send_inbound_text(CUSTOMER, text, name="Alex")
    try:
        if once:
            await asyncio.wait_for(done.wait(), 20)
            for request in simulator.sent:
                say("WhatsApp <- gateway", "Cloud API send: " + json.dumps(request["body"]))
            say("demo", "round trip complete")
            return 0
        say(
            "demo",
            "running; try: curl -X POST "
            f'{simulator.base_url.rsplit("/", 1)[0]}/_sim/inbound -d \'{{"from": "{CUSTOMER}", "text": "hello"}}\''
            " (Ctrl-C to stop)",
        )
        await asyncio.Event().wait()
        return 0
    except TimeoutError:
        print("demo: no read receipt within 20 s", file=sys.stderr)
        return 1
    finally:
        await _shutdown(runner, simulator, backend, client, workdir)


async def _shutdown(
    runner: web.AppRunner,
    simulator: WhatsAppSimulator,
    backend: BackendRecorder,
    client: httpx.AsyncClient,
    workdir: Path,
) -> None:
    await runner.cleanup()
    await simulator.stop()
    await backend.stop()
    await client.aclose()
    shutil.rmtree(workdir, ignore_errors=True)  # the demo's store lives only as long as it runs
