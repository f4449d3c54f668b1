"""The embedded default: one SQLite file in WAL mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from gateway.store.database import Connection, Database, Dialect
from gateway.store.schema import SQLITE_DDL, statements

DIALECT = Dialect(name="sqlite", placeholder="?", skip_locked="", begin="BEGIN IMMEDIATE")


def sqlite_database(path: str | Path, synchronous: Literal["full", "normal"] = "full") -> Database:
    def connect() -> Connection:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute("PRAGMA busy_timeout=10000")
        for statement in statements(SQLITE_DDL):
            conn.execute(statement)
        return conn  # type: ignore[return-value]

    return Database(connect, DIALECT)
