"""The web channel at scale: thousands of connected clients on one gateway process.

A gateway (a subprocess pinned to core 1, SQLite) serves one web channel; this process opens
`--clients` sockets (one user each), then posts text messages to random users through
`POST /v1/messages` at `--rate` a second for `--seconds` (open loop, like a backend). Each
client acks what it gets, as the example page does. The figures:
- RSS of the gateway per connected client (before and after the sockets open);
- messages a second delivered to the clients, and the latency from the POST to the client's
  receipt of the frame (p50, p99, max);
- whether every message reached its client exactly once.

    python bench/web.py [--clients 2000] [--rate 500] [--seconds 10] [--no-ack]

The clients and the posting share this process's core: at high rates it is the client side
that saturates first (see the CPU figures printed for both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingress import cpu_seconds, free_port, serve_gateway  # the bench's own helpers

from adapters.web.tokens import mint

API_KEY = "bench-api-key-0123456789"
SECRET = "bench-web-token-secret-0123456789abcdef"


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def config(work: Path) -> Path:
    data: dict[str, Any] = {
        "public_url": "http://127.0.0.1",
        "storage": {"path": str(work / "web.db")},
        "api_keys": [{"name": "bench", "key": API_KEY}],
        "channels": [
            {"id": "web", "type": "web", "token_secret": SECRET, "max_connections_per_user": 5}
        ],
        "logging": {"level": "warning"},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(data))
    return work / "config.yaml"


def states(db: Path, message_ids: list[str]) -> dict[str, int]:
    """How many of `message_ids` are in each state, and how many are in the web log."""
    with sqlite3.connect(db) as conn:
        marks = ",".join("?" * len(message_ids))
        rows = conn.execute(
            f"SELECT state, COUNT(*) FROM messages WHERE id IN ({marks}) GROUP BY state",
            message_ids,
        ).fetchall()
        logged = conn.execute(
            f"SELECT COUNT(*) FROM web_log WHERE message_id IN ({marks})", message_ids
        ).fetchone()[0]
    return {**dict(rows), "in_web_log": logged}


class Clients:
    def __init__(self, ack: bool) -> None:
        self.ack = ack
        self.received: dict[str, list[float]] = {}  # message id → receipt times (one expected)
        self.expected = 0
        self.all_in = asyncio.Event()

    async def connect(
        self, session: aiohttp.ClientSession, url: str, user: str
    ) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(url, heartbeat=None, max_msg_size=0)
        token = mint(SECRET.encode(), "web", user, time.time() + 3600)
        await ws.send_str(json.dumps({"type": "auth", "token": token}))
        ready = json.loads((await ws.receive(timeout=60)).data)
        assert ready["type"] == "ready", ready
        return ws

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            frame = json.loads(message.data)
            if frame["type"] == "message":
                self.received.setdefault(frame["message_id"], []).append(time.perf_counter())
                if len(self.received) >= self.expected:
                    self.all_in.set()
                if self.ack:
                    await ws.send_str(json.dumps({"type": "ack", "event_id": frame["event_id"]}))


async def post_at_rate(
    session: aiohttp.ClientSession, base: str, users: list[str], rate: float, seconds: float
) -> dict[str, float]:
    """Post one text a 1/rate seconds to a random user: message id → when its POST began."""
    posted: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    pending: set[asyncio.Task[None]] = set()

    async def one(user: str) -> None:
        started = time.perf_counter()
        body = {"to": {"channel": "web", "id": user}, "content": {"type": "text", "text": "ping"}}
        async with session.post(f"{base}/v1/messages", json=body, headers=headers) as answer:
            assert answer.status == 202, await answer.text()
            posted[(await answer.json())["id"]] = started

    begin = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = begin + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(random.choice(users)))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return posted


async def connect_all(
    session: aiohttp.ClientSession, clients: Clients, url: str, users: list[str]
) -> list[aiohttp.ClientWebSocketResponse]:
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    connecting = time.perf_counter()
    for start in range(0, len(users), 200):
        batch = users[start : start + 200]
        sockets += await asyncio.gather(*(clients.connect(session, url, u) for u in batch))
    print(f"connected in {time.perf_counter() - connecting:.1f} s")
    return sockets


def report(
    clients: Clients, posted: dict[str, float], began: float, args: argparse.Namespace
) -> int:
    """Print the delivery figures; how many messages are missing."""
    ended = max(t for times in clients.received.values() for t in times)
    latencies = sorted(
        (clients.received[m][0] - posted[m]) * 1000 for m in posted if m in clients.received
    )
    doubled = sum(1 for times in clients.received.values() if len(times) > 1)
    missing = len(posted) - len(latencies)
    rate = len(latencies) / (ended - began)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"posted {len(posted)} at {args.rate:g}/s for {args.seconds:g} s;"
          f" delivered {len(latencies)} ({missing} missing, {doubled} doubled) at {rate:.0f}/s")  # fmt: skip
    print(f"POST → client latency ms: p50 {statistics.median(latencies):.1f},"
          f" p99 {p99:.1f}, max {latencies[-1]:.1f}")  # fmt: skip
    return missing


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        port = free_port()
        gateway = serve_gateway(config(work), port)
        clients = Clients(ack=not args.no_ack)
        users = [f"user{i}" for i in range(args.clients)]
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                await asyncio.sleep(1)
                idle_rss = rss_bytes(gateway.pid)
                url = f"ws://127.0.0.1:{port}/web/web/socket"
                sockets = await connect_all(session, clients, url, users)
                await asyncio.sleep(1)
                connected_rss = rss_bytes(gateway.pid)
                readers = [asyncio.create_task(clients.read(ws)) for ws in sockets]
                per_client = (connected_rss - idle_rss) / len(sockets)
                print(f"{len(sockets)} clients connected; gateway RSS {idle_rss / 2**20:.1f} MiB"
                      f" → {connected_rss / 2**20:.1f} MiB: {per_client / 1024:.1f} KiB a client")  # fmt: skip

                cpu_before, mine_before = cpu_seconds(gateway.pid), time.process_time()
                clients.expected = int(args.rate * args.seconds)
                began = time.perf_counter()
                base = f"http://127.0.0.1:{port}"
                posted = await post_at_rate(session, base, users, args.rate, args.seconds)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(clients.all_in.wait(), 60)
                cpu_after = cpu_seconds(gateway.pid)
                missing = report(clients, posted, began, args)
                if cpu_before is not None and cpu_after is not None:
                    print(f"gateway CPU {1000 * (cpu_after - cpu_before) / len(posted):.2f} ms a message;"
                          f" this process {time.process_time() - mine_before:.1f} s CPU")  # fmt: skip
                closed = [ws.close_code for ws in sockets if ws.closed]
                if closed:
                    print(f"{len(closed)} sockets closed, codes {sorted(set(closed))}")
                if missing:
                    lost = [m for m in posted if m not in clients.received]
                    print("missing messages' states in the store:", states(work / "web.db", lost))
                for task in readers:
                    task.cancel()
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        finally:
            gateway.terminate()
            gateway.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--no-ack", action="store_true", help="clients do not ack (no statuses)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
