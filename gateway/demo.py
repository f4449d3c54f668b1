"""`gateway demo`: a WhatsApp round trip on loopback, with no credentials.

A simulated customer writes on WhatsApp; the gateway stores and normalises the webhook and
forwards it to a small backend, which answers through the API; the simulator receives the
Cloud API send and reports delivered and read, which reach the backend again. Each line is
printed as its step happens. SIGINT or SIGTERM stops it, its temporary store removed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import shutil
import signal
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
    simulator.on_send = lambda sent: say(
        "WhatsApp <- gateway", "Cloud API send: " + json.dumps(sent["body"])
    )
    done, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # either way, the finally below cleans up
        loop.add_signal_handler(signum, stop.set)
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
            # Said before it is posted: the send and its statuses may come before the answer.
            say("backend -> gateway", f"POST /v1/messages: {reply['content']['text']!r}")
            response = await client.post(
                f"{gateway_url}/v1/messages",
                json=reply,
                headers={"Authorization": f"Bearer {api_key}"},
            )
            if response.status_code != 202:
                say("backend <- gateway", f"refused: HTTP {response.status_code} {response.text}")
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
    say("demo", f"API key: {api_key}")

    text = "Hi! Where is my order #1234?"
    try:
        say("customer -> WhatsApp", text)
        await simulator.send_inbound_text(CUSTOMER, text, name="Alex")
        if once:
            async with asyncio.timeout(20):
                await _first(done, stop)
            if stop.is_set():
                return 1
            say("demo", "round trip complete")
            return 0
        await _first(done, stop)
        for line in _try_lines(gateway_url, api_key, simulator.origin):
            say("demo", line)
        await stop.wait()
        return 0
    except TimeoutError:
        print("demo: no read receipt within 20 s", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await _shutdown(runner, simulator, backend, client, workdir)


async def _first(*events: asyncio.Event) -> None:
    """Wait until one of `events` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _try_lines(gateway_url: str, api_key: str, simulator_origin: str) -> list[str]:
    """Ready commands: the backend sends a message, the customer writes again."""
    message = {
        "to": {"channel": "wa-demo", "id": CUSTOMER},
        "content": {"type": "text", "text": "Your courier is two minutes away."},
    }
    inbound = {"from": CUSTOMER, "text": "hello", "name": "Alex"}
    return [
        "running; Ctrl-C stops it. Send a message as a backend would:",
        f"  curl -X POST {gateway_url}/v1/messages -H {shlex.quote('Authorization: Bearer ' + api_key)}"
        f" -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(message))}",
        "Write as the customer:",
        f"  curl -X POST {simulator_origin}/_sim/inbound -d {shlex.quote(json.dumps(inbound))}",
    ]


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
