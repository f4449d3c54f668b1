"""A lost database connection costs the requests in flight (answered as store errors, 503, so
providers and API callers retry), never the gateway: the writer reconnects. Before, the writer
thread died with its connection and every later store call waited for ever."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from gateway.store import Store, StoreUnavailable, is_store_error, postgres_database
from gateway.store.database import RECONNECT_SECONDS, ThreadedDatabase
from gateway.store.postgres import DIALECT

from .conftest import PG_DSN


async def append(store: Store, key: str) -> int | None:
    return await store.append_inbox("wa-main", key, "https://gw/webhooks/wa-main", "{}", b"{}", 1.0)


async def test_postgres_connection_terminated_by_the_server_is_replaced(pg_schema: str) -> None:
    store = Store(postgres_database(pg_schema))
    store.start()
    try:
        (pid,) = await store.db.run(lambda tx: tx.one("SELECT pg_backend_pid()"))
        with psycopg.connect(PG_DSN, autocommit=True) as admin:  # a restart, a failover
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        outcomes: list[object] = []
        async with asyncio.timeout(5):
            while not outcomes or isinstance(outcomes[-1], BaseException):
                try:
                    outcomes.append(await append(store, f"after-{len(outcomes)}"))
                except Exception as exc:
                    assert is_store_error(exc), exc  # answered 503: the provider retries
                    outcomes.append(exc)
        # The batch that meets the dead connection fails; the next one reconnects. With several
        # connections the append may have gone through another one, and the dead one is met
        # by the read below instead: one failure in all, either way.
        failures = sum(isinstance(o, BaseException) for o in outcomes)
        async with asyncio.timeout(5):
            while True:
                try:
                    (new_pid,) = await store.db.run(lambda tx: tx.one("SELECT pg_backend_pid()"))
                    break
                except Exception as exc:
                    assert is_store_error(exc), exc
                    failures += 1
        assert failures <= 1
        assert new_pid != pid
    finally:
        store.close()


async def test_the_readers_connection_is_replaced_too(pg_schema: str) -> None:
    store = Store(postgres_database(pg_schema))
    store.start()
    try:
        (pid,) = await store.db.read(lambda tx: tx.one("SELECT pg_backend_pid()"))
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        failures = 0
        async with asyncio.timeout(5):
            while True:
                try:
                    (new_pid,) = await store.db.read(lambda tx: tx.one("SELECT pg_backend_pid()"))
                    break
                except Exception as exc:
                    assert is_store_error(exc), exc
                    failures += 1
                    await asyncio.sleep(0.05)
        assert failures <= 1
        assert new_pid != pid
    finally:
        store.close()


class FakeConnection:
    """Enough of a DB-API connection for one statement per batch; `closed` as psycopg has it."""

    def __init__(self) -> None:
        self.closed = False

    def cursor(self) -> Any:
        if self.closed:
            raise ConnectionError("the connection is closed")
        return FakeCursor()

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeCursor:
    rowcount = 1

    def execute(self, _sql: str, _params: Any = ()) -> None:
        pass

    def fetchone(self) -> Any:
        return (1,)

    def close(self) -> None:
        pass


async def test_while_the_server_is_down_calls_fail_fast_then_recover() -> None:
    connections: list[FakeConnection] = []
    server_up = True

    def connect() -> FakeConnection:
        if not server_up:
            raise OSError("connection refused")
        connections.append(FakeConnection())
        return connections[-1]

    db = ThreadedDatabase(connect, DIALECT)
    db.start()
    try:
        assert await db.run(lambda tx: tx.one("SELECT 1")) == (1,)
        server_up = False
        connections[-1].close()  # the server went away
        started = time.monotonic()
        for _ in range(3):  # no connect attempt waits on a down server more than once a second
            with pytest.raises(StoreUnavailable, match="connection is lost: OSError"):
                await db.run(lambda tx: tx.one("SELECT 1"))
        assert time.monotonic() - started < RECONNECT_SECONDS
        server_up = True
        async with asyncio.timeout(3 * RECONNECT_SECONDS):
            while True:
                try:
                    assert await db.run(lambda tx: tx.one("SELECT 1")) == (1,)
                    break
                except StoreUnavailable:
                    await asyncio.sleep(0.05)
        assert len(connections) == 2
    finally:
        db.close()


async def test_a_claim_whose_answer_was_lost_is_undone_by_its_lease_time(store: Store) -> None:
    """A claim's commit may land with its answer lost (the connection cut just then): its
    rows are known to no process. `unclaim` frees exactly the rows of that claim."""
    first = await append(store, "first")
    second = await append(store, "second")
    [lost] = await store.claim_inbox(1, 100.0, 30.0)  # as if its answer never came
    [kept] = await store.claim_inbox(1, 100.5, 30.0)  # another worker's claim, under way
    assert (lost.id, kept.id) == (first, second)
    await store.unclaim("inbox", 100.0 + 30.0)
    assert [r.id for r in await store.claim_inbox(10, 101.0, 30.0)] == [first]


async def answered_past_a_busy_writer(
    db: ThreadedDatabase, ask: Callable[[Callable[[Any], Any]], Awaitable[Any]]
) -> None:
    """While one batch holds a writer, `ask` still gets its `SELECT 1` answered."""
    slow_started, release = threading.Event(), threading.Event()

    def slow(tx: Any) -> str:
        slow_started.set()
        release.wait(5)
        return "slow"

    db.start()
    try:
        slow_one = asyncio.ensure_future(db.run(slow))
        while not slow_started.is_set():
            await asyncio.sleep(0.005)
        async with asyncio.timeout(2):
            assert await ask(lambda tx: tx.one("SELECT 1")) == (1,)
        assert not slow_one.done()
        release.set()
        assert await slow_one == "slow"
    finally:
        release.set()
        db.close()


async def test_several_writers_run_batches_side_by_side() -> None:
    """One batch waiting on the server does not hold up the next: it runs on another
    connection (PostgreSQL's writers, postgres.CONNECTIONS)."""
    connections: list[FakeConnection] = []

    def connect() -> FakeConnection:
        connections.append(FakeConnection())
        return connections[-1]

    db = ThreadedDatabase(connect, DIALECT, 2)
    await answered_past_a_busy_writer(db, db.run)
    assert len(connections) == 2 and all(c.closed for c in connections)


async def test_reads_go_on_their_own_connection_past_a_busy_writer() -> None:
    """A read waits for no group commit (PostgreSQL's reader, postgres.postgres_database)."""
    readers: list[FakeConnection] = []

    def connect_reader() -> FakeConnection:
        readers.append(FakeConnection())
        return readers[-1]

    db = ThreadedDatabase(FakeConnection, DIALECT, 1, connect_reader)
    await answered_past_a_busy_writer(db, db.read)
    assert len(readers) == 1 and readers[0].closed


class Deadlocked(Exception):
    sqlstate = "40P01"  # as psycopg's errors.DeadlockDetected carries it


async def test_an_operation_the_server_picked_as_a_deadlock_victim_runs_again() -> None:
    db = ThreadedDatabase(FakeConnection, DIALECT)
    db.start()
    tries: list[int] = []

    def op(tx: Any) -> int:
        tries.append(1)
        if len(tries) == 1:
            raise Deadlocked("deadlock detected")
        return len(tries)

    def refused(tx: Any) -> None:
        raise ValueError("not transient")

    try:
        together = await asyncio.gather(db.run(op), db.run(refused), return_exceptions=True)
        assert together[0] == 2
        assert isinstance(together[1], ValueError)
        tries.clear()
        assert await db.run(op) == 2  # alone in its batch, too
    finally:
        db.close()
