"""The background loop: woken by new work, it lingers a moment so a trickle shares a batch."""

from __future__ import annotations

import asyncio

from gateway.pipeline.worker import Worker

from .conftest import eventually


class Counting(Worker):
    """Counts the work in each batch. Unless `timed`, its linger ends when the test says so
    (`linger_over`), not after wall-clock time: on a loaded machine a trickle 10 ms apart
    could outlast a short linger, and the test would see two batches for no fault of the
    worker."""

    def __init__(self, linger: float, timed: bool = False) -> None:
        super().__init__(poll_interval=10.0)
        self.linger = linger
        self.queued = 0
        self.batches: list[int] = []
        self.naps: list[float] = []
        self.linger_over = asyncio.Event()
        self.timed = timed

    async def nap(self, seconds: float) -> None:
        self.naps.append(seconds)
        if self.timed:
            await super().nap(seconds)
        else:
            await self.linger_over.wait()

    async def run_once(self) -> bool:
        if self.queued:
            self.batches.append(self.queued)
            self.queued = 0
        return False


async def trickle(worker: Counting, worked_each: bool = False) -> None:
    """Three wakes, 10 ms apart; with `worked_each`, each after the last one's batch."""
    worker.start()
    await asyncio.sleep(0.02)  # its first look: nothing yet
    for n in range(3):
        worker.queued += 1
        worker.wake()
        await asyncio.sleep(0.01)
        if worked_each:
            await eventually(lambda n=n: len(worker.batches) == n + 1)


async def test_work_that_trickles_in_within_the_linger_is_one_batch() -> None:
    worker = Counting(linger=0.06)
    await trickle(worker)
    worker.linger_over.set()
    await eventually(lambda: worker.batches)
    assert worker.naps == [0.06]  # it lingered once, for its linger, before working
    await worker.stop()
    assert worker.batches == [3]


async def test_without_a_linger_each_wake_is_worked_at_once() -> None:
    worker = Counting(linger=0.0)
    await trickle(worker, worked_each=True)
    await worker.stop()
    assert worker.batches == [1, 1, 1]
    assert worker.naps == []  # never waited for more work before working


async def test_a_lingering_worker_still_stops_at_once() -> None:
    worker = Counting(linger=60.0, timed=True)
    worker.start()
    await asyncio.sleep(0.01)
    worker.queued = 1
    worker.wake()
    await eventually(lambda: worker.naps)  # lingering
    # Far less than the linger, however loaded the machine: the stop does not wait it out.
    async with asyncio.timeout(30):
        await worker.stop()
