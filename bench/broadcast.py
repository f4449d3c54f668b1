"""A 10,000-member broadcast, on SQLite and on PostgreSQL (issue 25; run by hand).

The gateway runs as its own process (`gateway serve`) on four channels (WhatsApp, Twilio SMS,
LINE, Viber), each on its provider simulator in this process, each limited to `--rate` sends a
second. A group of `--members` couriers (a quarter on each channel) is imported as CSV, then
one broadcast goes to it (WhatsApp's members have not written: they get the approved template).
Measured:
- the time until `POST /v1/broadcasts` answers (target under 1 s);
- the time until every member is queued or skipped (GET /v1/broadcasts/{id} `expanded`);
- each channel's achieved send rate, from its first bulk send to its last, against `--rate`;
- the wait of a reply (`POST /v1/messages`) to an SMS courier sent mid-broadcast, until the
  simulator has it (target under 1 s: it goes ahead of the bulk still queued);
- the gateway's peak RSS (VmHWM, target under 250 MB).

    python bench/broadcast.py [--members 10000] [--rate 100] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingress import cpu_seconds, free_port, serve  # the bench's own helpers, beside this file

from gateway.simulator.line import LineSimulator
from gateway.simulator.sms import TwilioSimulator
from gateway.simulator.viber import ViberSimulator
from gateway.simulator.whatsapp import WhatsAppSimulator

API_KEY = "bench-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PG = "postgresql://postgres@127.0.0.1:5432/test"
WA = {"phone_number_id": "106540352242922", "access_token": "bench-token-0123456789",
      "app_secret": "bench-app-secret-0123", "verify_token": "bench-verify"}  # fmt: skip
LINE = {"channel_secret": "bench-line-secret-0123", "channel_access_token": "bench-line-token"}
SMS = {"account_sid": "AC" + "0" * 32, "auth_token": "bench-twilio-token-0123",
       "from_number": "+14155550199"}  # fmt: skip
VIBER_TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
TEXT = "Road closed: Oudegracht between Bakkerbrug and Weesbrug until 18:00. Avoid it."
CONTENT = {
    "type": "buttons",
    "text": TEXT,
    "actions": [
        {"type": "reply", "title": "Got it", "payload": "ROAD_OK"},
        {"type": "reply", "title": "Need a route", "payload": "ROAD_ROUTE"},
    ],
}
REPLY = "Take Lange Nieuwstraat"


def couriers(count: int) -> dict[str, list[str]]:
    each = count // 4
    return {
        "wa-main": [f"3161234{i:04d}" for i in range(each)],
        "sms-main": [f"+3161235{i:04d}" for i in range(each)],
        "line-main": [f"U{i:032x}" for i in range(each)],
        "vb-main": [f"0123456{i:04d}A=" for i in range(count - 3 * each)],
    }


def simulators() -> dict[str, Any]:
    # No status callbacks: the bench measures sending, not the webhooks statuses bring.
    return {
        "wa-main": WhatsAppSimulator(
            phone_number_id=WA["phone_number_id"], display_phone_number="15550783881",
            access_token=WA["access_token"], app_secret=WA["app_secret"], auto_statuses=(),
        ),
        "sms-main": TwilioSimulator(
            account_sid=SMS["account_sid"], auth_token=SMS["auth_token"],
            phone_number=SMS["from_number"], auto_statuses=(),
        ),
        "line-main": LineSimulator(
            channel_secret=LINE["channel_secret"],
            channel_access_token=LINE["channel_access_token"],
        ),
        "vb-main": ViberSimulator(auth_token=VIBER_TOKEN, auto_statuses=()),
    }  # fmt: skip


def config(work: Path, store: str, sims: dict[str, Any], rate: float, dsn: str | None) -> Path:
    storage: dict[str, Any] = {"path": str(work / "bench.db")}
    if store == "postgres":
        storage = {"backend": "postgres", "dsn": dsn}
    channels = [
        {"id": "wa-main", "type": "whatsapp", "templates": ["road_closure"], **WA},
        {"id": "sms-main", "type": "sms", **SMS},
        {"id": "line-main", "type": "line", **LINE},
        {"id": "vb-main", "type": "viber", "auth_token": VIBER_TOKEN, "sender_name": "Bench"},
    ]
    for channel in channels:
        channel["api_base_url"] = sims[channel["id"]].base_url
        channel["rate_limit_per_second"] = rate
    data = {
        "public_url": "http://127.0.0.1",
        "storage": storage,
        "api_keys": [{"name": "bench", "key": API_KEY}],
        "channels": channels,
        "logging": {"level": "warning"},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def sent_to(sim: Any) -> list[str]:
    """The recipients of a simulator's accepted sends, in order."""
    if isinstance(sim, LineSimulator):
        return [s.to for s in sim.sent]
    if isinstance(sim, TwilioSimulator):
        return [s["params"]["To"][0] for s in sim.sent]
    if isinstance(sim, ViberSimulator):
        return [s["body"]["receiver"] for s in sim.sent]
    return [s["body"]["to"] for s in sim.sent]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def watch(sims: dict[str, Any], stop: asyncio.Event) -> dict[str, list[tuple[float, int]]]:
    """Each simulator's count of sends, every 20 ms, till `stop`."""
    seen: dict[str, list[tuple[float, int]]] = {c: [] for c in sims}
    while not stop.is_set():
        now = time.monotonic()
        for channel, sim in sims.items():
            seen[channel].append((now, len(sim.sent)))
        await asyncio.sleep(0.02)
    return seen


