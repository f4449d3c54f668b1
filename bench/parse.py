"""Normalising cost per webhook: each channel's `parse` over its documented fixtures.

What the normaliser spends on a row is mostly the adapter's parse (reading the body into
events). For each channel, every readable webhook of `tests/fixtures/<channel>/cases.json` is
parsed in turn; the figure is the mean per webhook over that mix.

    python bench/parse.py [--channels line viber sms wechat] [--iterations 2000]
    python bench/parse.py --callgrind [--channels ...]   # instructions, needs valgrind

Times move with a shared VM's load; `--callgrind` counts CPU instructions instead (repeatable
to well under 1%): each channel runs twice under valgrind, with and without the counted
iterations after the same warm-up, and the difference is divided by the iterations.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters import ADAPTERS
from adapters.base import Adapter
from gateway.preview import placeholder_config

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
RECEIVED = datetime(2025, 6, 8, 21, 0, tzinfo=UTC)
WARM_UP = 200


def bodies(channel: str, adapter: Adapter) -> list[bytes]:
    """The channel's documented webhooks that parse to events with a placeholder config."""
    found = []
    for case in json.loads((FIXTURES / channel / "cases.json").read_text()):
        if "events" not in case:
            continue
        body = (FIXTURES / channel / case["file"]).read_bytes()
        try:
            adapter.parse_received(body, RECEIVED)
        except Exception:
            continue
        found.append(body)
    return found


def adapter_for(channel: str) -> Adapter:
    cls = ADAPTERS[channel]
    return cls(placeholder_config(cls.config_model, channel))


def run(adapter: Adapter, payloads: list[bytes], iterations: int) -> None:
    for i in range(iterations):
        adapter.parse_received(payloads[i % len(payloads)], RECEIVED)


def timed(channel: str, iterations: int, rounds: int) -> str:
    adapter = adapter_for(channel)
    payloads = bodies(channel, adapter)
    run(adapter, payloads, WARM_UP)
    figures = []
    for _ in range(rounds):
        started = time.perf_counter()
        run(adapter, payloads, iterations)
        figures.append((time.perf_counter() - started) / iterations * 1e6)
    return f"{channel:>8}: {statistics.median(figures):7.1f} µs/webhook ({len(payloads)} payloads)"


def instructions(channel: str, iterations: int) -> str:
    def total(counted: int) -> int:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}/callgrind.out",
                    sys.executable,
                    __file__,
                    "--child",
                    channel,
                    str(counted),
                ],
                check=True,
                capture_output=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            text = (Path(out) / "callgrind.out").read_text(errors="replace")
        match = re.search(r"^totals:\s+(\d+)", text, re.M) or re.search(
            r"^summary:\s+(\d+)", text, re.M
        )
        assert match, "no totals in callgrind's output"
        return int(match.group(1))

    per_webhook = (total(iterations) - total(0)) / iterations
    return f"{channel:>8}: {per_webhook / 1e3:7.1f}k instructions/webhook"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--channels", nargs="+", default=["line", "viber", "sms", "wechat"])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("CHANNEL", "ITERATIONS"))
    args = parser.parse_args()
    if args.child:  # one run under valgrind: warm up, then the counted iterations
        channel, counted = args.child[0], int(args.child[1])
        adapter = adapter_for(channel)
        payloads = bodies(channel, adapter)
        run(adapter, payloads, WARM_UP + counted)
        return
    for channel in args.channels:
        if args.callgrind:
            print(instructions(channel, min(args.iterations, 500)), flush=True)
        else:
            print(timed(channel, args.iterations, args.rounds), flush=True)


if __name__ == "__main__":
    main()
