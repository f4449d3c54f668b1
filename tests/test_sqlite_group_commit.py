"""The embedded store's group commit: writes that arrive together share one commit and fsync."""

from __future__ import annotations

import asyncio
import os
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


async def test_a_claim_alone_waits_for_no_fsync_but_never_answers_before_a_write_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim only leases rows (lost in a crash, they are claimed again): committed alone it
    is not synced. With a write in its batch, or behind a commit whose sync is under way, it
    waits for the disk like any write: it may have read that write's rows."""
    synced: list[int] = []
    disk = threading.Event()

    def fdatasync(fd: int) -> float:
        disk.wait(5)
        synced.append(fd)
        return 0.0

    monkeypatch.setattr(sqlite_module, "_timed_fdatasync", fdatasync)
    db = sqlite_database(tmp_path / "gateway.db")
    db.start()
    try:
        store = Store(db)
        disk.set()
        await _append_after(store, 0, "a")
        assert len(synced) == 1
        assert [r.id for r in await store.claim_inbox(10, time.time(), 30)] == [1]
        assert len(synced) == 1  # the claim alone: committed, not synced
        _, claimed = await asyncio.gather(
            _append_after(store, 0, "b"), store.claim_inbox(10, time.time(), 30)
        )
        assert len(synced) == 2 and [r.id for r in claimed] == [2]
        disk.clear()
        db._sync_seconds = 1.0  # a slow disk: synced on a thread, the loop goes on
        write = asyncio.create_task(_append_after(store, 0, "c"))
        for _ in range(FLUSH_WAITS + 2):
            await asyncio.sleep(0)
        claim = asyncio.create_task(store.claim_inbox(10, time.time(), 30))
        await asyncio.sleep(0.05)
        assert not write.done() and not claim.done()  # behind the sync under way
        disk.set()
        await write
        assert [r.id for r in await claim] == [3]
    finally:
        disk.set()
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


async def test_a_slow_disk_is_synced_on_the_syncer_thread(tmp_path: Path) -> None:
    """Once syncs are slow, they go to the WAL syncer's thread; each write is acknowledged
    after its sync, and the thread ends with the store."""
    db = sqlite_database(tmp_path / "gateway.db")
    db.start()
    try:
        db._sync_seconds = 1.0  # as measured on a slow disk: off the loop
        store = Store(db)
        ids = await asyncio.gather(*(_append_after(store, n % 2, f"k{n}") for n in range(6)))
        assert None not in ids
        syncer = db._syncer
        assert syncer is not None and syncer.is_alive()
    finally:
        db.close()
    assert not syncer.is_alive()


async def test_the_syncer_reports_a_failed_sync(tmp_path: Path) -> None:
    """A sync that fails is the waiter's error: its writes must not be acknowledged."""
    syncer = sqlite_module.WalSyncer()
    try:
        fd = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT, 0o644)
        assert await syncer.sync(fd) >= 0
        os.close(fd)
        with pytest.raises(OSError):
            await syncer.sync(fd)  # closed: EBADF
    finally:
        syncer.stop()
