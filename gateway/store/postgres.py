"""PostgreSQL, for several gateway processes sharing one database (claims use SKIP LOCKED)."""

from __future__ import annotations

from gateway.store.database import Connection, Dialect, ThreadedDatabase
from gateway.store.schema import (
    POSTGRES_DDL,
    POSTGRES_LATE_DDL,
    POSTGRES_MIGRATIONS,
    statements,
)

DIALECT = Dialect(
    name="postgres",
    placeholder="%s",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    begin=None,
    error_aborts_transaction=True,
    nul_in_text=False,
    # The first key keeps our locks apart from any other application's on the same database;
    # the schema in the second, from another gateway's in its own schema (advisory locks are
    # per database, and tables are per schema).
    try_lock="SELECT pg_try_advisory_xact_lock(1735357044, hashtext(current_schema() || ':' || ?))",
    for_update=" FOR UPDATE",
)


# Connections, each with a writer thread of its own: enough that the server, not one
# connection's round trips, sets the pace (bench/send.py: one connection's thread spent 80% of
# its time waiting on the server).
CONNECTIONS = 4


def postgres_database(dsn: str, connections: int = CONNECTIONS) -> ThreadedDatabase:
    def connect() -> Connection:
        import psycopg  # optional dependency: pip install 'omnichannel-gateway[postgres]'

        conn = psycopg.connect(dsn, autocommit=False)
        with conn.cursor() as cur:
            # Several processes may start at once; serialise the DDL.
            cur.execute("SELECT pg_advisory_xact_lock(727274)")
            for statement in [
                *statements(POSTGRES_DDL),
                *POSTGRES_MIGRATIONS,
                *statements(POSTGRES_LATE_DDL),
            ]:
                cur.execute(statement)
        conn.commit()
        return conn

    return ThreadedDatabase(connect, DIALECT, connections)
