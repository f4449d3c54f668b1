"""PostgreSQL writers in pipeline mode (store/postgres.py): statements go without waits, and
yet each op's errors are its own, as they were statement by statement (and are without it)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import psycopg.errors
import pytest

from gateway.store import Store, postgres_database
from gateway.store.database import Tx

CONTACT = (
    "INSERT INTO contacts (channel_id, user_id, conversation_id, created_at) VALUES (?, ?, 'c', 1)"
)


def contacts(tx: Tx) -> list[str]:
    return [row[0] for row in tx.all("SELECT user_id FROM contacts ORDER BY user_id")]


def adding(*users: str) -> Any:
    def op(tx: Tx) -> str:
        for user in users:
            tx.write(CONTACT, ("wa", user))
        return "added"

    return op


@pytest.fixture(params=["pipeline", "no pipeline"])
async def store(
    request: pytest.FixtureRequest, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    if request.param == "no pipeline":  # a libpq older than 14: each statement waits
        monkeypatch.setattr(psycopg.capabilities, "has_pipeline", lambda: False)
    made = Store(postgres_database(pg_schema, connections=1))
    made.start()
    yield made
    made.close()


async def test_a_write_that_fails_fails_its_own_op_alone(store: Store) -> None:
    results = await asyncio.gather(
        store.db.run(adding("a")),
        store.db.run(adding("b", "b")),  # the second is refused: a duplicate key
        store.db.run(adding("c")),
        store.db.run(lambda tx: tx.one("SELECT 1")),
        return_exceptions=True,
    )
    assert results[0] == "added" and results[2] == "added" and results[3] == (1,)
    assert isinstance(results[1], psycopg.errors.UniqueViolation)
    assert await store.db.run(contacts) == ["a", "c"]
    with pytest.raises(psycopg.errors.UniqueViolation):  # alone in its batch, too
        await store.db.run(adding("d", "d"))
    assert await store.db.run(contacts) == ["a", "c"]


async def test_an_op_that_catches_its_statements_error_goes_on(store: Store) -> None:
    def recovers(tx: Tx) -> Any:
        tx.write(CONTACT, ("wa", "kept"))
        outcomes = []
        for attempt in (lambda: tx.write(CONTACT, ("wa", "kept")), lambda: tx.one("SELECT 1/0")):
            tx.execute("SAVEPOINT mine")
            try:
                attempt()
                tx.confirm()
            except psycopg.Error as exc:
                outcomes.append(type(exc).__name__)
                tx.execute("ROLLBACK TO SAVEPOINT mine")
            tx.execute("RELEASE SAVEPOINT mine")
        return outcomes, tx.one("SELECT 2")

    together = await asyncio.gather(store.db.run(recovers), store.db.run(adding("other")))
    assert together[0] == (["UniqueViolation", "DivisionByZero"], (2,))
    assert await store.db.run(contacts) == ["kept", "other"]


async def test_a_row_count_is_the_statements_own(store: Store) -> None:
    await store.db.run(adding("a", "b"))
    changed = await store.db.run(
        lambda tx: tx.execute("UPDATE contacts SET name = 'x' WHERE user_id IN ('a', 'b')")
    )
    assert changed == 2
