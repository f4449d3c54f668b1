"""The embedded store's group commit: writes that arrive together share one commit and fsync."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.store import Store, sqlite_database
from gateway.store.sqlite import FLUSH_WAITS


async def _append_after(store: Store, iterations: int, key: str) -> int | None:
    for _ in range(iterations):  # as a request whose handler runs a loop iteration later
        await asyncio.sleep(0)
    return await store.append_inbox("wa", key, "http://x/webhooks/wa", "{}", b"{}", time.time())


async def test_writes_arriving_over_consecutive_iterations_share_one_commit(
    tmp_path: Path,
) -> None:
    db = sqlite_database(tmp_path / "gateway.db")
    db.start()
    try:
        store = Store(db)
        ids = await asyncio.gather(*(_append_after(store, n, f"k{n}") for n in range(FLUSH_WAITS)))
        assert len(set(ids)) == FLUSH_WAITS and None not in ids
        assert db.batches == 1  # one transaction, one fsync for all of them
        # A write alone still commits right away (one iteration later), in its own batch.
        assert await _append_after(store, 0, "alone") is not None
        assert db.batches == 2
    finally:
        db.close()
