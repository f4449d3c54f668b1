"""Group commit: store operations that arrive together share one transaction.

Every store operation is a function of a `Tx`. Operations queue up while the previous batch
commits; the whole queue then runs in one transaction (each op in its own savepoint, so one
failing op does not undo its neighbours) and commits once, so the fsync is paid once per batch,
not once per webhook. `ThreadedDatabase` runs batches on writer threads (PostgreSQL, whose
calls block on the network); SQLite's own variant lives in `sqlite.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from gateway.logs import get_logger
from gateway.store.joined import run_joined
from gateway.store.records import StoreUnavailable

T = TypeVar("T")
log = get_logger("gateway.store")

MAX_BATCH = 256
# After a lost connection, reconnect at most this often; batches in between fail at once as
# store errors (503 to providers and API callers, who retry).
RECONNECT_SECONDS = 1.0


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Connection(Protocol):
    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str
    skip_locked: str  # appended to claim sub-selects
    begin: str | None  # explicit BEGIN for drivers in autocommit mode
    # PostgreSQL aborts the whole transaction on any error; SQLite undoes just the statement.
    error_aborts_transaction: bool
    # PostgreSQL's text refuses NUL (0x00); SQLite keeps it.
    nul_in_text: bool = True
    # Takes a lock named by its text parameter till the transaction ends, answering whether it
    # got it; None where transactions run one at a time anyway (SQLite's BEGIN IMMEDIATE).
    try_lock: str | None = None
    # Appended to a SELECT of one row that a change depends on (a conversation still open):
    # a concurrent change to the row waits for this transaction. SQLite needs none, its
    # BEGIN IMMEDIATE runs one writing transaction at a time.
    for_update: str = ""
    # Whether one execute may carry several statements (psycopg without parameters; Python's
    # sqlite3 refuses): a savepoint's release then goes with the next one's start, one round
    # trip instead of two (`execute_batch`).
    chains_statements: bool = False


def storable_text(value: str, nul_in_text: bool = True) -> str:
    """`value` as a UTF-8 text column keeps it. Provider ids may hold a lone surrogate (JSON's
    "\\ud800", which the lenient reader lets through) or NUL, which no driver binds or
    PostgreSQL refuses: a webhook holding one failed to store for ever (503, retried, never
    kept). Such characters become U+FFFD here; the raw request keeps the original bytes."""
    try:
        value.encode()
    except UnicodeEncodeError:
        value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value if nul_in_text else value.replace("\x00", "\ufffd")


class Tx:
    """What an operation sees: `?` placeholders everywhere, rows as tuples.

    With `sync` (a connection in pipeline mode), statements go to the server without waiting
    for their answers: a read waits for its rows (and so for every answer before them), an
    `execute` for its row count, and `confirm` for whatever is still unanswered."""

    def __init__(
        self, cursor: Cursor, dialect: Dialect, sync: Callable[[], None] | None = None
    ) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self._translated: dict[str, str] = {}
        self._sync = sync
        self._unconfirmed = False  # statements sent whose answers have not come yet

    def _sql(self, sql: str) -> str:
        if self.dialect.placeholder == "?":
            return sql
        cached = self._translated.get(sql)
        if cached is None:
            cached = self._translated[sql] = sql.replace("?", self.dialect.placeholder)
        return cached

    def _params(self, params: Sequence[Any]) -> Sequence[Any]:
        # About 0.25 µs a statement: plain ASCII without NUL, the common case, passes as is.
        nul_in_text = self.dialect.nul_in_text
        for value in params:
            if type(value) is str and (
                not value.isascii() or (not nul_in_text and "\x00" in value)
            ):
                return [storable_text(v, nul_in_text) if type(v) is str else v for v in params]
        return params

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the rows it changed."""
        self._cursor.execute(self._sql(sql), self._params(params))
        if self._sync is not None:
            self._unconfirmed = False
            self._waited(self._sync)
        return self._cursor.rowcount

    def write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose answer the op does not need: in a pipeline it goes without a
        wait, and an error it meets is raised by a later read or at the op's end (so an op
        that catches a statement's error runs that statement with `execute`)."""
        self._cursor.execute(self._sql(sql), self._params(params))
        self._unconfirmed = True

    def confirm(self) -> None:
        """Wait for the answers of the statements sent so far: raises the error of any."""
        if self._unconfirmed and self._sync is not None:
            self._unconfirmed = False
            self._waited(self._sync)

    def _waited(self, wait: Callable[[], T]) -> T:
        """`wait`'s answer. In a pipeline, an error leaves it aborted (every later statement
        refused) until a sync: one here lets the op go on as without a pipeline, say to
        roll back to a savepoint of its own."""
        try:
            return wait()
        except Exception:
            if self._sync is not None:
                with contextlib.suppress(Exception):
                    self._sync()
            raise

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._cursor.execute(self._sql(sql), self._params(params))
        self._unconfirmed = False  # the rows come after every earlier answer
        return self._waited(self._cursor.fetchone)

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run an INSERT that may be ignored on conflict: the new row's id, or None."""
        if self.dialect.name == "sqlite":  # lastrowid avoids a RETURNING round trip
            self._cursor.execute(sql, self._params(params))
            return self._cursor.lastrowid if self._cursor.rowcount == 1 else None  # type: ignore[attr-defined]
        row = self.one(sql + " RETURNING id", params)
        return int(row[0]) if row else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._cursor.execute(self._sql(sql), self._params(params))
        self._unconfirmed = False
        return self._waited(self._cursor.fetchall)


