"""Rendering cost: a 10-card carousel planned and rendered for every channel.

For each channel type the figure is microseconds per message for engine + adapter render
(what the dispatcher does per send), next to the cost of just validating the same message
with pydantic in the same run — the baseline every API request pays anyway. The target is
under 100 µs per channel.

    python bench/render.py [--iterations 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters import ADAPTERS
from adapters.base import Adapter, SendContext
from gateway.downgrade import plan
from gateway.preview import placeholder_config
from gateway.schema import CONTENT_ADAPTER

NOW = 1_700_000_000.0
CONTEXT = SendContext("msg_bench", "bench-recipient", now=NOW, last_inbound_at=NOW - 60)

CAROUSEL: dict[str, Any] = {
    "type": "carousel",
    "text": "Tonight's picks",
    "items": [
        {
            "title": f"Pizza number {n}",
            "description": f"Tomato, mozzarella and topping {n}",
            "media": {"url": f"https://cdn.example.com/pizza-{n}.jpg"},
            "actions": [
                {"type": "reply", "title": "Order", "payload": f"ORDER_{n}"},
                {"type": "link", "title": "Details", "url": f"https://shop.example.com/p/{n}"},
            ],
        }
        for n in range(1, 11)
    ],
}


def per_message(run: Any, iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        run()
    return (time.perf_counter() - started) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    content = CONTENT_ADAPTER.validate_python(CAROUSEL)
    adapters: dict[str, Adapter] = {
        kind: cls(placeholder_config(cls.config_model, kind))
        for kind, cls in sorted(ADAPTERS.items())
    }

    def validate() -> None:
        CONTENT_ADAPTER.validate_python(CAROUSEL)

    results: dict[str, list[float]] = {"validate": []}
    for _ in range(args.rounds):  # interleaved rounds: machine noise hits every figure alike
        results["validate"].append(per_message(validate, args.iterations))
        for kind, adapter in adapters.items():

            def render(adapter: Adapter = adapter) -> None:
                adapter.render_parts(plan(content, adapter.profile).parts, CONTEXT)

            results.setdefault(kind, []).append(per_message(render, args.iterations))

    baseline = statistics.median(results["validate"])
    print(f"validate (baseline): {baseline:8.1f} µs/message")
    for kind in adapters:
        figure = statistics.median(results[kind])
        requests = len(
            adapters[kind].render_parts(plan(content, adapters[kind].profile).parts, CONTEXT)
        )
        verdict = "ok" if figure < 100 else "OVER TARGET"
        print(
            f"{kind:>10}: {figure:8.1f} µs/message  ({figure / baseline:4.2f}x validate,"
            f" {requests} request(s))  {verdict}"
        )


if __name__ == "__main__":
    main()
