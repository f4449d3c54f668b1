"""Durable webhook acknowledgements per second: the gateway's ingress against a bare handler.

Both servers get the same load (wrk, 32 connections, the same pre-signed distinct webhooks) in
the same run; the figure that matters is the ratio. Run by hand:

    python bench/ingress.py [--seconds 10] [--connections 32]

Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SECRET = "bench-app-secret-0123456789"
PHONE_NUMBER_ID = "106540352242922"


def webhook(i: int) -> bytes:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Bench User"}, "wa_id": f"1650555{i % 10000:04d}"}],
            "messages": [{"from": f"1650555{i % 10000:04d}", "id": f"wamid.BENCH{i:012d}",
                          "timestamp": str(1749416383 + i), "type": "text",
                          "text": {"body": f"Where is my order #{i}?"}}],
        }}]}],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def write_data(path: Path, count: int) -> None:
    with path.open("wb") as out:
        for i in range(count):
            body = webhook(i)
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            out.write(sig.encode() + b"\t" + body + b"\n")


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


def run_wrk(port: int, seconds: int, connections: int, data: Path) -> dict[str, float]:
    env = {**os.environ, "BENCH_DATA": str(data), "BENCH_THREADS": "2"}
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(HERE / "webhooks.lua"),
         f"http://127.0.0.1:{port}/webhooks/wa-bench"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit("non-2xx answers during the benchmark:\n" + out)

    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps, out
    return {"rps": float(rps.group(1)), "p50": latency_ms("50"), "p99": latency_ms("99")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    data = work / "webhooks.tsv"
    write_data(data, 40_000 * args.seconds // 10 + 20_000)
    config = {
        "public_url": "http://127.0.0.1",
        "storage": {"path": str(work / "bench.db"), "synchronous": args.synchronous},
        "channels": [{
            "id": "wa-bench", "type": "whatsapp", "phone_number_id": PHONE_NUMBER_ID,
            "access_token": "bench-token-0123456789", "app_secret": SECRET, "verify_token": "bench-verify",
            "api_base_url": "http://127.0.0.1:9",
        }],
        "logging": {"level": "warning"},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))

    results = {}
    servers = {
        "bare aiohttp handler": lambda port: [sys.executable, str(HERE / "bare_server.py"), str(port)],
        "gateway ingress (durable)": lambda port: [
            sys.executable, "-m", "gateway", "serve", "--config", str(work / "config.yaml"), "--port", str(port)],
    }
    for name, command in servers.items():
        port = free_port()
        process = subprocess.Popen(command(port), cwd=HERE.parent, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port)
            run_wrk(port, 2, args.connections, data)  # warm-up
            results[name] = run_wrk(port, args.seconds, args.connections, data)
        finally:
            process.terminate()
            process.wait()
    import sqlite3

    stored = sqlite3.connect(work / "bench.db").execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
    print(f"{'server':28} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        print(f"{name:28} {r['rps']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}")
    base, gateway = results["bare aiohttp handler"], results["gateway ingress (durable)"]
    print(f"ratio gateway/bare: {gateway['rps'] / base['rps']:.2f} "
          f"(target >= 0.50); p99 {gateway['p99']:.2f} ms (target < 15 ms); "
          f"{stored} distinct webhooks stored; synchronous={args.synchronous}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
