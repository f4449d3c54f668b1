"""Genuine webhooks' latency while forged 1 MB forms flood the SMS webhook, against none.

A forged form is refused, but what matters is what the refusal costs everyone else: parsed and
signed in full, one such request cost half a second of the event loop, and one or two a second
pushed every channel's acknowledgements to seconds. This starts the gateway (one Twilio
channel, the default server settings) in a process of its own, then measures signed genuine
SMS webhooks, one at a time, first alone and then while other processes post forged 1 MB forms
(thousands of short fields, the worst case for the signature check) at a steady rate. It
reports p50 and p99 of both phases and the ratio of the p99s.

    python bench/flood.py [--genuine 400] [--rate 20] [--connections 4]

Also `python bench/flood.py flood URL --rate R --seconds S`: only the flood (tests use it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.ingress import free_port, serve  # noqa: E402
from gateway.simulator.sms import sign  # noqa: E402

AUTH_TOKEN = "bench-twilio-auth-token-0123456789"
ACCOUNT_SID = "AC" + "b3" * 16
NUMBER = "+14155550199"
FORGED_BYTES = 1_000_000


def forged_form(size: int = FORGED_BYTES) -> bytes:
    """A form of about `size` bytes in short fields: every one is read, sorted and signed."""
    field = b"Body%d=%s"
    parts, total, i = [], 0, 0
    while total < size:
        part = field % (i, b"x" * 40)
        parts.append(part)
        total += len(part) + 1
        i += 1
    return b"&".join(parts)


def genuine_form(i: int) -> dict[str, str]:
    return {
        "MessageSid": f"SM{i:032x}",
        "SmsSid": f"SM{i:032x}",
        "AccountSid": ACCOUNT_SID,
        "From": "+14155550100",
        "To": NUMBER,
        "Body": f"Is order {i} ready?",
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }


async def _forge_once(host: str, port: int, path: str, body: bytes) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Twilio-Signature: forged\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    try:
        writer.write(head + body)
        await writer.drain()
        await reader.read(4096)  # the answer, or nothing: a refused body is cut off
    except OSError:
        pass
    finally:
        writer.close()


async def flood(url: str, rate: float, seconds: float, connections: int) -> int:
    """Post forged forms to `url` at `rate` a second, `connections` at most in flight."""
    where = urlsplit(url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    body = forged_form()
    slots = asyncio.Semaphore(connections)
    tasks: set[asyncio.Task[None]] = set()
    sent = 0

    async def one() -> None:
        async with slots:
            await _forge_once(host, port, where.path, body)

    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        while sent < elapsed * rate:
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(0.005)
    for task in list(tasks):
        task.cancel()
    return sent


def start_flood(url: str, rate: float, seconds: float, connections: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(HERE / "flood.py"), "flood", url]
    command += ["--rate", str(rate), "--seconds", str(seconds), "--connections", str(connections)]
    return subprocess.Popen(command)


async def genuine_latencies(url: str, public_url: str, count: int, start: int) -> list[float]:
    """Seconds each of `count` signed SMS webhooks took to be acknowledged, one at a time."""
    latencies = []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(start, start + count):
            params = genuine_form(i)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sign(AUTH_TOKEN, public_url, params),
            }
            began = time.perf_counter()
            answer = await client.post(url, content=urlencode(params), headers=headers)
            latencies.append(time.perf_counter() - began)
            if answer.status_code != 200:
                raise SystemExit(f"a genuine webhook got {answer.status_code}: {answer.text}")
    return latencies


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


def _config(work: Path, port: int) -> Path:
    config = {
        "public_url": f"http://127.0.0.1:{port}",
        "storage": {"path": str(work / "flood.db"), "synchronous": "normal"},
        "channels": [
            {
                "id": "sms-bench",
                "type": "sms",
                "api_base_url": "http://127.0.0.1:9",
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": NUMBER,
            }
        ],
        "logging": {"level": "error"},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return work / "config.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--genuine", type=int, default=400, help="genuine webhooks per phase")
    parser.add_argument("--rate", type=float, default=20, help="forged forms per second")
    parser.add_argument("--connections", type=int, default=4, help="forged forms in flight")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = _config(Path(tmp), port)
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
        server = serve([*command, "--port", str(port)], port)
        url = public = f"http://127.0.0.1:{port}/webhooks/sms-bench"
        try:
            asyncio.run(genuine_latencies(url, public, 50, 0))  # warm up
            alone = asyncio.run(genuine_latencies(url, public, args.genuine, 1000))
            flooder = start_flood(url, args.rate, 600, args.connections)
            time.sleep(1)
            began = time.monotonic()
            flooded = asyncio.run(genuine_latencies(url, public, args.genuine, 100_000))
            took = time.monotonic() - began
            flooder.terminate()
            flooder.wait()
        finally:
            server.terminate()
            server.wait()
    ms = 1000
    print(f"alone:   p50 {statistics.median(alone) * ms:.2f} ms, p99 {p99(alone) * ms:.2f} ms")
    print(
        f"flooded: p50 {statistics.median(flooded) * ms:.2f} ms, p99 {p99(flooded) * ms:.2f} ms"
        f" ({args.rate:g} forged {FORGED_BYTES / 1e6:g} MB forms/s for {took:.1f} s)"
    )
    print(f"p99 ratio flooded/alone: {p99(flooded) / p99(alone):.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        flood_parser = argparse.ArgumentParser()
        flood_parser.add_argument("command")
        flood_parser.add_argument("url")
        flood_parser.add_argument("--rate", type=float, default=20)
        flood_parser.add_argument("--seconds", type=float, default=10)
        flood_parser.add_argument("--connections", type=int, default=4)
        options = flood_parser.parse_args()
        asyncio.run(flood(options.url, options.rate, options.seconds, options.connections))
    else:
        main()
