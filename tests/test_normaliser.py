"""The normaliser drains the inbox in both modes: at full speed, and paced while ingress is
busy, by the CPU the acknowledgements leave when the loop's idle time is known."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from adapters.whatsapp import WhatsAppAdapter, WhatsAppConfig
from gateway.pipeline import normaliser as module
from gateway.pipeline.normaliser import Normaliser
from gateway.store import Store, sqlite_database

from .conftest import WA, webhook


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(sqlite_database(tmp_path / "n.db"))
    store.start()
    try:
        yield store
    finally:
        store.close()


def normaliser(
    store: Store,
    busy: Callable[[], bool],
    *,
    during_bursts: bool = True,
    idle_clocks: Sequence[Callable[[], float]] = (),
) -> Normaliser:
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
        ingress_busy=busy,
        during_bursts=during_bursts,
        idle_clocks=idle_clocks,
    )


async def received(store: Store, count: int) -> None:
    for i in range(count):
        await store.append_inbox("wa-main", f"k{i}", "u", "{}", webhook(f"wamid.n{i}"), time.time())


async def count(store: Store, sql: str) -> int:
    row = await store.db.run(lambda tx: tx.one(sql))
    return int(row[0])


@pytest.mark.parametrize("busy", [False, True], ids=["idle ingress", "busy ingress"])
async def test_normaliser_drains_the_inbox(store: Store, busy: bool) -> None:
    worker = normaliser(store, lambda: busy)
    await received(store, 40)
    rounds = 0
    while await worker.run_once():
        rounds += 1
    assert rounds == (40 // module.PACES[module.FIRST_PACE][0] if busy else 0)
    assert await store.claim_inbox(100, time.time() + 60, 30) == []  # nothing left pending
    assert await count(store, "SELECT COUNT(*) FROM events") == 40


async def test_paused_during_bursts_it_claims_nothing_until_ingress_calms(store: Store) -> None:
    """server.normalise_during_bursts: false gives a saturating burst the whole core."""
    busy = True
    worker = normaliser(store, lambda: busy, during_bursts=False)
    await received(store, 10)
    for _ in range(3):
        assert await worker.run_once() is False
    pending = "SELECT COUNT(*) FROM inbox WHERE status = 'pending'"
    assert await count(store, pending) == 10  # not one row claimed while busy
    busy = False
    await worker.run_once()
    assert await count(store, "SELECT COUNT(*) FROM events") == 10  # the burst over, it catches up


@pytest.mark.parametrize(
    ("idle_seconds", "pace"),
    [
        (time.perf_counter, len(module.PACES) - 1),  # idle all the time: the largest slices
        (lambda: 0.0, 0),  # never idle: a saturated core, the smallest share
    ],
    ids=["spare CPU", "saturated core"],
)
async def test_a_busy_ingress_paces_the_normaliser_by_the_cpu_it_leaves(
    store: Store, idle_seconds: Callable[[], float], pace: int
) -> None:
    worker = normaliser(store, lambda: True, idle_clocks=[idle_seconds])
    await received(store, 300)
    slices = []
    for _ in range(len(module.PACES)):
        before = await count(store, "SELECT COUNT(*) FROM events")
        await worker.run_once()
        slices.append(await count(store, "SELECT COUNT(*) FROM events") - before)
    assert worker.pace == pace
    first = module.PACES[module.FIRST_PACE][0]
    if pace:  # each slice at least as large as the one before, up from the first pace
        assert slices[0] == first and slices == sorted(slices) and slices[-1] > first
    else:
        assert all(taken == first for taken in slices)  # never fewer rows, only longer pauses


async def test_without_an_idle_reading_the_pace_stays_the_first(store: Store) -> None:
    worker = normaliser(store, lambda: True)
    await received(store, 20)
    for _ in range(3):
        await worker.run_once()
    assert worker.pace == module.FIRST_PACE


def test_events_without_a_provider_time_keep_when_their_request_arrived() -> None:
    """Twilio sends no timestamp: a replay days later still says when the SMS came in."""
    from datetime import UTC, datetime

    from gateway.store import InboxRow

    from .test_sms_render import make_adapter

    body = (Path(__file__).parent / "fixtures" / "sms" / "sms_text.txt").read_bytes()
    arrived = 1_700_000_000.0
    [event] = module.to_events(make_adapter(), InboxRow(7, "sms-main", body, arrived, 1))
    assert event.event.timestamp == datetime.fromtimestamp(arrived, UTC)
    assert event.event.raw_id == 7
