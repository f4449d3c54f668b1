"""One writer thread per process with group commit.

Every store operation is a function of a `Tx`. Operations queue up while the previous batch
commits; the writer runs the whole queue in one transaction (each op in its own savepoint, so
one failing op does not undo its neighbours), commits once, and wakes every waiter with one
call into the event loop. The fsync is paid once per batch, not once per webhook.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

MAX_BATCH = 256


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


class Tx:
    """What an operation sees: `?` placeholders everywhere, rows as tuples."""

    def __init__(self, cursor: Cursor, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self._translated: dict[str, str] = {}

    def _sql(self, sql: str) -> str:
        if self.dialect.placeholder == "?":
            return sql
        cached = self._translated.get(sql)
        if cached is None:
            cached = self._translated[sql] = sql.replace("?", self.dialect.placeholder)
        return cached

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.fetchall()


_STOP = object()
_Op = tuple[Callable[[Tx], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class Database:
    def __init__(self, connect: Callable[[], Connection], dialect: Dialect) -> None:
        self._connect = connect
        self.dialect = dialect
        self._queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.batches = 0
        self.operations = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._writer, name="store-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    async def run(self, op: Callable[[Tx], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, future, loop))
        return await future

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    # --- writer thread -------------------------------------------------------------
    def _writer(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is _STOP:
                    break
                batch: list[_Op] = [first]  # type: ignore[list-item]
                while len(batch) < MAX_BATCH:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    batch.append(nxt)  # type: ignore[arg-type]
                self._run_batch(conn, batch)
        finally:
            conn.close()

    def _run_batch(self, conn: Connection, batch: list[_Op]) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        cursor = conn.cursor()
        tx = Tx(cursor, self.dialect)
        savepoints = len(batch) > 1
        try:
            if self.dialect.begin:
                cursor.execute(self.dialect.begin)
            for op, future, _loop in batch:
                if savepoints:
                    cursor.execute("SAVEPOINT op")
                try:
                    value = op(tx)
                except Exception as exc:
                    if savepoints:
                        cursor.execute("ROLLBACK TO SAVEPOINT op")
                        cursor.execute("RELEASE SAVEPOINT op")
                    else:
                        conn.rollback()
                        if self.dialect.begin:
                            cursor.execute(self.dialect.begin)
                    results.append((future, None, exc))
                    continue
                if savepoints:
                    cursor.execute("RELEASE SAVEPOINT op")
                results.append((future, value, None))
            conn.commit()
        except Exception as exc:  # the commit itself failed: nothing in the batch is durable
            try:
                conn.rollback()
            except Exception:  # noqa: S110 - the connection is already broken; report the first error
                pass
            results = [(future, None, exc) for _op, future, _loop in batch]
        finally:
            cursor.close()
        self.batches += 1
        self.operations += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_op, _future, loop), result in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append(result)
        for loop, items in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in items:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
