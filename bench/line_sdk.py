"""LINE webhooks read by line-bot-sdk's typed models against ours (adapters/line/payloads.py).

LINE's official SDK publishes webhook models (`linebot.v3.webhooks.CallbackRequest`); the
gateway uses them only if they keep the normaliser's speed. Over LINE's documented fixtures
(`tests/fixtures/line/cases.json`, the readable ones), per webhook:

- sdk: `CallbackRequest.from_json(text)`: the SDK's JSON reading and its models;
- ours: `json_object(body)` and each event read into its model, as `parse` does first;
- parse: the adapter's whole `parse` (models and the event drafts), for scale.

Each figure is the median over blocks, the blocks of the three interleaved (a shared VM
changes speed for seconds at a time).

    pip install line-bot-sdk   # not a dependency of the gateway
    python bench/line_sdk.py [--iterations 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.base import json_object
from adapters.line import LineAdapter, LineConfig
from adapters.line.payloads import Webhook, event_model

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "line"


def bodies() -> list[bytes]:
    cases = json.loads((FIXTURES / "cases.json").read_text())
    return [(FIXTURES / c["file"]).read_bytes() for c in cases if c.get("events")]


def ours(body: bytes) -> None:
    payload = json_object(body)
    Webhook.model_validate(payload)
    for event in payload["events"]:
        event_model(event).validate_python(event)


def per_webhook(read: Callable[[bytes], object], payloads: list[bytes], iterations: int) -> float:
    started = time.perf_counter()
    for i in range(iterations):
        read(payloads[i % len(payloads)])
    return (time.perf_counter() - started) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        from linebot.v3.webhooks import CallbackRequest
    except ImportError:
        raise SystemExit("line-bot-sdk is not installed (pip install line-bot-sdk)") from None

    adapter = LineAdapter(
        LineConfig(id="line-bench", type="line", channel_secret="s", channel_access_token="t")
    )
    readers: dict[str, Callable[[bytes], object]] = {
        "sdk": lambda body: CallbackRequest.from_json(body.decode()),
        "ours": ours,
        "parse": adapter.parse,
    }
    payloads = bodies()
    for read in readers.values():  # every reader reads every fixture, and warms up
        for body in payloads:
            read(body)
    block = max(1, args.iterations // 10)
    figures: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.rounds * 10):
        for name, read in readers.items():
            figures[name].append(per_webhook(read, payloads, block))
    for name in readers:
        print(f"{name:>6}: {statistics.median(figures[name]):7.1f} µs/webhook")
    print(f"({len(payloads)} documented webhooks, {args.rounds * 10} blocks of {block})")


if __name__ == "__main__":
    main()
