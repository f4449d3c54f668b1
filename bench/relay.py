"""Relay in group conversations: webhook-to-relayed-provider-request latency, and the cost of a
relayed copy against a plain `POST /v1/messages` send, in the same run (issue 22).

The gateway runs as its own process (`gateway serve`), on SQLite, with one WhatsApp channel
whose API is a stub in this process that notes when each request arrives. `--conversations`
four-participant conversations (every participant wrote once first, so their 24-hour windows
are open); then participants write at `--rate` a second for `--seconds`, open loop, and each
message is relayed to the three others. Then, on the same gateway, plain sends at three times
that rate (the same copies a second) for as long. CPU per copy is the gateway process's CPU
(all threads, from /proc) over a phase divided by the provider requests of that phase: a
relayed copy's figure carries its share of the inbound webhook that caused it.

    python bench/relay.py [--conversations 200] [--rate 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingress import (  # the bench's own helpers, beside this file
    SECRET,
    cpu_seconds,
    free_port,
    gateway_config,
    serve_gateway,
    webhook,
)

API_KEY = "bench-api-key-0123456789"
PEOPLE = 4
ROLES = ("customer", "courier", "restaurant", "agent")
# ingress.webhook(i) comes from wa_id 1650555<i % 10000>, with text "Where is my order #i?".
IDS_PER_ROUND = 10_000
NUMBERED = re.compile(rb"#(\d+)")


def wa_id(person: int) -> str:
    return f"1650555{person:04d}"


class ProviderStub:
    """WhatsApp's send API, answering at once; notes when each numbered text arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[int, list[float]] = {}
        self.count = 0
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v21.0/{phone}/messages", self.send)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def send(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.count += 1
        found = NUMBERED.search(body)
        if found:
            self.arrivals.setdefault(int(found.group(1)), []).append(time.monotonic())
        wamid = f"wamid.STUB{self.count:012d}"
        return web.json_response({"messaging_product": "whatsapp", "messages": [{"id": wamid}]})


def config(work: Path, stub: ProviderStub) -> Path:
    path = gateway_config(work, "full")
    data = yaml.safe_load(path.read_text())
    data["channels"][0]["api_base_url"] = f"http://127.0.0.1:{stub.port}/v21.0"
    data["channels"][0]["rate_limit_per_second"] = 100_000  # the stub has no limit to respect
    data["api_keys"] = [{"name": "bench", "key": API_KEY}]
    path.write_text(yaml.safe_dump(data))
    return path


def signed(i: int) -> tuple[bytes, dict[str, str]]:
    """ingress.webhook(i), sent now: a message's time opens its sender's 24-hour window."""
    payload = json.loads(webhook(i))
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    body = json.dumps(payload, separators=(",", ":")).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


async def open_loop(
    rate: float, seconds: float, post: Callable[[int], Awaitable[None]]
) -> dict[int, float]:
    """Call `post(n)` `rate` times a second for `seconds`, not waiting for answers; when each
    started."""
    started: dict[int, float] = {}
    tasks = []
    begin = time.monotonic()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + n / rate - time.monotonic()))
        started[n] = time.monotonic()
        tasks.append(asyncio.ensure_future(post(n)))
    await asyncio.gather(*tasks)
    return started


async def until(done: Callable[[], bool], give_up_after: float) -> bool:
    deadline = time.monotonic() + give_up_after
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def figures(latencies: list[float]) -> str:
    if not latencies:
        return "no copies arrived"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


async def run(args: argparse.Namespace) -> None:
    stub = ProviderStub()
    await stub.start()
    work = Path(tempfile.mkdtemp(prefix="gateway-relay-bench-"))
    port = free_port()
    gateway = serve_gateway(config(work, stub), port)
    base = f"http://127.0.0.1:{port}"
    people: int = args.conversations * PEOPLE
    auth = {"Authorization": f"Bearer {API_KEY}"}
    try:
        async with aiohttp.ClientSession(base) as session:

            async def inbound(i: int) -> None:
                body, headers = signed(i)
                async with session.post("/webhooks/wa-bench", data=body, headers=headers) as r:
                    assert r.status == 200, await r.text()

            # Everyone writes once: their windows open, and they are known contacts.
            await open_loop(args.rate, people / args.rate, inbound)
            for c in range(args.conversations):
                seats = [
                    {
                        "identity": {"channel": "wa-bench", "id": wa_id(c * PEOPLE + k)},
                        "role": ROLES[k],
                        "display_name": f"P{c}-{k}",
                    }
                    for k in range(PEOPLE)
                ]
                async with session.post(
                    "/v1/conversations", json={"participants": seats}, headers=auth
                ) as r:
                    assert r.status == 201, await r.text()

            # Relay: message n from person n % people, numbered i (unique, see ingress.webhook).
            def number(n: int) -> int:
                return n % people + IDS_PER_ROUND * (1 + n // people)

            cpu_before, sent_before = cpu_seconds(gateway.pid), stub.count
            started = await open_loop(args.rate, args.seconds, lambda n: inbound(number(n)))
            want = {number(n): t for n, t in started.items()}
            copies = len(want) * (PEOPLE - 1)
            complete = await until(
                lambda: sum(len(stub.arrivals.get(i, ())) for i in want) >= copies, 120
            )
            relay_cpu = (cpu_seconds(gateway.pid) or 0) - (cpu_before or 0)
            relayed = stub.count - sent_before
            relay_latency = [a - want[i] for i in want for a in stub.arrivals.get(i, ())]

            # Plain sends: the same copies a second, numbered past every relayed message.
            first_plain = IDS_PER_ROUND * (2 + len(started) // people + 1)

            async def plain(n: int) -> None:
                body = {
                    "to": {"channel": "wa-bench", "id": wa_id(n % people)},
                    "content": {"type": "text", "text": f"Plain #{first_plain + n}"},
                }
                async with session.post("/v1/messages", json=body, headers=auth) as r:
                    assert r.status == 202, await r.text()

            cpu_before, sent_before = cpu_seconds(gateway.pid), stub.count
            started = await open_loop(args.rate * (PEOPLE - 1), args.seconds, plain)
            plain_want = {first_plain + n: t for n, t in started.items()}
            plain_complete = await until(lambda: all(i in stub.arrivals for i in plain_want), 120)
            plain_cpu = (cpu_seconds(gateway.pid) or 0) - (cpu_before or 0)
            plain_sent = stub.count - sent_before
            plain_latency = [
                a - plain_want[i] for i in plain_want for a in stub.arrivals.get(i, ())
            ]
    finally:
        gateway.terminate()
        gateway.wait()
        if stub.runner is not None:
            await stub.runner.cleanup()

    per_copy = relay_cpu / max(relayed, 1) * 1e6
    per_send = plain_cpu / max(plain_sent, 1) * 1e6
    print(
        f"relay: {len(want)} messages in {args.conversations} conversations at {args.rate:.0f}/s,"
        f" {relayed} of {copies} copies{'' if complete else ' (timed out)'};"
        f" webhook to provider request {figures(relay_latency)}; {per_copy:.0f} µs CPU a copy"
    )
    print(
        f"plain: {plain_sent} sends at {args.rate * (PEOPLE - 1):.0f}/s"
        f"{'' if plain_complete else ' (timed out)'}; POST to provider request"
        f" {figures(plain_latency)}; {per_send:.0f} µs CPU a send"
    )
    print(
        f"a relayed copy costs {per_copy / per_send:.2f}x a plain send (target <= 1.5x, p99 < 100 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
