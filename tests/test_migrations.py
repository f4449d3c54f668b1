"""Versioned store migrations (gateway/store/migrations): applied once, in order, on SQLite
and PostgreSQL; a store from the previous release upgraded to what a new one gets; a store
newer than the code refused."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.store import Store, StoreUnavailable, postgres_database, sqlite_database
from gateway.store import migrations as versions
from gateway.store.database import Database, Tx
from gateway.store.migrations import LATEST, Migration, Step, StoreTooNew
from tests import old_release
from tests.conftest import PG_DSN, require_postgres


@pytest.fixture(params=["sqlite", "postgres"])
def places(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two empty stores' places of one dialect: `build_old` makes the old release's in the
    first; `open(n)` opens (and migrates) store n."""
    opened: list[Store] = []
    schemas = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    if request.param == "sqlite":
        paths = [tmp_path / "first.db", tmp_path / "second.db"]
        make_db: Callable[[int], Database] = lambda n: sqlite_database(paths[n])  # noqa: E731
        build_old = lambda: old_release.build_sqlite(paths[0])  # noqa: E731
    else:
        require_postgres()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"CREATE SCHEMA {schema}")
        dsns = [f"{PG_DSN}?options=-csearch_path%3D{schema}" for schema in schemas]
        make_db = lambda n: postgres_database(dsns[n], connections=1)  # noqa: E731
        build_old = lambda: old_release.build_postgres(dsns[0])  # noqa: E731

    def open_store(n: int) -> Store:
        store = Store(make_db(n))
        store.start()
        opened.append(store)
        return store

    yield {"dialect": request.param, "open": open_store, "build_old": build_old}
    for store in opened:
        store.close()
    if request.param == "postgres":
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def describe(store: Store, dialect: str) -> dict[str, Any]:
    """Every table's columns (name, type, nullable, default) and every index's definition."""

    def sqlite_schema(tx: Tx) -> dict[str, Any]:
        tables = [r[0] for r in tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {
            t: sorted(tuple(r[1:5]) for r in tx.all(f"PRAGMA table_info({t})")) for t in tables
        }
        indexes = {
            name: " ".join(sql.split())
            for name, sql in tx.all(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
        return {"columns": columns, "indexes": indexes}

    def postgres_schema(tx: Tx) -> dict[str, Any]:
        (schema,) = tx.one("SELECT current_schema()")
        columns: dict[str, list[tuple[Any, ...]]] = {}
        for table, *column in tx.all(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
        ):
            columns.setdefault(table, []).append(tuple(column))
        indexes = {
            name: definition.replace(f"{schema}.", "")
            for name, definition in tx.all(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            )
        }
        return {"columns": {t: sorted(c) for t, c in columns.items()}, "indexes": indexes}

    return asyncio.run(store.db.run(sqlite_schema if dialect == "sqlite" else postgres_schema))


def recorded(store: Store) -> list[tuple[int, str]]:
    rows = asyncio.run(
        store.db.run(lambda tx: tx.all("SELECT version, name FROM schema_migrations ORDER BY 1"))
    )
    return [(int(v), n) for v, n in rows]


def test_a_new_store_is_created_at_the_latest_version(places: dict[str, Any]) -> None:
    store = places["open"](0)
    assert recorded(store) == [(m.version, m.name) for m in versions.MIGRATIONS]
    assert recorded(store)[-1][0] == LATEST


def test_the_previous_releases_store_is_upgraded_to_what_a_new_one_gets(
    places: dict[str, Any],
) -> None:
    places["build_old"]()
    upgraded = places["open"](0)
    fresh = places["open"](1)
    assert recorded(upgraded) == recorded(fresh)
    assert describe(upgraded, places["dialect"]) == describe(fresh, places["dialect"])
    # What the old release wrote reads back through the current store.
    message = asyncio.run(upgraded.get_message(old_release.MESSAGE_ID))
    assert message is not None and message.state == "delivered"
    assert message.external_ids == ["wamid.SENT1"]
    assert [state for _at, state, _detail in message.history] == ["queued", "delivered"]
    contact = asyncio.run(upgraded.get_contact(old_release.CHANNEL, old_release.CONTACT))
    assert contact.unsubscribe_reason == "STOP" and contact.reply_token is None


def test_migrations_apply_once_and_in_order(
    places: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []

    def add_table(step: Step) -> None:
        ran.append(LATEST + 1)
        step.execute("CREATE TABLE notes (id TEXT PRIMARY KEY)")

    def add_column(step: Step) -> None:
        ran.append(LATEST + 2)
        step.execute("ALTER TABLE notes ADD COLUMN body TEXT")  # fails unless 2 ran first

    places["open"](0).close()
    monkeypatch.setattr(
        versions,
        "MIGRATIONS",
        (
            *versions.MIGRATIONS,
            Migration(LATEST + 1, "notes", add_table),
            Migration(LATEST + 2, "body", add_column),
        ),
    )
    store = places["open"](0)
    assert ran == [LATEST + 1, LATEST + 2]
    assert recorded(store)[-2:] == [(LATEST + 1, "notes"), (LATEST + 2, "body")]
    store.close()
    places["open"](0)
    assert ran == [LATEST + 1, LATEST + 2]  # not again


def test_a_failing_migration_leaves_the_store_as_it_was(
    places: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_done(step: Step) -> None:
        step.execute("CREATE TABLE notes (id TEXT PRIMARY KEY)")
        step.execute("SELECT no_such_column FROM notes")

    places["open"](0).close()
    monkeypatch.setattr(
        versions, "MIGRATIONS", (*versions.MIGRATIONS, Migration(LATEST + 1, "x", half_done))
    )
    with pytest.raises(StoreUnavailable):
        places["open"](0)
    monkeypatch.undo()
    store = places["open"](0)
    assert recorded(store)[-1][0] == LATEST
    tables = describe(store, places["dialect"])["columns"]
    assert "notes" not in tables


def test_a_store_newer_than_the_code_is_refused_naming_both_versions(
    places: dict[str, Any],
) -> None:
    store = places["open"](0)
    newer = LATEST + 1
    asyncio.run(
        store.db.run(
            lambda tx: tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'next', 0)",
                (newer,),
            )
        )
    )
    store.close()
    with pytest.raises(StoreTooNew) as refused:
        places["open"](0)
    message = str(refused.value)
    assert f"version {newer}" in message and f"version {LATEST}" in message
    assert isinstance(refused.value, StoreUnavailable)  # the CLI's and app's clear line


def test_processes_starting_at_once_on_postgres_migrate_once(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(SQLite: BEGIN IMMEDIATE serialises processes opening one file.)"""
    ran: list[int] = []

    def slow(step: Step) -> None:
        ran.append(LATEST + 1)
        step.execute("SELECT pg_sleep(0.2)")
        step.execute("CREATE TABLE notes (id TEXT PRIMARY KEY)")

    monkeypatch.setattr(
        versions, "MIGRATIONS", (*versions.MIGRATIONS, Migration(LATEST + 1, "slow", slow))
    )
    errors: list[BaseException] = []
    stores: list[Store] = []

    def start() -> None:
        try:
            store = Store(postgres_database(pg_schema, connections=2))
            store.start()
            stores.append(store)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert ran == [LATEST + 1]
        assert [v for v, _n in recorded(stores[0])] == list(range(1, LATEST + 2))
    finally:
        for store in stores:
            store.close()


def test_the_saved_old_ddl_is_what_that_release_ran() -> None:
    """The fixture files stay the old release's DDL: its tables, none of the later ones."""
    for dialect in ("sqlite", "postgres"):
        text = " ".join(old_release.old_statements(dialect))
        tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", text))
        assert tables == {
            "inbox",
            "events",
            "contacts",
            "messages",
            "message_parts",
            "message_history",
            "reply_choices",
            "form_sessions",
            "outbox",
        }
        assert set(old_release.ROWS) == tables


def test_the_cli_on_a_store_newer_than_the_code_says_so_in_one_line(tmp_path: Path) -> None:
    import sqlite3
    import subprocess
    import sys

    import yaml

    from tests.conftest import base_config

    data = base_config(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    store = Store(sqlite_database(Path(data["storage"]["path"])))
    store.start()
    store.close()
    with sqlite3.connect(data["storage"]["path"]) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'next', 0)",
            (LATEST + 1,),
        )

    done = subprocess.run(
        [sys.executable, "-m", "gateway", "replay", "--config", str(path), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert f"{path}: storage: the store's schema is version {LATEST + 1}" in done.stderr
    assert f"(version {LATEST})" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_sqlite_store_up_to_date_opens_while_another_connection_writes(tmp_path: Path) -> None:
    """Opening takes no write lock unless there is something to migrate: a file another
    process is writing to (a backup tool, `sqlite3` in a shell) does not stop the start."""
    import sqlite3

    path = tmp_path / "store.db"
    made = Store(sqlite_database(path))
    made.start()
    made.close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        store = Store(sqlite_database(path))
        store.start()
        store.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
