"""The background loop: woken by new work, it lingers a moment so a trickle shares a batch."""

from __future__ import annotations

import asyncio

from gateway.pipeline.worker import Worker


class Counting(Worker):
    def __init__(self, linger: float) -> None:
        super().__init__(poll_interval=10.0)
        self.linger = linger
        self.queued = 0
        self.batches: list[int] = []

    async def run_once(self) -> bool:
        if self.queued:
            self.batches.append(self.queued)
            self.queued = 0
        return False


async def trickle(worker: Counting) -> None:
    worker.start()
    await asyncio.sleep(0.02)  # its first look: nothing yet
    for _ in range(3):
        worker.queued += 1
        worker.wake()
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    await worker.stop()


async def test_work_that_trickles_in_within_the_linger_is_one_batch() -> None:
    worker = Counting(linger=0.06)
    await trickle(worker)
    assert worker.batches == [3]


async def test_without_a_linger_each_wake_is_worked_at_once() -> None:
    worker = Counting(linger=0.0)
    await trickle(worker)
    assert worker.batches == [1, 1, 1]


async def test_a_lingering_worker_still_stops_at_once() -> None:
    worker = Counting(linger=5.0)
    worker.start()
    await asyncio.sleep(0.01)
    worker.queued = 1
    worker.wake()
    await asyncio.sleep(0.01)
    async with asyncio.timeout(1):
        await worker.stop()
