"""PostgreSQL, for several gateway processes sharing one database (claims use SKIP LOCKED)."""

from __future__ import annotations

from gateway.store.database import Connection, Dialect, ThreadedDatabase
from gateway.store.migrations import migrate

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
    chains_statements=True,
)


# Connections, each with a writer thread of its own: enough that the server, not one
# connection's round trips, sets the pace (bench/send.py: one connection's thread spent 80% of
# its time waiting on the server).
CONNECTIONS = 4


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
        except BaseException:
            conn.close()
            raise
        return conn

    def connect_reader() -> Connection:
        import psycopg

        # Reads only, each statement on its own: no transaction to begin or commit. The
        # writers have migrated the store by the time it starts.
        return psycopg.connect(dsn, autocommit=True)

    return ThreadedDatabase(connect, DIALECT, connections, connect_reader)
