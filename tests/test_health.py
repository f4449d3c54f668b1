"""What an operator's probes and scrapes see: /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.store import NewMessage, Store, sqlite_database

from .conftest import base_config, config_from, post_whatsapp, webhook, with_backend

NOW = time.time()


async def test_ready_when_the_store_answers(tmp_path: Path, start_gateway: Any) -> None:
    gw = await start_gateway(config_from(base_config(tmp_path)))
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{gw.url}/healthz")).json() == {"status": "ok"}
        ready = await client.get(f"{gw.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_not_ready_when_the_store_fails(
    tmp_path: Path, start_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start_gateway(config_from(base_config(tmp_path)))

    async def broken() -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(gw.store, "ping", broken)
    monkeypatch.setattr(gw.store, "backlog", broken)
    async with httpx.AsyncClient() as client:
        ready = await client.get(f"{gw.url}/readyz")
        metrics = (await client.get(f"{gw.url}/metrics")).text
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "OSError"}
    assert "gateway_store_up 0.0" in metrics  # still scraped, and says why it is incomplete


async def test_metrics_show_what_waits_and_what_failed(tmp_path: Path, start_gateway: Any) -> None:
    gw = await start_gateway(config_from(base_config(tmp_path)))
    failed = await gw.store.append_inbox("wa-main", "bad", "u", "{}", b"not json", NOW)
    await gw.store.fail_inbox(failed, "malformed JSON", NOW)
    message = NewMessage("msg_1", "wa-main", "16505551234", "{}", None, "orders", None, "h")
    await gw.store.create_message(message, NOW + 3600)  # due in an hour: stays pending

    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{gw.url}/metrics")).text

    assert 'gateway_backlog_rows{queue="inbox",status="failed"} 1.0' in metrics
    assert 'gateway_backlog_rows{queue="send",status="pending"} 1.0' in metrics
    assert 'gateway_backlog_rows{queue="webhook",status="dead"} 0.0' in metrics
    assert "gateway_store_up 1.0" in metrics


async def test_backlog_counts_stop_at_the_cap(store: Store) -> None:
    for i in range(3):
        await store.append_inbox("wa", f"k{i}", "u", "{}", b"{}", NOW)
    assert (await store.backlog(cap=2))["inbox"] == {"pending": 2, "failed": 0}
    assert (await store.backlog())["inbox"] == {"pending": 3, "failed": 0}


async def test_backlog_counts_read_indexes_only(tmp_path: Path) -> None:
    """A scrape every 15 s must not scan tables that hold weeks of traffic."""
    store = Store(sqlite_database(tmp_path / "plans.db"))
    store.start()
    try:
        conn = store.db._conn  # type: ignore[attr-defined]
        run: list[str] = []
        conn.set_trace_callback(run.append)
        await store.backlog()
        await store.pending_by_target({"send": ["wa-main"], "webhook": ["orders", "audit"]})
        conn.set_trace_callback(None)
        counts = [s for s in run if s.startswith("SELECT COUNT")]
        assert len(counts) == 9
        for statement in counts:
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement)]
            assert not [s for s in plan if s.startswith("SCAN") and "capped" not in s], plan
    finally:
        store.close()


async def test_metrics_show_which_lane_is_behind_and_which_waits(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder
) -> None:
    backend.available = False
    data = with_backend(base_config(tmp_path), backend)
    data["delivery"] = {"base_backoff_seconds": 10.0}  # the first pause: 5 to 10 s
    gw = await start_gateway(config_from(data))
    await post_whatsapp(gw.url, webhook("wamid.METRICS1", "hello"))
    paused = 'gateway_lane_paused{queue="webhook",target="orders"} 1.0'
    async with httpx.AsyncClient() as client, asyncio.timeout(5):
        while paused not in (metrics := (await client.get(f"{gw.url}/metrics")).text):
            await asyncio.sleep(0.05)
    assert 'gateway_lane_pending_rows{queue="webhook",target="orders"} 1.0' in metrics
    assert 'gateway_lane_pending_rows{queue="send",target="wa-main"} 0.0' in metrics
    assert 'gateway_lane_paused{queue="send",target="wa-main"} 0.0' in metrics
