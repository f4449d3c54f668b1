"""Sends per second: the gateway's outbox against a bare aiohttp client, to the same simulator.

Each round runs a bare client and then the gateway against the same provider simulator, in the
same run; the figure that matters is the ratio. The gateway gets `--messages` messages for
`--recipients` recipients through its API (`--clients` concurrent callers), no backends, and
the channel's rate limit raised out of the way; the delivered rate is counted at the
simulator, from the first API call to the last provider request. The bare client posts the
very bodies the gateway renders for those messages (rendered by the same adapter, so byte for
byte the same requests) with as many requests in flight as the gateway's send_concurrency.

Two cases: `whatsapp` (a text message; every recipient wrote first, as WhatsApp's 24-hour
window requires) and `sms` (a 5-card carousel, which an SMS number gets as numbered text).
Where `taskset` exists, the gateway and the bare client get core 1; the simulator and the API
callers share core 0. On Linux the report adds each one's CPU time per message (all its
threads, from /proc), which moves far less with a shared host than a rate does.

The report also says how fast messages went out while the API was still accepting (is
sending starved by accepting?), and the gateway's CPU while idle afterwards.

    python bench/send.py [--case whatsapp|sms|all] [--store sqlite|postgres|all]
                         [--messages 20000] [--recipients 2000] [--rounds 3]

PostgreSQL rounds need a server (--dsn, default postgresql://postgres@127.0.0.1:5432/test);
each round gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the gateway's packages

from ingress import (  # the bench's own helpers, beside this file
    PHONE_NUMBER_ID,
    SECRET,
    cpu_seconds,
    free_port,
    pinned,
    serve_gateway,
    wait_listening,
    whatsapp_channel,
)

WA_TOKEN = "bench-token-0123456789"
TWILIO_SID = "AC" + "b" * 32
TWILIO_TOKEN = "bench-twilio-token-0123456789"
TWILIO_NUMBER = "+14155550199"
API_KEY = "bench-api-key-0123456789"
SEND_CONCURRENCY = 16  # the gateway's default delivery.send_concurrency
IDLE_SECONDS = 5.0
CAROUSEL = {
    "type": "carousel",
    "text": "Tonight's picks",
    "items": [
        {
            "title": name,
            "description": description,
            "actions": [{"type": "reply", "title": "Order", "payload": f"ORDER_{name.upper()}"}],
        }
        for name, description in [
            ("Margherita", "Tomato, mozzarella, basil"),
            ("Funghi", "Mushrooms, mozzarella"),
            ("Diavola", "Spicy salami"),
            ("Marinara", "Tomato, garlic, oregano"),
            ("Quattro", "Four cheeses"),
        ]
    ],
}


def recipient(case: str, r: int) -> str:
    return f"1650555{r:04d}" if case == "whatsapp" else f"+1650555{r:04d}"


def content(case: str, i: int) -> dict[str, Any]:
    return (
        {"type": "text", "text": f"Your order #{i} is on its way"}
        if case == "whatsapp"
        else CAROUSEL
    )


def channel_config(case: str, sim_url: str) -> dict[str, Any]:
    if case == "whatsapp":
        return {**whatsapp_channel("bench", f"{sim_url}/v21.0"), "rate_limit_per_second": 1_000_000}
    return {
        "id": "bench",
        "type": "sms",
        "account_sid": TWILIO_SID,
        "auth_token": TWILIO_TOKEN,
        "from_number": TWILIO_NUMBER,
        "api_base_url": sim_url,
        "rate_limit_per_second": 1_000_000,
    }


# --- the simulator process ------------------------------------------------------------------
async def run_simulator(case: str, port: int) -> None:
    """One provider simulator, without webhooks back, plus a count of the sends it accepted."""
    from aiohttp import web

    from gateway.simulator.sms import TwilioSimulator
    from gateway.simulator.whatsapp import WhatsAppSimulator

    simulator: WhatsAppSimulator | TwilioSimulator
    if case == "whatsapp":
        simulator = WhatsAppSimulator(
            phone_number_id=PHONE_NUMBER_ID,
            display_phone_number="15550783881",
            access_token=WA_TOKEN,
            app_secret=SECRET,
            auto_statuses=(),
        )
    else:
        simulator = TwilioSimulator(
            account_sid=TWILIO_SID,
            auth_token=TWILIO_TOKEN,
            phone_number=TWILIO_NUMBER,
            auto_statuses=(),
        )
    routes = simulator.routes

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"sent": len(simulator.sent), "requests": len(simulator.requests)})

    async def reset(_request: web.Request) -> web.Response:
        simulator.sent.clear()
        simulator.requests.clear()
        return web.json_response({})

    def with_count(app: web.Application) -> None:
        routes(app)
        app.router.add_get("/_bench/count", count)
        app.router.add_post("/_bench/reset", reset)

    simulator.routes = with_count  # type: ignore[method-assign]
    await simulator.start(port=port)
    await asyncio.Event().wait()


# --- the bare client process ----------------------------------------------------------------
async def run_bare(url: str, requests: list[dict[str, Any]], concurrency: int) -> None:
    """Post every request (path, headers and body) with `concurrency` in flight; print the
    seconds it took."""
    refused = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        queue = iter(requests)

        async def worker() -> None:
            nonlocal refused
            for request in queue:
                async with session.post(
                    url + request["path"], data=request["body"].encode(), headers=request["headers"]
                ) as response:
                    await response.read()
                    refused += response.status >= 300

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        print(json.dumps({"seconds": time.monotonic() - started, "refused": refused}))


# --- rendering the bare client's bodies -------------------------------------------------------
def rendered_requests(
    case: str, sim_url: str, messages: int, recipients: int
) -> list[dict[str, Any]]:
    """Each message's provider requests as the gateway's adapter renders them."""
    from adapters.base import SendContext
    from gateway import json_codec
    from gateway.app import build_adapters
    from gateway.config import GatewayConfig
    from gateway.downgrade import plan
    from gateway.schema import CONTENT_ADAPTER

    config = GatewayConfig.model_validate(
        {"public_url": "http://127.0.0.1", "channels": [channel_config(case, sim_url)]}
    )
    adapter = build_adapters(config)["bench"]
    out: list[dict[str, Any]] = []
    for i in range(messages):
        to = recipient(case, i % recipients)
        parts = plan(CONTENT_ADAPTER.validate_python(content(case, i)), adapter.profile).parts
        context = SendContext(
            message_id=f"msg_{i}", recipient_id=to, now=time.time(), last_inbound_at=time.time()
        )
        for request in adapter.render_parts(parts, context):
            headers = dict(adapter.auth_headers())
            if request.json is not None:
                body = json_codec.dumps(request.json).decode()
                headers["Content-Type"] = json_codec.JSON_CONTENT_TYPE
                path = "/v21.0" + request.path
            else:
                body = urlencode(request.form or {}, doseq=True)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                path = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
            out.append({"path": path, "headers": headers, "body": body})
    return out


# --- a round --------------------------------------------------------------------------------
async def sim_count(session: aiohttp.ClientSession, sim_url: str) -> int:
    async with session.get(f"{sim_url}/_bench/count") as response:
        return int((await response.json())["sent"])


async def sim_reset(sim_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(f"{sim_url}/_bench/reset"):
        pass


def bare_round(sim_url: str, bodies: Path, messages: int) -> dict[str, float]:
    asyncio.run(sim_reset(sim_url))
    command = [sys.executable, __file__, "--bare", sim_url, str(bodies), str(SEND_CONCURRENCY)]
    process = subprocess.Popen(pinned(1, command), stdout=subprocess.PIPE, text=True)
    cpu = 0.0
    while process.poll() is None:  # its CPU from /proc just before it exits
        cpu = cpu_seconds(process.pid) or cpu
        time.sleep(0.02)
    out = json.loads(process.communicate()[0])
    if out["refused"]:
        raise SystemExit(f"the simulator refused {out['refused']} bare requests")
    return {"rate": messages / out["seconds"], "cpu_us": cpu / messages * 1e6}


async def seed_windows(port: int, case: str, recipients: int) -> None:
    """Every WhatsApp recipient writes first (the 24-hour window), by a signed webhook."""
    if case != "whatsapp":
        return
    import hashlib
    import hmac

    from ingress import webhook

    url = f"http://127.0.0.1:{port}/webhooks/bench"
    async with aiohttp.ClientSession() as session:
        for start in range(0, recipients, 64):

            async def post(i: int) -> None:
                # Dated now: older ones are replays to the gateway (ingress.acceptance_window).
                payload = json.loads(webhook(i))
                message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
                message["timestamp"] = str(int(time.time()))
                body = json.dumps(payload, separators=(",", ":")).encode()
                signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200, await response.text()

            await asyncio.gather(*(post(i) for i in range(start, min(start + 64, recipients))))


def windows_open(storage: dict[str, Any], case: str) -> None:
    """Wait till the seeded webhooks are normalised (each recipient's last inbound is known)."""
    if case != "whatsapp":
        return
    query = "SELECT COUNT(*) FROM inbox WHERE status = 'pending'"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if storage.get("backend") == "postgres":
            import psycopg

            with psycopg.connect(storage["dsn"]) as conn:
                pending = conn.execute(query).fetchone()[0]  # type: ignore[index]
        else:
            with sqlite3.connect(storage["path"]) as conn:
                pending = conn.execute(query).fetchone()[0]
        if not pending:
            return
        time.sleep(0.2)
    raise SystemExit("the seeded webhooks were not normalised in time")


async def post_messages(
    port: int,
    pid: int,
    sim_url: str,
    case: str,
    messages: int,
    recipients: int,
    clients: int,
    parts: int,
) -> dict[str, float]:
    """Queue the messages through the API; the times of acceptance and of delivery, and the
    gateway's (`pid`) CPU seconds when the API went quiet."""
    url = f"http://127.0.0.1:{port}/v1/messages"
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    bodies = [
        json.dumps(
            {
                "to": {"channel": "bench", "id": recipient(case, i % recipients)},
                "content": content(case, i),
            }
        ).encode()
        for i in range(messages)
    ]
    queue = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 4)) as session:

        async def caller() -> None:
            for body in queue:
                async with session.post(url, data=body, headers=headers) as response:
                    if response.status != 202:
                        raise SystemExit(f"API answered {response.status}: {await response.text()}")
                    await response.read()

        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(clients)))
        accepted = time.monotonic()
        cpu_accepted = cpu_seconds(pid)
        sent_while_accepting = await sim_count(session, sim_url)
        want = messages * parts
        while (sent := await sim_count(session, sim_url)) < want:
            if time.monotonic() - accepted > 300:
                raise SystemExit(f"only {sent} of {want} requests reached the simulator")
            await asyncio.sleep(0.02)
        delivered = time.monotonic()
    return {
        "accept_s": accepted - started,
        "total_s": delivered - started,
        "sent_while_accepting": sent_while_accepting / parts,
        "cpu_accepted": cpu_accepted if cpu_accepted is not None else -1.0,
    }


