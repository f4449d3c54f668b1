"""Durable webhook acknowledgements per second: the gateway's ingress against a bare handler.

Both servers get the same load (wrk, 32 connections, the same pre-signed distinct webhooks) in
the same run; the figure that matters is the ratio. Rounds alternate bare, gateway, bare, ...
and medians are reported, because a shared VM's CPU steal moves single runs by 30% or more.
Where `taskset` exists, each server gets core 1 and wrk core 0, so they do not fight.
On Linux the report adds each server's CPU time per request (all its threads, from /proc):
it says where a ratio comes from (work per request, or waiting on the disk) and moves far
less with the host than a rate does.

Acknowledging is what a provider waits for; normalising runs behind it, from the inbox. So the
gateway figure is acknowledgements per second during the burst, and the report adds how long
the normaliser then takes to drain the backlog (the sustained, end-to-end rate).

    python bench/ingress.py [--seconds 10] [--connections 32] [--rounds 3] [--console]

`--console` turns the console on and keeps one page watching its channels table over the live
socket during each burst (issue 28: the console adds nothing to the webhook hot path).

Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SECRET = "bench-app-secret-0123456789"
PHONE_NUMBER_ID = "106540352242922"
# The webhooks' dates: an hour ago, so ingress's acceptance window (8 days) takes them as new
# rather than acknowledging them as replays without storing them.
DATED_FROM = int(time.time()) - 3600


def webhook(i: int) -> bytes:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [
                                {
                                    "profile": {"name": "Bench User"},
                                    "wa_id": f"1650555{i % 10000:04d}",
                                }
                            ],
                            "messages": [
                                {
                                    "from": f"1650555{i % 10000:04d}",
                                    "id": f"wamid.BENCH{i:012d}",
                                    "timestamp": str(DATED_FROM + i % 3600),
                                    "type": "text",
                                    "text": {"body": f"Where is my order #{i}?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def write_data(path: Path, count: int, start: int = 0) -> None:
    with path.open("wb") as out:
        for i in range(start, start + count):
            body = webhook(i)
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            out.write(sig.encode() + b"\t" + body + b"\n")
        # On disk before the first round: otherwise the kernel writes these hundreds of MB
        # back during it, and the gateway's fsyncs queue behind them (p99 of 200+ ms).
        out.flush()
        os.fsync(out.fileno())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU a process (all its threads) has used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_wrk(
    server: subprocess.Popen[bytes], port: int, seconds: int, connections: int, data: Path
) -> dict[str, float]:
    """wrk's rate and latency against `server`, and the server's CPU per request: a rate on a
    shared VM moves with the host, the CPU a request costs much less."""
    env = {**os.environ, "BENCH_DATA": str(data), "BENCH_THREADS": "1"}
    cpu_before = cpu_seconds(server.pid)
    out = subprocess.run(
        pinned(
            0,
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(HERE / "webhooks.lua"),
                f"http://127.0.0.1:{port}/webhooks/wa-bench",
            ],
        ),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    cpu_after = cpu_seconds(server.pid)
    if "Non-2xx" in out:
        raise SystemExit("non-2xx answers during the benchmark:\n" + out)

    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    assert rps and requests, out
    result = {"rps": float(rps.group(1)), "p50": latency_ms("50"), "p99": latency_ms("99")}
    if cpu_before is not None and cpu_after is not None:
        result["cpu_us"] = (cpu_after - cpu_before) / int(requests.group(1)) * 1e6
    return result


def inbox_status(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM inbox GROUP BY status").fetchall())


def serve(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(pinned(1, command), cwd=HERE.parent, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return process


def bare_round(args: argparse.Namespace, data: Path) -> dict[str, float]:
    port = free_port()
    process = serve([sys.executable, str(HERE / "bare_server.py"), str(port)], port)
    try:
        return run_wrk(process, port, args.seconds, args.connections, data)
    finally:
        process.terminate()
        process.wait()


def whatsapp_channel(channel_id: str, api_base_url: str) -> dict[str, Any]:
    """The bench's WhatsApp channel, whose webhooks `webhook` makes and signs."""
    return {
        "id": channel_id,
        "type": "whatsapp",
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": "bench-token-0123456789",
        "app_secret": SECRET,
        "verify_token": "bench-verify",
        "api_base_url": api_base_url,
    }


CONSOLE_PASSWORD = "bench-console-password"


def console_section() -> dict[str, Any]:
    """The console on, with one operator: `--console` watches it during the burst."""
    from gateway.console.auth import hash_password

    account = {
        "name": "bench",
        "role": "operator",
        "password_hash": hash_password(CONSOLE_PASSWORD),
    }
    return {"enabled": True, "accounts": [account]}


