"""`gateway demo`: a WhatsApp round trip and a group conversation on loopback, with no
credentials.

A simulated customer writes on WhatsApp; the gateway stores and normalises the webhook and
forwards it to a small backend, which answers through the API; the simulator receives the
Cloud API send and reports delivered and read, which reach the backend again. Then the group
scene (gateway/demo_group.py): the customer, a courier on SMS and a restaurant on Messenger
share the order's conversation. Each line is printed as its step happens. SIGINT or SIGTERM
stops it, its temporary store removed.
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
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from gateway.app import Gateway, secrets_of
from gateway.config import EVENT_TYPES, parse_config
from gateway.console.auth import hash_password
from gateway.demo_group import SceneRefused, Watcher, group_scene, people
from gateway.logs import configure_logging
from gateway.schema import CONVERSATION_EVENT_TYPES
from gateway.simulator.backend import BackendRecorder
from gateway.simulator.messenger import MessengerSimulator
from gateway.simulator.server import SimulatorServer
from gateway.simulator.sms import TwilioSimulator
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
    sms = TwilioSimulator(
        account_sid="AC" + secrets.token_hex(16),
        auth_token=secrets.token_urlsafe(24),
        phone_number="+15550783882",
    )
    messenger = MessengerSimulator(
        page_id="107331552213590",
        page_access_token=secrets.token_urlsafe(24),
        app_secret=secrets.token_urlsafe(24),
    )
    simulators: list[SimulatorServer] = [simulator, sms, messenger]
    for server in simulators:
        await server.start()

    def print_cloud_api_send(sent: dict[str, Any]) -> None:
        say("WhatsApp <- gateway", "Cloud API send: " + json.dumps(sent["body"]))

    simulator.on_send = print_cloud_api_send
    done, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # either way, the finally below cleans up
        loop.add_signal_handler(signum, stop.set)
    client = httpx.AsyncClient()
    gateway_url = ""

    async def backend_logic(event: dict[str, Any]) -> None:
        if event["type"] in CONVERSATION_EVENT_TYPES:
            say("backend <- gateway", f"{event['type']} {event['conversation_id']}")
        elif event["type"] == "message" and "author" in event:  # said in a group conversation
            author = event["author"]
            text = event["message"]["content"].get("text", "")
            say(
                "backend <- gateway",
                f"message in {event['conversation_id']} from {author['display_name']}"
                f" ({author['role']}): {text!r}",
            )
        elif event["type"] == "message" and event["channel"]["id"] != "wa-demo":
            text = event["message"]["content"].get("text", "")
            say("backend <- gateway", f"message on {event['channel']['id']}: {text!r}")
        elif event["type"] == "message":
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
        elif event["type"] == "status" and "participant" in event["status"]:
            status = event["status"]  # a relayed copy's: only a failure is worth a line
            if status["state"] == "failed":
                name = status["participant"]["display_name"]
                say("backend <- gateway", f"the copy to {name} failed: {status.get('error')}")
        elif event["type"] == "status":
            status = event["status"]
            say("backend <- gateway", f"status {status['state']} for {status.get('message_id')}")
            if status["state"] == "read":
                done.set()

    # The console's demo login (gateway/console/), printed below: a new one each run.
    console_password = secrets.token_urlsafe(9)
    backend = BackendRecorder(backend_secret, on_event=backend_logic)
    await backend.start()
    config = parse_config(
        {
            "public_url": "http://127.0.0.1",
            "storage": {"path": str(workdir / "gateway.db")},
            "api_keys": [{"name": "demo", "key": api_key}],
            "backends": [
                {
                    "id": "demo-backend",
                    "url": backend.url,
                    "secret": backend_secret,
                    "events": [*EVENT_TYPES, *CONVERSATION_EVENT_TYPES],
                }
            ],
            "channels": [
                {
                    "id": "wa-demo",
                    "type": "whatsapp",
                    "api_base_url": simulator.base_url,
                    "phone_number_id": wa["phone_number_id"],
                    "access_token": wa["access_token"],
                    "app_secret": wa["app_secret"],
                    "verify_token": secrets.token_urlsafe(16),
                },
                {
                    "id": "sms-demo",
                    "type": "sms",
                    "api_base_url": sms.base_url,
                    "account_sid": sms.account_sid,
                    "auth_token": sms.auth_token,
                    "from_number": sms.phone_number,
                },
                {
                    "id": "fb-demo",
                    "type": "messenger",
                    "api_base_url": messenger.base_url,
                    "page_id": messenger.page_id,
                    "page_access_token": messenger.page_access_token,
                    "app_secret": messenger.app_secret,
                    "verify_token": secrets.token_urlsafe(16),
                },
            ],
            "console": {
                "enabled": True,
                "accounts": [
                    {"name": name, "role": name, "password_hash": hash_password(console_password)}
                    for name in ("operator", "agent")
                ],
            },
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
        await _shutdown(runner, simulators, backend, client, workdir)
        return 1
    gateway_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    simulator.webhook_url = f"{gateway_url}/webhooks/wa-demo"
    messenger.webhook_url = f"{gateway_url}/webhooks/fb-demo"
    sms.webhook_url = f"{gateway_url}/webhooks/sms-demo"
    # Twilio signs the URL it was configured with: the one the gateway's public_url names.
    sms.public_url = "http://127.0.0.1/webhooks/sms-demo"
    say("demo", f"gateway on {gateway_url} (SQLite at {workdir / 'gateway.db'})")
    say("demo", f"WhatsApp simulator on {simulator.base_url}, backend on {backend.url}")
    say("demo", f"SMS simulator on {sms.origin}, Messenger simulator on {messenger.origin}")
    say("demo", f"API key: {api_key}")
    say(
        "demo",
        f"console: {gateway_url}/console, log in as operator or agent, password {console_password}",
    )

    async def play_group_scene() -> str:
        watcher = Watcher(people(CUSTOMER), say)
        for app, watched in (("WhatsApp", simulator), ("SMS", sms), ("Messenger", messenger)):
            watcher.watch(app, watched)
        api = httpx.AsyncClient(
            base_url=gateway_url, headers={"Authorization": f"Bearer {api_key}"}
        )
        try:
            async with asyncio.timeout(20):
                return await group_scene(
                    api, CUSTOMER, sms, messenger, say, lambda seen: backend.wait_for(seen)
                )
        finally:
            await api.aclose()
            for server in simulators:
                server.on_send = None
            simulator.on_send = print_cloud_api_send

    text = "Hi! Where is my order #1234?"
    waiting_for = "read receipt"
    try:
        say("customer -> WhatsApp", text)
        await simulator.send_inbound_text(CUSTOMER, text, name="Alex")
        async with asyncio.timeout(20 if once else None):
            await _first(done.wait(), stop.wait())
        if stop.is_set():
            return 1 if once else 0
        say("demo", "round trip complete")
        waiting_for = "end of the group scene"
        scene = asyncio.ensure_future(play_group_scene())
        await _first(scene, stop.wait())
        if not scene.done():  # stopped meanwhile
            scene.cancel()
            return 1 if once else 0
        conversation_id = scene.result()  # or what went wrong in it
        say("demo", "group scene complete")
        if once:
            return 0
        for line in _try_lines(gateway_url, api_key, simulator.origin, conversation_id):
            say("demo", line)
        await stop.wait()
        return 0
    except TimeoutError:
        print(f"demo: no {waiting_for} within 20 s", file=sys.stderr)
        return 1
    except SceneRefused as refused:
        print(f"demo: the gateway refused a step of the group scene: {refused}", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await _shutdown(runner, simulators, backend, client, workdir)


async def _first(*waits: Awaitable[Any]) -> None:
    """Wait until one of `waits` is done; the others are cancelled unless they are tasks the
    caller holds."""
    futures = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future, wait in zip(futures, waits, strict=True):
            if future is not wait:
                future.cancel()


def _try_lines(
    gateway_url: str, api_key: str, simulator_origin: str, conversation_id: str
) -> list[str]:
    """Ready commands: the backend sends a message, the customer writes again, the backend
    reads the group conversation's history."""
    message = {
        "to": {"channel": "wa-demo", "id": CUSTOMER},
        "content": {"type": "text", "text": "Your courier is two minutes away."},
    }
    inbound = {"from": CUSTOMER, "text": "hello", "name": "Alex"}
    return [
        "running; Ctrl-C stops it. Send a message as a backend would:",
        f"  curl -X POST {gateway_url}/v1/messages -H {shlex.quote('Authorization: Bearer ' + api_key)}"
        f" -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(message))}",
        "Read the group conversation's history, each copy's delivery state:",
        f"  curl {gateway_url}/v1/conversations/{conversation_id}/messages"
        f" -H {shlex.quote('Authorization: Bearer ' + api_key)}",
        "Write as the customer:",
        f"  curl -X POST {simulator_origin}/_sim/inbound -d {shlex.quote(json.dumps(inbound))}",
    ]


async def _shutdown(
    runner: web.AppRunner,
    simulators: list[SimulatorServer],
    backend: BackendRecorder,
    client: httpx.AsyncClient,
    workdir: Path,
) -> None:
    await runner.cleanup()
    for simulator in simulators:
        await simulator.stop()
    await backend.stop()
    await client.aclose()
    shutil.rmtree(workdir, ignore_errors=True)  # the demo's store lives only as long as it runs