def gateway_round(
    args: argparse.Namespace, case: str, store: str, sim_url: str, work: Path, parts: int
) -> dict[str, float]:
    asyncio.run(sim_reset(sim_url))
    schema = None
    if store == "postgres":
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        storage: dict[str, Any] = {
            "backend": "postgres",
            "dsn": f"{args.dsn}?options=-csearch_path%3D{schema}",
        }
    else:
        for leftover in work.glob("send.db*"):
            leftover.unlink()
        storage = {"path": str(work / "send.db")}
    config = {
        "public_url": "http://127.0.0.1",
        "storage": storage,
        "api_keys": [{"name": "bench", "key": API_KEY}],
        "channels": [channel_config(case, sim_url)],
        "logging": {"level": "warning"},
    }
    path = work / "send.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = serve_gateway(path, port)
    try:
        asyncio.run(seed_windows(port, case, args.recipients))
        windows_open(storage, case)
        cpu_before = cpu_seconds(process.pid)
        times = asyncio.run(
            post_messages(
                port,
                process.pid,
                sim_url,
                case,
                args.messages,
                args.recipients,
                args.clients,
                parts,
            )
        )
        cpu_after = cpu_seconds(process.pid)
        time.sleep(1.0)  # let what the sends left behind (status fan-out, checkpoints) settle
        idle_before = cpu_seconds(process.pid)
        time.sleep(IDLE_SECONDS)
        idle_after = cpu_seconds(process.pid)
    finally:
        process.terminate()
        process.wait()
        if schema is not None:
            import psycopg

            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    result = {
        "rate": args.messages / times["total_s"],
        "accept_rate": args.messages / times["accept_s"],
        "rate_while_accepting": times["sent_while_accepting"] / times["accept_s"],
    }
    # Sending alone: the messages that went after the API went quiet, their time and CPU.
    after = args.messages - times["sent_while_accepting"]
    result["rate_alone"] = after / (times["total_s"] - times["accept_s"])
    if cpu_before is not None and cpu_after is not None:
        result["cpu_us"] = (cpu_after - cpu_before) / args.messages * 1e6
        result["cpu_alone_us"] = (cpu_after - times["cpu_accepted"]) / after * 1e6
    if idle_before is not None and idle_after is not None:
        result["idle_core"] = (idle_after - idle_before) / IDLE_SECONDS
    return result


