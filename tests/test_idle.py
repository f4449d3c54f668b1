"""The event loop's idle time, and the normaliser's pace set by it while ingress is busy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.whatsapp import WhatsAppAdapter, WhatsAppConfig
from gateway.idle import SpareMeter, new_event_loop
from gateway.pipeline import normaliser as module
from gateway.pipeline.normaliser import Normaliser
from gateway.store import Store, sqlite_database

from .conftest import WA, webhook


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


def _normaliser(store: Store, idle_seconds: Callable[[], float] | None) -> Normaliser:
    config = WhatsAppConfig(
        id="wa-main",
        type="whatsapp",
        **{k: v for k, v in WA.items() if k != "display_phone_number"},
    )
    return Normaliser(
        store,
        {"wa-main": WhatsAppAdapter(config)},
        lambda _t: [],
        0.1,
        ingress_busy=lambda: True,
        idle_seconds=idle_seconds,
    )


@pytest.mark.parametrize(
    ("idle_seconds", "pace"),
    [
        (time.perf_counter, len(module.PACES) - 1),  # idle all the time: the largest slices
        (lambda: 0.0, 0),  # never idle: a saturated core, the smallest share
    ],
    ids=["spare CPU", "saturated core"],
)
async def test_a_busy_ingress_paces_the_normaliser_by_the_cpu_it_leaves(
    tmp_path: Path, idle_seconds: Callable[[], float], pace: int
) -> None:
    store = Store(sqlite_database(tmp_path / "n.db"))
    store.start()
    worker = _normaliser(store, idle_seconds)
    try:
        for i in range(300):
            await store.append_inbox(
                "wa-main", f"k{i}", "u", "{}", webhook(f"wamid.s{i}"), time.time()
            )
        slices = []
        for _ in range(len(module.PACES)):
            before = await store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM events"))
            await worker.run_once()
            after = await store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM events"))
            slices.append(after[0] - before[0])
        assert worker.pace == pace
        first = module.PACES[module.FIRST_PACE][0]
        if pace:  # each slice at least as large as the one before, up from the first pace
            assert slices[0] == first and slices == sorted(slices) and slices[-1] > first
        else:
            assert all(taken == first for taken in slices)  # never fewer rows, only longer pauses
    finally:
        store.close()


async def test_without_an_idle_reading_the_pace_stays_the_first(tmp_path: Path) -> None:
    store = Store(sqlite_database(tmp_path / "n.db"))
    store.start()
    worker = _normaliser(store, None)
    try:
        for i in range(20):
            await store.append_inbox(
                "wa-main", f"k{i}", "u", "{}", webhook(f"wamid.f{i}"), time.time()
            )
        for _ in range(3):
            await worker.run_once()
        assert worker.pace == module.FIRST_PACE
    finally:
        store.close()
