"""Instructions per webhook: the gateway's ingress against the bare handler, counted by callgrind.

bench/ingress.py measures rates, and rates on a shared VM move by 30% within the hour. This
counts the CPU instructions each server executes per request under the same wrk load (valgrind's
callgrind, which counts instructions, not time), so a change to the acknowledgement path shows as
a repeatable number whatever else the host is doing. Counting starts after a warm-up, so
imports, startup and the first requests' caches are not in the figure.

Under valgrind everything runs ~50x slower, so the gateway's `busy_webhooks_per_second` is
scaled down to match: the normaliser then trickles during the burst as it does natively.
The gateway figures are: per acknowledged webhook (what the ingress benchmark's rate depends
on), and per webhook once the normaliser has drained the backlog (acknowledging + normalising:
the end-to-end cost).

    python bench/instructions.py [--seconds 10] [--connections 8]

Needs wrk and valgrind (Debian: apt-get install wrk valgrind).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

from ingress import (
    HERE,
    free_port,
    gateway_config,
    inbox_status,
    wait_listening,
    write_data,
)

T = TypeVar("T")

# Natively the normaliser yields above 1,000 webhooks/s; callgrind runs Python ~50x slower.
BUSY_RATE_UNDER_VALGRIND = 20.0


class Data(NamedTuple):
    warm_up: Path
    counted: Path


def under_callgrind(command: list[str], out_dir: Path, port: int) -> subprocess.Popen[bytes]:
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_dir}/callgrind.out.%p",
    ]
    process = subprocess.Popen(
        [*valgrind, *command], cwd=HERE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_listening(port, timeout=300)
    return process


def callgrind_control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def wrk(port: int, seconds: int, connections: int, data: Path) -> int:
    """Requests wrk completed (all answered 2xx, or this exits)."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(HERE / "webhooks.lua"),
            f"http://127.0.0.1:{port}/webhooks/wa-bench",
        ],
        capture_output=True,
        text=True,
        env={"BENCH_DATA": str(data), "BENCH_THREADS": "1", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("errors during the benchmark:\n" + out)
    requests = re.search(r"(\d+) requests in", out)
    assert requests, out
    return int(requests.group(1))


def counted(pid: int, out_dir: Path, work: Callable[[], T]) -> tuple[int, T]:
    """Instructions the process executes while `work()` runs, and what it returned."""
    for stale in out_dir.glob("callgrind.out.*"):
        stale.unlink()
    callgrind_control("--instr=on", str(pid))
    callgrind_control("--zero", str(pid))
    result = work()
    callgrind_control("--instr=off", str(pid))
    callgrind_control("--dump", str(pid))
    total = 0
    for dump in out_dir.glob("callgrind.out.*"):
        match = re.search(r"^totals:\s+(\d+)", dump.read_text(errors="replace"), re.M)
        if match:
            total += int(match.group(1))
    return total, result


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def bare(args: argparse.Namespace, data: Data, out_dir: Path) -> float:
    port = free_port()
    process = under_callgrind(
        [sys.executable, str(HERE / "bare_server.py"), str(port)], out_dir, port
    )
    try:
        wrk(port, 3, args.connections, data.warm_up)
        total, requests = counted(
            process.pid, out_dir, lambda: wrk(port, args.seconds, args.connections, data.counted)
        )
        return total / requests
    finally:
        stop(process)


def gateway(args: argparse.Namespace, data: Data, work: Path, out_dir: Path) -> tuple[float, float]:
    db = work / "bench.db"
    port = free_port()
    config = gateway_config(work, args.synchronous, BUSY_RATE_UNDER_VALGRIND)
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
    process = under_callgrind([*command, "--port", str(port)], out_dir, port)
    try:
        wrk(port, 3, args.connections, data.warm_up)
        while inbox_status(db).get("pending", 0):  # the warm-up's backlog is not counted
            time.sleep(0.5)
        before = sum(inbox_status(db).values())
        burst, requests = counted(
            process.pid, out_dir, lambda: wrk(port, args.seconds, args.connections, data.counted)
        )
        left = inbox_status(db).get("pending", 0)
        acked = sum(inbox_status(db).values()) - before
        # More stored than wrk counted: requests in flight when it stopped. Fewer: wrk wrapped
        # around the data, and duplicates cost less than new webhooks.
        if acked < requests:
            raise SystemExit(f"{requests} requests but {acked} stored: more data is needed")

        def drain() -> None:
            while inbox_status(db).get("pending", 0):
                time.sleep(0.5)

        drained, _ = counted(process.pid, out_dir, drain)
        # The normaliser trickles during the burst (a larger share than natively: its pauses
        # are wall-clock time). Its rows are charged at the drain's cost per row; busy batches
        # are smaller and cost a little more a row, so the acknowledging figure errs high.
        normalising_during = (acked - left) * drained / max(left, 1)
        return (burst - normalising_during) / acked, (burst + drained) / acked
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    args = parser.parse_args()
    for tool in ("wrk", "valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install wrk valgrind)")
    work = Path(tempfile.mkdtemp(prefix="gateway-instructions-"))
    out_dir = work / "callgrind"
    out_dir.mkdir()
    # Distinct webhooks for the warm-up and the counted run: a repeat would be a dedupe hit.
    data = Data(work / "warm-up.tsv", work / "counted.tsv")
    write_data(data.warm_up, 2_000)
    write_data(data.counted, 1_000 * args.seconds, start=2_000)
    try:
        bare_per_request = bare(args, data, out_dir)
        acknowledged, end_to_end = gateway(args, data, work, out_dir)
    finally:
        shutil.rmtree(work)
    print(
        f"instructions per webhook: bare {bare_per_request / 1e3:.0f}k | gateway, acknowledging "
        f"{acknowledged / 1e3:.0f}k ({acknowledged / bare_per_request:.2f}x bare) "
        f"| acknowledged and normalised {end_to_end / 1e3:.0f}k "
        f"({end_to_end / bare_per_request:.2f}x bare); synchronous={args.synchronous}"
    )


if __name__ == "__main__":
    main()