def run_case(args: argparse.Namespace, case: str, stores: list[str], work: Path) -> list[str]:
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    simulator = subprocess.Popen(
        pinned(0, [sys.executable, __file__, "--simulator", case, str(sim_port)]),
        stderr=subprocess.DEVNULL,
    )
    lines: list[str] = []
    try:
        wait_listening(sim_port)
        requests = rendered_requests(case, sim_url, args.messages, args.recipients)
        parts = len(requests) // args.messages
        bodies = work / f"{case}.jsonl"
        bodies.write_text("\n".join(json.dumps(r) for r in requests))
        for store in stores:
            bare: list[dict[str, float]] = []
            gateway: list[dict[str, float]] = []
            for round_ in range(1, args.rounds + 1):
                bare.append(bare_round(sim_url, bodies, args.messages))
                gateway.append(gateway_round(args, case, store, sim_url, work, parts))
                b, g = bare[-1], gateway[-1]
                print(
                    f"{case}/{store} round {round_}: bare {b['rate']:.0f}/s {b['cpu_us']:.0f} µs |"
                    f" gateway {g['rate']:.0f}/s {g.get('cpu_us', 0):.0f} µs,"
                    f" ratio {g['rate'] / b['rate']:.3f}; API accepted {g['accept_rate']:.0f}/s,"
                    f" sent meanwhile {g['rate_while_accepting']:.0f}/s;"
                    f" sending alone {g['rate_alone']:.0f}/s {g.get('cpu_alone_us', 0):.0f} µs;"
                    f" idle {g.get('idle_core', 0) * 100:.1f}% of a core",
                    flush=True,
                )
            med = statistics.median
            ratio = med(g["rate"] / b["rate"] for b, g in zip(bare, gateway, strict=True))
            line = (
                f"| {case} ({parts} request(s) a message) | {store} | {med(b['rate'] for b in bare):.0f}/s,"
                f" {med(b['cpu_us'] for b in bare):.0f} µs | {med(g['rate'] for g in gateway):.0f}/s,"
                f" {med(g.get('cpu_us', 0) for g in gateway):.0f} µs | {ratio:.3f} |"
                f" {med(g['accept_rate'] for g in gateway):.0f}/s |"
                f" {med(g['rate_while_accepting'] for g in gateway):.0f}/s |"
                f" {med(g['rate_alone'] for g in gateway):.0f}/s,"
                f" {med(g.get('cpu_alone_us', 0) for g in gateway):.0f} µs |"
                f" {med(g.get('idle_core', 0) for g in gateway) * 100:.1f}% |"
            )
            print(line, flush=True)
            lines.append(line)
    finally:
        simulator.terminate()
        simulator.wait()
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--simulator":
        asyncio.run(run_simulator(sys.argv[2], int(sys.argv[3])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        requests = [json.loads(line) for line in Path(sys.argv[3]).read_text().splitlines()]
        asyncio.run(run_bare(sys.argv[2], requests, int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--case", choices=["whatsapp", "sms", "all"], default="all")
    parser.add_argument("--store", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--recipients", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if args.recipients > 10_000:
        raise SystemExit("at most 10,000 recipients (their numbers have four digits)")
    cases = ["whatsapp", "sms"] if args.case == "all" else [args.case]
    stores = ["sqlite", "postgres"] if args.store == "all" else [args.store]
    work = Path(tempfile.mkdtemp(prefix="gateway-send-"))
    lines = []
    try:
        for case in cases:
            lines += run_case(args, case, stores, work)
    finally:
        shutil.rmtree(work)
    print(
        f"\nmedians of {args.rounds} rounds, {args.messages} messages to {args.recipients}"
        f" recipients, {args.clients} API callers:\n"
        "| case | store | bare client (rate, CPU a message) | gateway (delivered, CPU a message)"
        " | ratio | API accepted | sent while accepting | sending alone (rate, CPU a message)"
        " | idle after |\n|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
