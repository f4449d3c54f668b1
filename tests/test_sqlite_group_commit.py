"""The embedded store's group commit: writes that arrive together share one commit and fsync."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from gateway.store import Store, sqlite_database
from gateway.store import sqlite as sqlite_module
from gateway.store.sqlite import FLUSH_WAITS, Checkpointer


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


def _wal_restarts(db_path: Path) -> int:
    """The WAL header's checkpoint sequence: SQLite adds one each time the WAL starts over
    (https://www.sqlite.org/fileformat2.html#walformat, offset 12)."""
    header = (db_path.parent / f"{db_path.name}-wal").read_bytes()[:16]
    return int.from_bytes(header[12:16], "big")


async def test_the_wal_starts_over_while_writes_never_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a quiet moment a PASSIVE checkpoint never copies every frame, and SQLite only
    # restarts a fully copied WAL: under steady writes it grew without bound.
    monkeypatch.setattr(sqlite_module, "WAL_RESTART_FRAMES", 64)
    path = tmp_path / "gateway.db"
    db = sqlite_database(path, checkpoint_interval=0.05)
    db.start()
    store = Store(db)
    body = b"x" * 2048
    written: list[int | None] = []

    async def writer(n: int, restarted: Callable[[], bool]) -> None:
        i = 0
        while not restarted():
            key = f"w{n}-{i}"
            written.append(await store.append_inbox("wa", key, "http://x", "{}", body, 0.0))
            i += 1

    try:
        await store.append_inbox("wa", "first", "http://x", "{}", body, 0.0)
        before = _wal_restarts(path)
        # Writes never stop until the WAL has started over three times (about 1.5 s here; a
        # fixed time made too few writes on a loaded machine). Past the limit, it never will.
        async with asyncio.timeout(60):
            await asyncio.gather(
                *(writer(n, lambda: _wal_restarts(path) - before >= 3) for n in range(8))
            )
        assert None not in written  # every write committed, none lost behind the gate
        stored = await store.inbox_rows("pending", limit=len(written) + 10)
        assert len(stored) == len(written) + 1
    finally:
        db.close()


class _FailingSecondPass:
    """A checkpoint connection whose pass with commits held back fails (a full disk, say)."""

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, sql: str) -> sqlite3.Cursor:
        self.calls += 1
        if self.calls == 2:
            raise sqlite3.OperationalError("database or disk is full")
        return sqlite3.connect(":memory:").execute("SELECT 0, 9000, 9000")


def test_a_failing_checkpoint_never_leaves_commits_held_back(tmp_path: Path) -> None:
    gate = threading.Lock()
    released: list[bool] = []
    checkpointer = Checkpointer(tmp_path / "x.db", gate, lambda: released.append(True))
    with pytest.raises(sqlite3.OperationalError):
        checkpointer.checkpoint(cast(sqlite3.Connection, _FailingSecondPass()))
    assert not gate.locked() and released == [True]
