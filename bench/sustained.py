"""Steady load: latency at a fixed webhook rate, and whether the store stays bounded.

A burst (bench/ingress.py) shows how fast acknowledgements can go; this shows what a steady
rate does over time. An open-loop client posts the same pre-signed webhooks at `--rate` a
second for `--seconds`, whatever the answers' speed (a provider does not wait either),
first to the bare handler, then to the gateway, in the same run. For the gateway it samples
the SQLite write-ahead log's size every few seconds: a WAL that only grows means checkpoints
never finish (it grew to 437 MB in 30 s at 800/s before the store's checkpointer held
commits back to let it start over).

    python bench/sustained.py [--rate 800] [--seconds 30] [--busy-rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingress import (  # the bench's own helpers, beside this file
    HERE,
    free_port,
    gateway_config,
    inbox_status,
    serve,
    serve_gateway,
    write_data,
)

SAMPLE_SECONDS = 5.0


def megabytes(path: Path) -> float:
    return (path.stat().st_size if path.exists() else 0) / 2**20


async def post_at_rate(
    port: int, lines: list[bytes], rate: float, seconds: float, wal: Path | None
) -> tuple[dict[str, float], list[float]]:
    """Latency figures, and the WAL's size in MB every SAMPLE_SECONDS (when `wal` is given)."""
    latencies: list[float] = []
    failures = 0
    wal_sizes: list[float] = []
    url = f"http://127.0.0.1:{port}/webhooks/wa-bench"

    async def post(session: aiohttp.ClientSession, line: bytes) -> None:
        nonlocal failures
        signature, _, body = line.partition(b"\t")
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature.decode()}
        started = time.monotonic()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            failures += response.status != 200
        latencies.append(time.monotonic() - started)

    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        sent = 0
        next_sample = SAMPLE_SECONDS
        while (elapsed := time.monotonic() - started) < seconds:
            while sent < int(elapsed * rate):  # open loop: due requests go, answered or not
                task = asyncio.create_task(post(session, lines[sent % len(lines)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if wal is not None and elapsed >= next_sample:
                wal_sizes.append(megabytes(wal))
                next_sample += SAMPLE_SECONDS
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
    latencies.sort()
    figures = {
        "sent": sent,
        "failures": failures,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[len(latencies) * 99 // 100] * 1000,
        "max": latencies[-1] * 1000,
    }
    return figures, wal_sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=800)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--busy-rate", type=float, help="the gateway's server.busy_webhooks_per_second"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})  # the servers get core 1 (bench/ingress.py's `serve`)

    work = Path(tempfile.mkdtemp(prefix="gateway-sustained-"))
    data = work / "webhooks.tsv"
    write_data(data, int(args.rate * args.seconds) + 1)
    lines = data.read_bytes().splitlines()

    port = free_port()
    bare_server = serve([sys.executable, str(HERE / "bare_server.py"), str(port)], port)
    try:
        bare, _ = asyncio.run(post_at_rate(port, lines, args.rate, args.seconds, None))
    finally:
        bare_server.terminate()
        bare_server.wait()

    port = free_port()
    gateway = serve_gateway(gateway_config(work, "full", args.busy_rate), port)
    try:
        wal = work / "bench.db-wal"
        result, wal_mb = asyncio.run(post_at_rate(port, lines, args.rate, args.seconds, wal))
        backlog = inbox_status(work / "bench.db").get("pending", 0)
    finally:
        gateway.terminate()
        gateway.wait()

    for name, r in (("bare", bare), ("gateway", result)):
        print(
            f"{name:>7}: {r['sent']:.0f} sent at {args.rate:.0f}/s, {r['failures']:.0f} not 200;"
            f" p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.0f} ms"
        )
    sizes = ", ".join(f"{mb:.0f}" for mb in wal_mb)
    print(f"gateway WAL every {SAMPLE_SECONDS:.0f} s (MB): {sizes}; not yet normalised: {backlog}")
    print(f"p99 ratio gateway/bare: {result['p99'] / bare['p99']:.2f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
