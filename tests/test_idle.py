"""The event loop's idle time (gateway/idle.py), by which background work paces itself."""

from __future__ import annotations

import asyncio
import time

from gateway.idle import SpareMeter, new_event_loop


def test_the_loop_counts_waiting_as_idle_and_work_as_busy() -> None:
    loop, idle_seconds = new_event_loop()
    try:
        loop.run_until_complete(asyncio.sleep(0.05))  # nothing to do: waits in the selector
        waited = idle_seconds()

        async def spin() -> None:
            deadline = time.perf_counter() + 0.05
            while time.perf_counter() < deadline:  # CPU work: the selector is never waited on
                pass

        loop.run_until_complete(spin())
        worked = idle_seconds() - waited
    finally:
        loop.close()
    assert waited >= 0.04
    assert worked < 0.01


def test_the_spare_share_is_idle_time_over_wall_time() -> None:
    clock = {"idle": 0.0}
    meter = SpareMeter(lambda: clock["idle"])
    meter.start()
    time.sleep(0.02)
    clock["idle"] += 0.01
    assert 0.0 < meter.read() <= 0.5  # 0.01 s idle in at least 0.02 s
    meter.start()
    clock["idle"] += 10.0  # more idle than wall time cannot happen; it reads as all of it
    assert meter.read() == 1.0