Result = tuple[Any, BaseException | None]


def execute_batch(
    conn: Connection, dialect: Dialect, ops: Sequence[tuple[Callable[[Tx], Any], bool]]
) -> list[Result]:
    """Run `ops` (each with its single-statement flag) in one transaction and commit it. A
    connection with a `sync` method is in pipeline mode (store/postgres.py): a statement's
    answer is waited for only where it is needed, at the latest at each op's end."""
    try:
        cursor = conn.cursor()
    except Exception as exc:  # the connection is gone: nothing in the batch ran
        return [(None, exc) for _ in ops]
    batch = _Batch(conn, cursor, dialect, len(ops) > 1, getattr(conn, "sync", None))
    try:
        if dialect.begin:
            cursor.execute(dialect.begin)
        results = run_joined(ops, batch.run)  # joinable ops of one kind together (joined.py)
        conn.commit()
    except Exception as exc:  # the commit itself failed: nothing in the batch is durable
        with contextlib.suppress(Exception):
            conn.rollback()
        results = [(None, exc) for _ in ops]
    finally:
        cursor.close()
    return results


def execute_reads(
    conn: Connection, dialect: Dialect, ops: Sequence[tuple[Callable[[Tx], Any], bool]]
) -> list[Result]:
    """Run `ops`, which only read, on a connection in autocommit mode: each statement reads
    what was committed, as in a transaction of READ COMMITTED, with no savepoint or commit."""
    try:
        cursor = conn.cursor()
    except Exception as exc:  # the connection is gone: nothing ran
        return [(None, exc) for _ in ops]
    tx = Tx(cursor, dialect)

    def run(op: Callable[[Tx], Any], _single: bool) -> Result:
        try:
            return (op(tx), None)
        except Exception as exc:
            return (None, exc)

    try:
        return run_joined(ops, run)
    finally:
        cursor.close()


