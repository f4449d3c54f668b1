"""The normaliser drains the inbox in both modes: at full speed, and paced while ingress is busy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from adapters.whatsapp import WhatsAppAdapter, WhatsAppConfig
from gateway.pipeline import normaliser as module
from gateway.pipeline.normaliser import Normaliser
from gateway.store import Store, sqlite_database

from .conftest import WA, webhook


@pytest.mark.parametrize("busy", [False, True], ids=["idle ingress", "busy ingress"])
async def test_normaliser_drains_the_inbox(tmp_path: Path, busy: bool) -> None:
    store = Store(sqlite_database(tmp_path / "n.db"))
    store.start()
    config = WhatsAppConfig(
        id="wa-main",
        type="whatsapp",
        **{k: v for k, v in WA.items() if k != "display_phone_number"},
    )
    worker = Normaliser(
        store, {"wa-main": WhatsAppAdapter(config)}, lambda _t: [], 0.1, ingress_busy=lambda: busy
    )
    try:
        for i in range(40):
            await store.append_inbox(
                "wa-main", f"k{i}", "u", "{}", webhook(f"wamid.n{i}"), time.time()
            )
        rounds = 0
        while await worker.run_once():
            rounds += 1
        assert rounds == (40 // module.PACES[module.FIRST_PACE][0] if busy else 0)
        assert await store.claim_inbox(100, time.time() + 60, 30) == []  # nothing left pending
        stored = await store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM events"))
        assert stored[0] == 40
    finally:
        store.close()


async def test_paused_during_bursts_it_claims_nothing_until_ingress_calms(tmp_path: Path) -> None:
    """server.normalise_during_bursts: false gives a saturating burst the whole core."""
    store = Store(sqlite_database(tmp_path / "n.db"))
    store.start()
    config = WhatsAppConfig(
        id="wa-main",
        type="whatsapp",
        **{k: v for k, v in WA.items() if k != "display_phone_number"},
    )
    busy = True
    worker = Normaliser(
        store,
        {"wa-main": WhatsAppAdapter(config)},
        lambda _t: [],
        0.1,
        ingress_busy=lambda: busy,
        during_bursts=False,
    )
    try:
        for i in range(10):
            await store.append_inbox(
                "wa-main", f"k{i}", "u", "{}", webhook(f"wamid.p{i}"), time.time()
            )
        for _ in range(3):
            assert await worker.run_once() is False
        pending = await store.db.run(
            lambda tx: tx.one("SELECT COUNT(*) FROM inbox WHERE status = 'pending'")
        )
        assert pending == (10,)  # not one row claimed while busy
        busy = False
        await worker.run_once()
        stored = await store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM events"))
        assert stored == (10,)  # the burst over, it catches up at full speed
    finally:
        store.close()


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