def rate_of(samples: list[tuple[float, int]]) -> float:
    moving = [(t, n) for t, n in samples if n > 0]
    if len(moving) < 2:
        return float("nan")
    (t0, n0), (t1, n1) = moving[0], next(s for s in moving if s[1] == moving[-1][1])
    return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")


async def one_round(
    store: str, args: argparse.Namespace, work: Path, dsn: str | None
) -> dict[str, Any]:
    sims = simulators()
    for sim in sims.values():
        await sim.start()
    members = couriers(args.members)
    for user in members["vb-main"]:
        sims["vb-main"].add_user(user)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = serve(
        [sys.executable, "-m", "gateway", "serve", "--config",
         str(config(work, store, sims, args.rate, dsn)), "--port", str(port)],
        port,
    )  # fmt: skip
    for channel, sim in sims.items():
        sim.webhook_url = f"{url}/webhooks/{channel}"
    try:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:
            group = (await client.post("/v1/groups", json={"name": "Utrecht"})).json()["id"]
            csv = "channel,id\n" + "".join(f"{c},{i}\n" for c, ids in members.items() for i in ids)
            started = time.monotonic()
            imported = await client.post(
                f"/v1/groups/{group}/members/import",
                content=csv.encode(),
                headers={"Content-Type": "text/csv"},
            )
            import_seconds = time.monotonic() - started
            assert imported.status_code == 200 and imported.json()["added"] == args.members

            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(sims, stop))
            body = {"group_id": group, "content": CONTENT,
                    "options": {"template": {"wa-main": {"name": "road_closure", "language": "nl"}}}}  # fmt: skip
            cpu_before = cpu_seconds(process.pid) or 0.0
            started = time.monotonic()
            accepted = await client.post("/v1/broadcasts", json=body)
            answer_seconds = time.monotonic() - started
            broadcast_id = accepted.json()["id"]
            queued_seconds = None
            reply_wait = None
            while True:
                view = (await client.get(f"/v1/broadcasts/{broadcast_id}?limit=1")).json()
                elapsed = time.monotonic() - started
                if queued_seconds is None and view["expanded"] == view["audience_size"]:
                    queued_seconds = elapsed
                if reply_wait is None and elapsed > args.reply_after:
                    reply_wait = await reply(client, sims["sms-main"], members["sms-main"][0])
                if view["state"] == "completed":
                    break
                await asyncio.sleep(0.2)
            total_seconds = time.monotonic() - started
            cpu = ((cpu_seconds(process.pid) or 0.0) - cpu_before) / total_seconds
            stop.set()
            samples = await watcher
    finally:
        rss = peak_rss_mb(process.pid)
        process.terminate()
        process.wait()
        for sim in sims.values():
            await sim.stop()
    return {
        "store": store,
        "import_s": import_seconds,
        "answer_s": answer_seconds,
        "queued_s": queued_seconds,
        "total_s": total_seconds,
        "rates": {c: rate_of(s) for c, s in samples.items()},
        "reply_wait_s": reply_wait,
        "peak_rss_mb": rss,
        "cpu": cpu,
        "copies": {c: len(sent_to(sim)) for c, sim in sims.items()},
    }


async def reply(client: httpx.AsyncClient, sms: TwilioSimulator, number: str) -> float:
    """Send a reply to an SMS courier; seconds until the simulator has it."""
    asked = time.monotonic()
    body = {"to": {"channel": "sms-main", "id": number}, "content": {"type": "text", "text": REPLY}}
    assert (await client.post("/v1/messages", json=body)).status_code == 202
    while not any(s["params"]["Body"][0] == REPLY for s in sms.sent[-200:]):  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    return time.monotonic() - asked


async def main_async(args: argparse.Namespace) -> None:
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory() as work:
            dsn = None
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            if store == "postgres":
                import psycopg

                with psycopg.connect(PG, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
                dsn = f"{PG}?options=-csearch_path%3D{schema}"
            try:
                result = await one_round(store, args, Path(work), dsn)
            finally:
                if dsn is not None:
                    import psycopg

                    with psycopg.connect(PG, autocommit=True) as conn:
                        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        rates = ", ".join(f"{c} {r:.1f}/s" for c, r in result["rates"].items())
        print(
            f"{store}: {args.members} members, rate limit {args.rate:g}/s per channel\n"
            f"  import {result['import_s']:.2f} s; API answered in {result['answer_s'] * 1000:.0f} ms;"
            f" every member queued after {result['queued_s']:.2f} s; completed after"
            f" {result['total_s']:.1f} s\n"
            f"  achieved: {rates}\n"
            f"  reply mid-broadcast waited {result['reply_wait_s'] * 1000:.0f} ms;"
            f" peak RSS {result['peak_rss_mb']:.0f} MB; gateway CPU {result['cpu']:.0%} of a core;"
            f" copies {result['copies']}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="each channel's limit a second")
    parser.add_argument("--reply-after", type=float, default=5.0, help="seconds into the broadcast")
    parser.add_argument("--stores", default="sqlite,postgres")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