class _Batch:
    """The ops of one transaction, each in a savepoint of its own when the batch holds several
    (so one failing undoes only itself), run in turn on one cursor. In a pipeline (`sync`),
    an op's savepoint, its statements and its release go without waits, but for its reads and
    one wait at its end (none when its last statement was a read): its errors stay its own."""

    __slots__ = (
        "_chains",
        "_conn",
        "_cursor",
        "_dialect",
        "_open_savepoint",
        "_savepoints",
        "_sync",
        "_tx",
    )

    def __init__(
        self,
        conn: Connection,
        cursor: Cursor,
        dialect: Dialect,
        savepoints: bool,
        sync: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self._cursor = cursor
        self._dialect = dialect
        self._sync = sync
        self._tx = Tx(cursor, dialect, sync)
        self._savepoints = savepoints
        # A pipeline takes one statement an execute.
        self._chains = dialect.chains_statements and sync is None
        # A savepoint an op left open, released with the next one's start (`chains_statements`)
        # or by the commit: on PostgreSQL each statement is a round trip to the server.
        self._open_savepoint = False

    def run(self, op: Callable[[Tx], Any], single: bool) -> Result:
        """`op`'s value or error; an op refused as a deadlock or serialization failure runs
        once more."""
        guarded = self._savepoints and (not single or self._dialect.error_aborts_transaction)
        result = self._attempt(op, guarded)
        error = result[1]
        if error is not None and (guarded or not self._savepoints) and _transient(error):
            # Its locks are let go (its savepoint or the transaction undone): the other
            # transaction went on.
            result = self._attempt(op, guarded)
        return result

    def _attempt(self, op: Callable[[Tx], Any], guarded: bool) -> Result:
        if guarded:
            if self._open_savepoint:
                self._cursor.execute("RELEASE SAVEPOINT op; SAVEPOINT op")
            else:
                self._tx.write("SAVEPOINT op")
            self._open_savepoint = False
        try:
            value = op(self._tx)
            self._tx.confirm()  # in a pipeline, the op's statements answered: its errors its own
        except Exception as exc:
            self._undo(guarded)
            return (None, exc)
        if guarded:
            if self._chains:
                self._open_savepoint = True
            else:
                self._tx.write("RELEASE SAVEPOINT op")
        return (value, None)

    def _undo(self, guarded: bool) -> None:
        """Undo a failed op: its savepoint, or, alone in its batch, the whole transaction."""
        if self._sync is not None:  # what it sent before its error: answered, errors ignored
            with contextlib.suppress(Exception):
                self._sync()
        if guarded:
            _undo_savepoint(self._cursor, self._chains)
            if self._sync is not None:
                self._sync()
        elif not self._savepoints:
            self._conn.rollback()
            if self._dialect.begin:
                self._cursor.execute(self._dialect.begin)


def _undo_savepoint(cursor: Cursor, chains: bool) -> None:
    """Undo a failed op's statements (its savepoint's), and end the savepoint."""
    if chains:
        cursor.execute("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op")
    else:
        cursor.execute("ROLLBACK TO SAVEPOINT op")
        cursor.execute("RELEASE SAVEPOINT op")


# PostgreSQL's deadlock_detected and serialization_failure: transactions side by side (several
# writers, several processes) may take the same rows in opposite orders; the one the server
# picks is refused, and succeeds when run again.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def _transient(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in TRANSIENT_SQLSTATES


def settle(futures: Sequence[asyncio.Future[Any]], results: Sequence[Result]) -> None:
    for future, (value, error) in zip(futures, results, strict=True):
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class Database(Protocol):
    dialect: Dialect

    @property
    def batches(self) -> int: ...
    @property
    def operations(self) -> int: ...

    def start(self) -> None: ...
    def close(self) -> None: ...
    def idle_clocks(self) -> list[Callable[[], float]]:
        """Idle seconds so far of each thread that writes apart from the event loop."""
        ...

    async def run(
        self, op: Callable[[Tx], T], *, single_statement: bool = False, durable: bool = True
    ) -> T:
        """Run `op` in the next group commit. `durable=False`: an op whose loss in a crash
        loses nothing (a claim's lease: its rows are claimed again), answered once committed,
        without waiting for the disk; a later synced commit makes it durable too."""
        ...

    async def read(self, op: Callable[[Tx], T]) -> T:
        """Run `op`, which only reads: what was committed so far, with no commit of its own."""
        ...


_STOP = object()
_Op = tuple[Callable[[Tx], Any], asyncio.Future[Any], asyncio.AbstractEventLoop, bool]


class ThreadedDatabase:
    """Writer threads, each with a connection of its own, take batches from one queue; their
    waiters are woken with one call per batch.

    With one writer, batches run one at a time. With several (PostgreSQL), batches run side by
    side, as they would from several gateway processes sharing the database: every operation
    is written for that already (claims skip locked rows, ordered work takes a lock, dedupe is
    one insert-or-ignore). Each statement waits on a network round trip, so one connection
    left the server mostly idle and the writer thread mostly waiting."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        dialect: Dialect,
        writers: int = 1,
        connect_reader: Callable[[], Connection] | None = None,
    ) -> None:
        """`connect_reader`, when given, opens a connection in autocommit mode for reads."""
        self._connect = connect
        self.dialect = dialect
        self._queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._writers = [_Writer(self, n) for n in range(writers)]
        self._reads: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._reader = _Writer(self, 0, connect_reader) if connect_reader else None

    @property
    def batches(self) -> int:
        return sum(w.batches for w in self._writers)

    @property
    def operations(self) -> int:
        return sum(w.operations for w in self._writers)

    @property
    def _conn(self) -> Connection | None:
        """The first writer's connection (tests look at it)."""
        return self._writers[0].conn

    def idle_clocks(self) -> list[Callable[[], float]]:
        return [self._idle_seconds]

    def _idle_seconds(self) -> float:
        """The writers' idle seconds so far, on average: the pool's spare capacity."""
        return sum(w.idle_seconds() for w in self._writers) / len(self._writers)

    def start(self) -> None:
        for writer in self._writers:  # one after the other: each runs the schema's DDL
            writer.start()
        if self._reader is not None:
            self._reader.start()

    async def run(
        self, op: Callable[[Tx], T], *, single_statement: bool = False, durable: bool = True
    ) -> T:
        """Run `op` in the next group commit. A single-statement op needs no savepoint where
        the database undoes a failed statement on its own. Every commit here is synchronous
        (`durable` is the SQLite writer's business)."""
        return await _submitted(self._queue, op, single_statement)

    async def read(self, op: Callable[[Tx], T]) -> T:
        """A read: on the reader's connection when there is one, with the reads queued
        meanwhile and no commit to wait for; else in the next group commit. A read through the
        group commit waited for a batch's every statement (a savepoint of its own, too) and its
        commit: on PostgreSQL, several round trips for one."""
        if self._reader is None:
            return await self.run(op, single_statement=True)
        return await _submitted(self._reads, op, True)

    def close(self) -> None:
        threads = [(w, self._queue) for w in self._writers]
        if self._reader is not None:
            threads.append((self._reader, self._reads))
        running = [(w, jobs) for w, jobs in threads if w.thread is not None]
        for _writer, jobs in running:
            jobs.put(_STOP)
        for writer, _jobs in running:
            writer.join()


async def _submitted(
    jobs: queue.SimpleQueue[_Op | object], op: Callable[[Tx], T], single_statement: bool
) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    jobs.put((op, future, loop, single_statement))
    return await future


class _Writer:
    """One writer thread and its connection; or, given `connect_reader`, the reader."""

    def __init__(
        self,
        db: ThreadedDatabase,
        number: int,
        connect_reader: Callable[[], Connection] | None = None,
    ) -> None:
        self.db = db
        self._connect = connect_reader or db._connect
        self._jobs = db._reads if connect_reader else db._queue
        self._execute_ops = execute_reads if connect_reader else execute_batch
        self.name = (
            "store-reader"
            if connect_reader
            else (f"store-writer-{number}" if number else "store-writer")
        )
        self.thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.conn: Connection | None = None
        self._reconnected_at = 0.0
        self._lost_because = "not connected"
        self.batches = 0
        self.operations = 0
        # The writer's idle seconds before its current wait, and when that wait began (None
        # while it works): one tuple, so the loop never reads one half of an update.
        self._idle: tuple[float, float | None] = (0.0, None)

    def idle_seconds(self) -> float:
        total, waiting_since = self._idle
        return total + (time.perf_counter() - waiting_since if waiting_since is not None else 0.0)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self.thread = None
            raise self._startup_error

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def _run(self) -> None:
        try:
            self.conn = self._connect()
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        jobs = self._jobs
        try:
            stopping = False
            while not stopping:
                self._idle = (self._idle[0], time.perf_counter())
                first = jobs.get()
                self._idle = (self.idle_seconds(), None)
                if first is _STOP:
                    break
                batch: list[_Op] = [first]  # type: ignore[list-item]
                while len(batch) < MAX_BATCH:
                    try:
                        nxt = jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    batch.append(nxt)  # type: ignore[arg-type]
                results = self._execute(batch)
                self.batches += 1
                self.operations += len(batch)
                by_loop: dict[asyncio.AbstractEventLoop, tuple[list[Any], list[Result]]] = {}
                for (_op, future, loop, _single), result in zip(batch, results, strict=True):
                    futures, outcomes = by_loop.setdefault(loop, ([], []))
                    futures.append(future)
                    outcomes.append(result)
                for loop, (futures, outcomes) in by_loop.items():
                    if not loop.is_closed():
                        loop.call_soon_threadsafe(settle, futures, outcomes)
        finally:
            if self.conn is not None:
                self.conn.close()

    def _execute(self, batch: list[_Op]) -> list[Result]:
        """The batch's results; after the connection was lost (a server restart or failover,
        a proxy's idle timeout), on a new one. Without this the writer thread died with the
        connection, and every later store call waited for ever."""
        if self.conn is None or _lost(self.conn):
            self._reconnect()
        if self.conn is None:
            error = StoreUnavailable(f"the store's connection is lost: {self._lost_because}")
            return [(None, error) for _ in batch]
        try:
            return self._execute_ops(
                self.conn, self.db.dialect, [(op, single) for op, _f, _l, single in batch]
            )
        except BaseException as exc:  # never let the writer die with waiters unanswered
            return [(None, exc) for _ in batch]

    def _reconnect(self) -> None:
        now = time.monotonic()
        if now - self._reconnected_at < RECONNECT_SECONDS:
            return  # fail fast in between: each attempt may wait for a connect timeout
        self._reconnected_at = now
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        try:
            self.conn = self._connect()
        except Exception as exc:
            self._lost_because = f"{type(exc).__name__}: {exc}"
            log.warning("store_reconnect_failed", error=self._lost_because)
            return
        log.info("store_reconnected")


def _lost(conn: Connection) -> bool:
    """Whether the driver knows its connection is gone (psycopg: closed or broken)."""
    return bool(getattr(conn, "closed", False) or getattr(conn, "broken", False))
