"""The last hour, a minute at a time, from the same counters /metrics serves.

A sampler reads the Prometheus counters once a minute and keeps what each minute added in a
ring of 60; the charts and the channels page read the ring, never the hot path's state. The
minute under way counts as the ring's last point.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics import MetricWrapperBase

from gateway.metrics import LANE_PAUSED, SENDS, WEBHOOKS

MINUTES = 60
SERIES = ("webhooks", "sends", "failures")

Key = tuple[str, str]  # (series, channel)


def samples(metric: MetricWrapperBase) -> Iterable[tuple[dict[str, str], float]]:
    """(labels, value) of each of `metric`'s children; counters' `_total` samples only."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(("_created",)):
                continue
            yield sample.labels, sample.value


def totals() -> dict[Key, float]:
    """Webhooks received, sends made and sends failed so far, per channel."""
    found: dict[Key, float] = {}
    for labels, value in samples(WEBHOOKS):
        key = ("webhooks", labels["channel"])
        found[key] = found.get(key, 0.0) + value
    for labels, value in samples(SENDS):
        series = "sends" if labels["outcome"] == "sent" else "failures"
        key = (series, labels["channel"])
        found[key] = found.get(key, 0.0) + value
    return found


def lane_paused(queue: str, target: str) -> bool:
    return any(
        labels == {"queue": queue, "target": target} and value > 0
        for labels, value in samples(LANE_PAUSED)
    )


@dataclass
class Minute:
    at: float
    added: dict[Key, float] = field(default_factory=dict)
    backlog: int = 0


class LastHour:
    """A ring of the last `MINUTES` minutes; `tick` closes the minute under way."""

    def __init__(self, backlog: Callable[[], Awaitable[int]], interval: float = 60.0) -> None:
        self.interval = interval
        self._backlog = backlog
        self._ring: deque[Minute] = deque(maxlen=MINUTES)
        self._last = totals()
        self._last_backlog = 0
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        now = totals()
        added = {k: v - self._last.get(k, 0.0) for k, v in now.items()}
        self._last = now
        with contextlib.suppress(Exception):  # a store outage leaves the last count shown
            self._last_backlog = await self._backlog()
        self._ring.append(
            Minute(time.time(), {k: v for k, v in added.items() if v}, self._last_backlog)
        )

    def minutes(self) -> list[Minute]:
        """The closed minutes, oldest first, then the one under way."""
        now = totals()
        current = {k: v - self._last.get(k, 0.0) for k, v in now.items()}
        under_way = Minute(time.time(), {k: v for k, v in current.items() if v}, self._last_backlog)
        return [*self._ring, under_way]

    def sum(self, series: str, channel: str) -> int:
        return int(sum(m.added.get((series, channel), 0.0) for m in self.minutes()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.tick()


def svg_chart(values: list[float], title: str, width: int = 360, height: int = 80) -> str:
    """A line chart as inline SVG, values left (oldest) to right; `title` is escaped here."""
    # An hour wide whatever the ring holds yet: the newest minute at the right edge, the
    # minutes before the gateway started drawn as zero.
    values = [0.0] * (MINUTES + 1 - len(values)) + values[-(MINUTES + 1) :]
    top = max(values) if max(values) > 0 else 1.0
    step = width / MINUTES
    points = " ".join(
        f"{i * step:.1f},{height - (v / top) * (height - 4) - 2:.1f}" for i, v in enumerate(values)
    )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{html.escape(title)}">'
        f'<line x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}" stroke="#ccd"/>'
        f'<polyline fill="none" stroke="currentColor"'
        f' stroke-width="2" points="{points}"/><text x="2" y="12" font-size="10">max'
        f" {int(top)}</text></svg>"
    )
