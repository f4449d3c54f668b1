"""The embedded default: one SQLite file in WAL mode, written from the event loop.

SQLite calls are fast when a commit does not fsync, so batches run right on the event loop
(no thread hand-offs, no GIL ping-pong): ops submitted in one loop iteration share a
transaction, committed with `synchronous=NORMAL`, which writes the WAL but does not sync it.
Durability comes next: an `fdatasync` of the WAL (inline when the disk is fast, else on a
worker thread), after which the batch's waiters are woken. Operations that arrive while a sync runs are committed together when it
ends, so one commit and one fsync cover them all (group commit): every commit rewrites whole
pages of the table and its indexes, so batch size, not request count, sets the disk traffic. This is the durability of `synchronous=FULL`: a commit is
acknowledged only once its WAL frames are on disk, and SQLite itself syncs the WAL before each
checkpoint and the database after it (https://www.sqlite.org/pragma.html#pragma_synchronous).

Checkpoints run on a thread of their own, and they must end with a moment of quiet: SQLite
starts the WAL over from its beginning only when a checkpoint has copied every frame, and a
PASSIVE pass never has while commits keep landing during it. Under steady load the WAL then
grows without bound (https://www.sqlite.org/wal.html#avoiding_excessively_large_wal_files;
measured here: 437 MB after 30 s at 800 webhooks/s). So once the WAL is past a size, the
checkpointer holds commits back while it copies the few frames written during its last pass;
the next commit then restarts the WAL. Holding back costs two fsyncs (WAL, then database) of
commit latency, 5 ms or so under load, hence a size and not every pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.logs import get_logger
from gateway.store.database import Dialect, Result, Tx, execute_batch, settle
from gateway.store.migrations import latest_version, migrate
from gateway.store.records import StoreUnavailable

log = get_logger("gateway.store")

DIALECT = Dialect(
    name="sqlite",
    placeholder="?",
    skip_locked="",
    begin="BEGIN IMMEDIATE",
    error_aborts_transaction=False,
)
MAX_BATCH = 512
# A request's handler runs a loop iteration after its bytes arrive, so writes of one burst
# reach the store over a few iterations. The flush waits while new writes keep coming (at
# most this many iterations) so they share one commit and fsync: half the fsyncs under load
# (bench/ingress.py: 0.47 -> 0.51 of a bare handler's rate), one iteration more when idle.
FLUSH_WAITS = 3
# A fast disk syncs in a fraction of a millisecond: then blocking the loop briefly is cheaper
# than a thread hand-off (the thread must win the GIL back from the busy loop to report
# back). A slow disk (network storage) is synced from a thread so the loop keeps serving.
INLINE_SYNC_SECONDS = 0.001
# After a burst (a long transaction, say), the WAL keeps its size: cut it back to this when
# it starts over (https://www.sqlite.org/pragma.html#pragma_journal_size_limit).
WAL_SIZE_LIMIT = 64 * 1024 * 1024
# Past this many frames (4 KB pages: 32 MB), a checkpoint finishes with commits held back, so
# the WAL starts over. About every 2 s at full load, so few acknowledgements wait for it.
WAL_RESTART_FRAMES = 8192

# How long a commit waits for another process's lock on the file (`gateway prune` or
# `replay`, whose transactions take milliseconds; a stuck one). It waits on the event loop,
# holding every request, so not long: past it the batch fails and its webhooks get 503 (the
# provider retries). It was 10 s: the whole gateway stood still while a lock was held.
BUSY_TIMEOUT_MS = 250
# After a batch found the file locked for all that time, the next batches for this long fail
# at once (503) rather than each holding the loop again; then one tries again.
LOCKED_RETRY_SECONDS = 1.0
T = TypeVar("T")
_Pending = tuple[Callable[[Tx], Any], asyncio.Future[Any], bool, bool]  # single, durable


def _version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the file (0: none recorded, or a new file)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone():
        return int(
            conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        )
    return 0


class SQLiteDatabase:
    def __init__(
        self,
        path: str | Path,
        synchronous: Literal["full", "normal"] = "full",
        checkpoint_interval: float = 0.5,
    ) -> None:
        self.path = Path(path)
        self.checkpoint_interval = checkpoint_interval
        self.dialect = DIALECT
        self.sync_wal = synchronous == "full"
        self.batches = 0
        self.operations = 0
        self._conn: sqlite3.Connection | None = None
        self._wal_fd: int | None = None
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._seen = 0
        self._waited = 0
        self._unsynced: list[tuple[list[asyncio.Future[Any]], list[Result]]] = []
        self._syncing = False
        self._sync_seconds = 0.0  # moving average of fdatasync time
        self._checkpointer: Checkpointer | None = None
        self._syncer: WalSyncer | None = None  # made at the first sync too slow for the loop
        # Held while committing, and by the checkpointer while it finishes a pass.
        self._commit_gate = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locked_until = 0.0  # batches fail at once till then: another process's lock

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Checkpoints copy the WAL into the database and fsync it: slow, so not on the event
        # loop. A thread with its own connection runs them; WAL lets them overlap our writes.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        if _version(conn) != latest_version():  # a store up to date is opened without a write lock
            # IMMEDIATE: a second process starting at once waits here, then finds it migrated.
            conn.execute("BEGIN IMMEDIATE")
            try:
                migrate(conn, "sqlite")
            except BaseException:
                conn.execute("ROLLBACK")
                conn.close()
                raise
            conn.execute("COMMIT")
        self._conn = conn
        self._checkpointer = Checkpointer(
            self.path, self._commit_gate, self._commits_released, self.checkpoint_interval
        )
        self._checkpointer.start()
        if self.sync_wal:
            # The WAL exists once the connection has read the schema; O_CREAT only covers races.
            self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CREAT, 0o644)

    def idle_clocks(self) -> list[Callable[[], float]]:
        return []  # commits run on the event loop, whose idle time covers them

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._syncer is not None:  # before the WAL's descriptor closes: it may be syncing
            self._syncer.stop()
            self._syncer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    async def run(
        self, op: Callable[[Tx], T], *, single_statement: bool = False, durable: bool = True
    ) -> T:
        loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((op, future, single_statement, durable))
        self._schedule_flush(loop)
        return await future

    async def read(self, op: Callable[[Tx], T]) -> T:
        """Run `op`, which only reads, right away on the loop: between two callbacks the
        connection is in no transaction, so it reads what was committed, outside any batch.
        Through `run` a read waited for a commit and an fsync it did not need (a batch of
        reads alone still committed and synced), and a send read its recipient's contact
        state that way (bench/send.py: the fsync hand-off was a fifth of the loop's time)."""
        if self._conn is None:
            raise StoreUnavailable("store is closed")
        cursor = self._conn.cursor()
        try:
            return op(Tx(cursor, self.dialect))
        finally:
            cursor.close()

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        if len(self._pending) > self._seen and self._waited < FLUSH_WAITS:
            self._seen = len(self._pending)
            self._waited += 1
            asyncio.get_running_loop().call_soon(self._flush)
            return
        self._seen = self._waited = 0
        self._flush_scheduled = False
        if self._syncing:
            return  # the running sync commits what queued up meanwhile, as one batch
        self._commit_pending()
        if self._unsynced:
            self._syncing = True
            asyncio.get_running_loop().create_task(self._sync())

    def _commits_released(self) -> None:
        """Called by the checkpointer thread: commits it held back may go now."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing waits
                loop.call_soon_threadsafe(self._resume)

    def _resume(self) -> None:
        if self._pending and not self._syncing:  # a running sync commits them when it ends
            self._schedule_flush(asyncio.get_running_loop())

    def _commit_pending(self) -> None:
        # Never wait on the loop: while the checkpointer holds the gate (a few milliseconds),
        # writes stay pending and `_commits_released` flushes them.
        if not self._commit_gate.acquire(blocking=False):
            return
        try:
            self._commit_batches()
        finally:
            self._commit_gate.release()

    def _commit_batches(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            futures = [future for _op, future, _single, _durable in batch]
            if self._conn is None:
                settle(futures, [(None, StoreUnavailable("store is closed"))] * len(batch))
                continue
            if time.monotonic() < self._locked_until:
                locked = StoreUnavailable("the database file is locked by another process")
                settle(futures, [(None, locked)] * len(batch))
                continue
            results = execute_batch(
                self._conn, self.dialect, [(op, single) for op, _f, single, _d in batch]
            )
            if _locked_out(results):
                self._locked_until = time.monotonic() + LOCKED_RETRY_SECONDS
            self.batches += 1
            self.operations += len(batch)
            # A batch of claims alone waits for no fsync: losing it loses only leases, and
            # the next synced commit covers it (the WAL is synced in order). Not while a
            # commit before it awaits its sync: the claims may have read that commit's rows.
            # At a steady trickle claims were a fifth of the fsyncs (bench/idle.py).
            if self._wal_fd is None or (
                not self._unsynced and not any(durable for *_op, durable in batch)
            ):
                settle(futures, results)
            else:
                self._unsynced.append((futures, results))

    async def _sync(self) -> None:
        try:
            while self._unsynced and self._wal_fd is not None:
                group, self._unsynced = self._unsynced, []
                try:
                    if self._sync_seconds < INLINE_SYNC_SECONDS:
                        elapsed = _timed_fdatasync(self._wal_fd)
                    else:
                        if self._syncer is None:
                            self._syncer = WalSyncer()
                        # Timed on the thread: the loop's delay in noticing the result is
                        # not the disk's, and counting it would keep syncs off the loop.
                        elapsed = await self._syncer.sync(self._wal_fd)
                except OSError as exc:
                    # Not on disk: the waiters must not be told their writes are durable.
                    for futures, _results in group:
                        settle(futures, [(None, exc)] * len(futures))
                    elapsed = INLINE_SYNC_SECONDS  # a failing disk is not a fast one
                else:
                    for futures, results in group:
                        settle(futures, results)
                self._sync_seconds = 0.8 * self._sync_seconds + 0.2 * elapsed
                if self._sync_seconds < INLINE_SYNC_SECONDS:
                    await asyncio.sleep(0)  # let the next requests arrive and share a commit
                self._commit_pending()  # everything that arrived meanwhile, as one batch
        finally:
            self._syncing = False


def _locked_out(results: list[Result]) -> bool:
    """Whether the whole batch failed waiting for another connection's lock."""
    return bool(results) and all(
        isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
        for _value, error in results
    )


def _timed_fdatasync(fd: int) -> float:
    started = time.perf_counter()
    os.fdatasync(fd)
    return time.perf_counter() - started


# The descriptor to sync, and the loop and future its outcome goes to.
_SyncRequest = tuple[int, asyncio.AbstractEventLoop, "asyncio.Future[float]"]


class WalSyncer(threading.Thread):
    """Syncs the WAL on a thread of its own, for a disk too slow to sync on the loop.

    It was the loop's default executor: a `concurrent.futures` future chained to an asyncio
    one, a work item and a thread-count check per sync cost about 40 µs of CPU more a hand-off
    than a queue and one `call_soon_threadsafe` (a sync every few milliseconds under load)."""

    def __init__(self) -> None:
        super().__init__(name="sqlite-wal-sync", daemon=True)
        self._requests: queue.SimpleQueue[_SyncRequest | None] = queue.SimpleQueue()
        self.start()

    def sync(self, fd: int) -> asyncio.Future[float]:
        """`fd` fdatasync'd; the future's value is the seconds the disk took."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self._requests.put((fd, loop, future))
        return future

    def run(self) -> None:
        while (request := self._requests.get()) is not None:
            fd, loop, future = request
            try:
                outcome: float | OSError = _timed_fdatasync(fd)
            except OSError as exc:
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: none waits
                loop.call_soon_threadsafe(_settle_sync, future, outcome)

    def stop(self) -> None:
        self._requests.put(None)
        self.join()


def _settle_sync(future: asyncio.Future[float], outcome: float | OSError) -> None:
    if future.done():  # its waiter was cancelled (shutdown)
        return
    if isinstance(outcome, OSError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class Checkpointer(threading.Thread):
    """Keeps the WAL short: every interval, a PASSIVE checkpoint (it never blocks writers);
    past WAL_RESTART_FRAMES, a second one with commits held back, so that it completes and
    the WAL starts over."""

    def __init__(
        self,
        path: Path,
        commit_gate: threading.Lock,
        commits_released: Callable[[], None],
        interval: float = 0.5,
    ) -> None:
        super().__init__(name="sqlite-checkpointer", daemon=True)
        self.path = path
        self.commit_gate = commit_gate
        self.commits_released = commits_released
        self.interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            while not self._stopped.wait(self.interval):
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # a full disk, say: commits still work, so go on
                    log.warning("sqlite_checkpoint_failed", error=str(exc))
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= WAL_RESTART_FRAMES:  # finish with only the frames written since
            try:
                with self.commit_gate:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                self.commits_released()

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def sqlite_database(
    path: str | Path,
    synchronous: Literal["full", "normal"] = "full",
    checkpoint_interval: float = 0.5,
) -> SQLiteDatabase:
    return SQLiteDatabase(path, synchronous, checkpoint_interval)
