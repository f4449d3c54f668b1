"""PostgreSQL, for several gateway processes sharing one database (claims use SKIP LOCKED)."""

from __future__ import annotations

import contextlib
from typing import Any

from gateway.store.database import Connection, Dialect, ThreadedDatabase
from gateway.store.migrations import migrate

DIALECT = Dialect(
    name="postgres",
    placeholder="%s",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    # Sent as a statement: in pipeline mode psycopg would wait for a BEGIN of its own.
    begin="BEGIN",
    error_aborts_transaction=True,
    nul_in_text=False,
    # The first key keeps our locks apart from any other application's on the same database;
    # the schema in the second, from another gateway's in its own schema (advisory locks are
    # per database, and tables are per schema).
    try_lock="SELECT pg_try_advisory_xact_lock(1735357044, hashtext(current_schema() || ':' || ?))",
    for_update=" FOR UPDATE",
    chains_statements=True,
)


# Connections, each with a writer thread of its own: enough that the server, not one
# connection's round trips, sets the pace (bench/send.py: one connection's thread spent 80% of
# its time waiting on the server).
CONNECTIONS = 4


class Pipelined:
    """A writer's psycopg connection, in autocommit and pipeline mode for its whole life.

    Each statement was a round trip: the writer sent it and waited for its answer. In a
    pipeline, statements go one after the other and the writer waits only where it needs an
    answer (a read, a row count, an op's end: database.py). A transaction is BEGIN ... COMMIT
    sent as statements (`Dialect.begin`): psycopg waits for a BEGIN of its own."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._in_pipeline = conn.pipeline()
        self._pipeline = self._in_pipeline.__enter__()  # left at `close`

    def cursor(self) -> Any:
        return self._conn.cursor()

    def sync(self) -> None:
        """Wait for the answers of all that was sent: raises the first error among them."""
        self._pipeline.sync()

    def commit(self) -> None:
        self._conn.execute("COMMIT")
        self.sync()

    def rollback(self) -> None:
        with contextlib.suppress(Exception):  # out of the aborted state an error leaves
            self.sync()
        self._conn.execute("ROLLBACK")
        self.sync()

    def close(self) -> None:
        try:
            with contextlib.suppress(Exception):  # a lost connection cannot leave it
                self._in_pipeline.__exit__(None, None, None)
        finally:
            self._conn.close()

    @property
    def closed(self) -> bool:
        return bool(self._conn.closed)

    @property
    def broken(self) -> bool:
        return bool(self._conn.broken)

    def __getattr__(self, name: str) -> Any:  # the rest of psycopg's connection (tests)
        return getattr(self._conn, name)


def postgres_database(dsn: str, connections: int = CONNECTIONS) -> ThreadedDatabase:
    def connect() -> Connection:
        import psycopg  # optional dependency: pip install 'omnichannel-gateway[postgres]'

        conn = psycopg.connect(dsn, autocommit=False)
        try:
            with conn.cursor() as cur:
                # Several processes may start at once: one migrates, the others then find
                # the store at its version (the lock is held until the commit).
                cur.execute("SELECT pg_advisory_xact_lock(727274)")
                migrate(cur, "postgres")
            conn.commit()
            conn.autocommit = True
            # Pipeline mode needs libpq 14 or later (psycopg-binary brings its own); without
            # it, each statement waits for its answer, as before.
            return Pipelined(conn) if psycopg.capabilities.has_pipeline() else conn
        except BaseException:
            conn.close()
            raise

    def connect_reader() -> Connection:
        import psycopg

        # Reads only, each statement on its own: no transaction to begin or commit. The
        # writers have migrated the store by the time it starts.
        return psycopg.connect(dsn, autocommit=True)

    return ThreadedDatabase(connect, DIALECT, connections, connect_reader)
