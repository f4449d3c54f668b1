"""Numbered schema migrations, each applied once, in order, and recorded in the store.

`schema_migrations` holds a row per migration applied. At start-up the store's version (the
highest row) is compared with the code's: older stores run the missing migrations inside one
transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: under an advisory lock, so processes
starting at once apply them once); a store newer than the code is refused (StoreTooNew).

A schema change from now on is a new module `mNNNN_<what>.py` with `apply(step)`, listed in
MIGRATIONS; never edit one that has shipped. Migration 1 is the schema as it stood when
versions began; its steps are idempotent, so it also brings a store made before versions
existed (recognised by its tables, without `schema_migrations`) up to date.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.logs import get_logger
from gateway.store.migrations import (
    m0001_baseline,
    m0002_communities,
    m0003_failover,
    m0004_web_channel,
    m0005_broadcasts,
    m0006_failed_parts,
)
from gateway.store.records import StoreUnavailable

log = get_logger("gateway.store")


class Cursor(Protocol):
    """What sqlite3.Connection and psycopg.Cursor both offer."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


@dataclass(frozen=True)
class Step:
    """A migration's view of the database: runs SQL in the dialect's own words."""

    cursor: Cursor
    dialect: str  # "sqlite" or "postgres"

    @property
    def types(self) -> dict[str, str]:
        """Names for the schema's column types, for `str.format` on the DDL templates."""
        if self.dialect == "sqlite":
            return {"serial": "INTEGER", "real": "REAL", "blob": "BLOB"}
        return {"serial": "BIGSERIAL", "real": "DOUBLE PRECISION", "blob": "BYTEA"}

    def execute(self, sql: str) -> None:
        self.cursor.execute(sql)

    def add_column(self, table: str, column: str, kind: str) -> None:
        """Add `column` unless the table has it (SQLite has no ADD COLUMN IF NOT EXISTS)."""
        kind = kind.format(**self.types)
        if self.dialect == "postgres":
            self.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
        elif column not in {row[1] for row in self.rows(f"PRAGMA table_info({table})")}:
            self.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def rows(self, sql: str) -> list[Any]:
        return list(self.cursor.execute(sql).fetchall())


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Step], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline", m0001_baseline.apply),
    Migration(2, "communities", m0002_communities.apply),
    Migration(3, "failover", m0003_failover.apply),
    Migration(4, "web_channel", m0004_web_channel.apply),
    Migration(5, "broadcasts", m0005_broadcasts.apply),
    Migration(6, "failed_parts", m0006_failed_parts.apply),
)
LATEST = MIGRATIONS[-1].version


def latest_version() -> int:
    """The version this code migrates to (read when called: tests add migrations)."""
    return MIGRATIONS[-1].version


class StoreTooNew(StoreUnavailable):
    """The store was migrated by a newer release than this one: running on it could lose data."""

    def __init__(self, store_version: int, code_version: int) -> None:
        super().__init__(
            f"the store's schema is version {store_version}, newer than this gateway's "
            f"(version {code_version}): a newer release has upgraded it; run that release "
            "(or newer), or restore a backup taken before the upgrade"
        )
        self.store_version = store_version
        self.code_version = code_version


def store_version(step: Step) -> int:
    """The highest migration recorded (0: none, a new store or one from before versions)."""
    return int(step.rows("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0])


def migrate(
    cursor: Cursor, dialect: str, migrations: Sequence[Migration] | None = None
) -> tuple[int, int]:
    """Bring the store to the last of `migrations` (MIGRATIONS); the caller holds the
    transaction (and, on PostgreSQL, the lock). Returns the versions before and after."""
    if migrations is None:
        migrations = MIGRATIONS
    step = Step(cursor, dialect)
    step.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        f"applied_at {step.types['real']} NOT NULL)"
    )
    before = store_version(step)
    latest = migrations[-1].version if migrations else 0
    if before > latest:
        raise StoreTooNew(before, latest)
    for migration in migrations:
        if migration.version <= before:
            continue
        migration.apply(step)
        mark = "?" if dialect == "sqlite" else "%s"
        cursor.execute(
            f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({mark}, {mark}, {mark})",
            (migration.version, migration.name, time.time()),
        )
    if latest != before:
        log.info("store_migrated", dialect=dialect, from_version=before, to_version=latest)
    return before, latest
