"""The event loop's idle time (gateway/pipeline/cpu_pacing.py), by which background work paces itself."""

from __future__ import annotations

import asyncio
import time

from gateway.pipeline.cpu_pacing import SpareMeter, new_event_loop
from gateway.store import Store


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
    meter = SpareMeter([lambda: clock["idle"]])
    meter.start()
    time.sleep(0.02)
    clock["idle"] += 0.01
    assert 0.0 < meter.read() <= 0.5  # 0.01 s idle in at least 0.02 s
    meter.start()
    clock["idle"] += 10.0  # more idle than wall time cannot happen; it reads as all of it
    assert meter.read() == 1.0


def test_the_spare_share_is_the_least_of_its_clocks() -> None:
    """A loop idle while it waits on a saturated store writer has nothing to spare."""
    loop_idle = {"seconds": 0.0}
    writer_idle = {"seconds": 0.0}
    meter = SpareMeter([lambda: loop_idle["seconds"], lambda: writer_idle["seconds"]])
    meter.start()
    time.sleep(0.02)
    loop_idle["seconds"] += 0.02  # the loop waited all along ...
    assert meter.read() == 0.0  # ... for a writer that never did
    assert SpareMeter([]).read() == 0.0


async def test_a_store_that_writes_on_its_own_thread_counts_its_idle_time(store: Store) -> None:
    clocks = store.db.idle_clocks()
    if store.db.dialect.name == "sqlite":
        assert clocks == []  # its commits run on the event loop, whose idle time covers them
        return
    [writer] = clocks
    before = writer()
    await asyncio.sleep(0.05)  # no work queued: the writer waits
    assert writer() - before >= 0.03