class ConsoleWatcher:
    """One logged-in console page watching the channels table over /console/live, as an
    operator's open browser tab does, in a thread of its own for the whole burst."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.updates = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    def __enter__(self) -> ConsoleWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    async def _watch(self) -> None:
        import aiohttp

        base = f"http://127.0.0.1:{self.port}"
        # unsafe: the jar keeps cookies of an IP address (127.0.0.1), as a browser does.
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            form = {"name": "bench", "password": CONSOLE_PASSWORD}
            async with session.post(f"{base}/console/login", data=form) as answer:
                assert answer.status == 200, answer.status  # followed to the channels page
            async with session.ws_connect(f"{base.replace('http', 'ws')}/console/live") as socket:
                await socket.send_json({"watch": "channels"})
                while not self._stop.is_set():
                    try:
                        await socket.receive(timeout=0.5)
                        self.updates += 1
                    except TimeoutError:
                        pass


def gateway_config(
    work: Path,
    synchronous: str,
    busy_rate: float | None = None,
    pause_normalising: bool = False,
    console: bool = False,
) -> Path:
    """A fresh store and the config of one WhatsApp channel that accepts the bench's webhooks
    (`busy_rate`: server.busy_webhooks_per_second, when not the default)."""
    db = work / "bench.db"
    for leftover in work.glob("bench.db*"):
        leftover.unlink()
    config = {
        "public_url": "http://127.0.0.1",
        "storage": {"path": str(db), "synchronous": synchronous},
        "channels": [whatsapp_channel("wa-bench", "http://127.0.0.1:9")],
        "logging": {"level": "warning"},
    }
    server: dict[str, object] = {}
    if busy_rate is not None:
        server["busy_webhooks_per_second"] = busy_rate
    if pause_normalising:
        server["normalise_during_bursts"] = False
    if server:
        config["server"] = server
    if console:
        config["console"] = console_section()
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return work / "config.yaml"


def serve_gateway(config: Path, port: int) -> subprocess.Popen[bytes]:
    command = ["-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    return serve([sys.executable, *command], port)


def gateway_round(args: argparse.Namespace, data: Path, work: Path) -> dict[str, float]:
    db = work / "bench.db"
    port = free_port()
    config = gateway_config(
        work, args.synchronous, pause_normalising=args.pause_normalising, console=args.console
    )
    process = serve_gateway(config, port)
    try:
        if args.console:
            with ConsoleWatcher(port) as watcher:
                result = run_wrk(process, port, args.seconds, args.connections, data)
            result["console_updates"] = watcher.updates
        else:
            result = run_wrk(process, port, args.seconds, args.connections, data)
        stopped = time.monotonic()
        status = inbox_status(db)
        result["acked"] = sum(status.values())
        result["normalised_during"] = status.get("done", 0)
        while inbox_status(db).get("pending", 0):
            time.sleep(0.1)
        result["drain_s"] = time.monotonic() - stopped
        result["end_to_end_rps"] = result["acked"] / (args.seconds + result["drain_s"])
        return result
    finally:
        process.terminate()
        process.wait()


def cpu_per_request(bare: dict[str, float], gateway: dict[str, float]) -> str:
    if "cpu_us" not in bare or "cpu_us" not in gateway:
        return ""
    return f" | CPU per request: bare {bare['cpu_us']:.0f} µs, gateway {gateway['cpu_us']:.0f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument(
        "--pause-normalising",
        action="store_true",
        help="server.normalise_during_bursts: false (normalise only after the burst)",
    )
    parser.add_argument(
        "--console",
        action="store_true",
        help="the console on, one page watching the channels table live during each burst",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    data = work / "webhooks.tsv"
    write_data(data, 25_000 * args.seconds)
    bare: list[dict[str, float]] = []
    gateway: list[dict[str, float]] = []
    for round_ in range(1, args.rounds + 1):
        bare.append(bare_round(args, data))
        gateway.append(gateway_round(args, data, work))
        b, g = bare[-1], gateway[-1]
        print(
            f"round {round_}: bare {b['rps']:.0f}/s p99 {b['p99']:.2f} ms | gateway {g['rps']:.0f}/s "
            f"p50 {g['p50']:.2f} ms p99 {g['p99']:.2f} ms | ratio {g['rps'] / b['rps']:.2f} | "
            f"{g['normalised_during']:.0f} of {g['acked']:.0f} normalised during the burst, "
            f"rest drained in {g['drain_s']:.1f} s{cpu_per_request(b, g)}",
            flush=True,
        )
    med = statistics.median
    ratios = [g["rps"] / b["rps"] for b, g in zip(bare, gateway, strict=True)]
    print(
        f"median: bare {med(b['rps'] for b in bare):.0f}/s, gateway {med(g['rps'] for g in gateway):.0f}/s "
        f"(p50 {med(g['p50'] for g in gateway):.2f} ms, p99 {med(g['p99'] for g in gateway):.2f} ms), "
        f"ratio {med(ratios):.2f} (target >= 0.50, p99 < 15 ms); end to end incl. normalising "
        f"{med(g['end_to_end_rps'] for g in gateway):.0f}/s; synchronous={args.synchronous}"
        + ("; normalising paused during bursts" if args.pause_normalising else "")
        + (
            f"; console on, one page watching ({med(g['console_updates'] for g in gateway):.0f}"
            " live updates per burst)"
            if args.console
            else ""
        )
    )
    if all("cpu_us" in r for r in bare + gateway):
        cpu_ratios = [g["cpu_us"] / b["cpu_us"] for b, g in zip(bare, gateway, strict=True)]
        print(
            f"CPU per request: bare {med(b['cpu_us'] for b in bare):.0f} µs, gateway "
            f"{med(g['cpu_us'] for g in gateway):.0f} µs ({med(cpu_ratios):.2f}x bare)"
        )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
