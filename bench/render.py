"""Rendering cost: a 10-card carousel planned and rendered for every channel.

For each channel type the figure is microseconds per message for engine + adapter render
(what the dispatcher does per send), next to the cost of just validating the same message
with pydantic in the same run — the baseline every API request pays anyway. The target is
under 100 µs per channel. Both figures are medians over blocks of iterations; the ratio pairs
each channel block with the validation block just before it (see main).

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

    # Each round measures every channel in blocks, each block right after a block of
    # validation: a shared VM changes speed for seconds at a time, and a ratio taken over
    # two neighbouring blocks sees the same machine on both sides of it.
    block = max(1, args.iterations // 10)
    baseline: list[float] = []
    figures: dict[str, list[float]] = {kind: [] for kind in adapters}
    ratios: dict[str, list[float]] = {kind: [] for kind in adapters}
    for _ in range(args.rounds):
        for kind, adapter in adapters.items():

            def render(adapter: Adapter = adapter) -> None:
                adapter.render_parts(plan(content, adapter.profile).parts, CONTEXT)

            for _ in range(args.iterations // block):
                base = per_message(validate, block)
                figure = per_message(render, block)
                baseline.append(base)
                figures[kind].append(figure)
                ratios[kind].append(figure / base)

    print(f"validate (baseline): {statistics.median(baseline):8.1f} µs/message")
    for kind, adapter in adapters.items():
        figure = statistics.median(figures[kind])
        ratio = statistics.median(ratios[kind])
        requests = len(adapter.render_parts(plan(content, adapter.profile).parts, CONTEXT))
        verdict = "ok" if figure < 100 else "OVER TARGET"
        print(
            f"{kind:>10}: {figure:8.1f} µs/message  ({ratio:4.2f}x validate, paired;"
            f" {requests} request(s))  {verdict}"
        )


if __name__ == "__main__":
    main()
