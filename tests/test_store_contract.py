"""One contract, two stores: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.schema import ChannelRef, Event, Party, Status
from gateway.store import IdempotencyConflict, NewMessage, Store, postgres_database, sqlite_database

from .conftest import PG_DSN, require_postgres

NOW = time.time()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_postgres()
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    made: list[Store] = []
    dsn = request.getfixturevalue("pg_schema") if request.param == "postgres" else None

    def make() -> Store:
        db = postgres_database(dsn) if dsn else sqlite_database(tmp_path / "store.db")
        store = Store(db)
        store.start()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
async def store(make_store: Callable[[], Store]) -> AsyncIterator[Store]:
    yield make_store()


def targets(event_type: str) -> list[str]:
    return ["orders"]


def inbound(text_id: str, sender: str = "16505551234") -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="message",
        channel=ChannelRef(id="wa", type="whatsapp"),
        external_id=text_id,
        timestamp=datetime.now(UTC),
        sender=Party(id=sender, name="Sheena"),
        message={"content": {"type": "text", "text": "hi"}},  # type: ignore[arg-type]
    )


def status(external_id: str, state: str, raw_id: int | None = 1) -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="status",
        channel=ChannelRef(id="wa", type="whatsapp"),
        external_id=external_id,
        timestamp=datetime.now(UTC),
        recipient=Party(id="16505551234"),
        status=Status(external_id=external_id, state=state),
        raw_id=raw_id,  # type: ignore[arg-type]
    )


def new_message(message_id: str, key: str | None = None, body_hash: str = "h1") -> NewMessage:
    return NewMessage(
        message_id,
        "wa",
        "16505551234",
        '{"type":"text","text":"hi"}',
        None,
        "orders",
        key,
        body_hash,
    )


async def test_concurrent_duplicates_store_one_row(store: Store) -> None:
    results = await asyncio.gather(
        *(store.append_inbox("wa", "msg:wamid.1", "u", "{}", b"body", NOW) for _ in range(20))
    )
    assert len([r for r in results if r is not None]) == 1
    assert len(await store.claim_inbox(10, NOW, 30)) == 1


async def test_claims_are_leased(store: Store) -> None:
    for i in range(3):
        await store.append_inbox("wa", f"k{i}", "u", "{}", b"b", NOW)
    first = await store.claim_inbox(2, NOW, 30)
    second = await store.claim_inbox(10, NOW, 30)
    assert [r.id for r in first] == sorted(r.id for r in first)
    assert {r.id for r in first}.isdisjoint(r.id for r in second)
    assert len(first) + len(second) == 3
    assert await store.claim_inbox(10, NOW + 1, 30) == []
    assert len(await store.claim_inbox(10, NOW + 31, 30)) == 3  # lease ran out: claimable again


async def test_inbound_events_are_deduped_across_requests(store: Store) -> None:
    row_a = await store.append_inbox("wa", "a", "u", "{}", b"a", NOW)
    row_b = await store.append_inbox("wa", "b", "u", "{}", b"b", NOW)
    assert row_a and row_b
    first = await store.record_inbound(row_a, [(inbound("wamid.1"), "msg:wamid.1")], targets, NOW)
    again = await store.record_inbound(row_b, [(inbound("wamid.1"), "msg:wamid.1")], targets, NOW)
    assert len(first) == 1 and again == []
    assert first[0].conversation_id and first[0].conversation_id.startswith("conv_")
    items = await store.claim_outbox("webhook", 10, NOW, 30)
    assert [i.ref for i in items] == [first[0].id]
    assert items[0].body and '"wamid.1"' in items[0].body
    assert await store.claim_inbox(10, NOW, 30) == []  # both rows closed


async def test_failed_rows_can_be_replayed(store: Store) -> None:
    row = await store.append_inbox("wa", "a", "u", "{}", b"not json", NOW)
    assert row
    await store.fail_inbox(row, "malformed JSON", NOW)
    assert await store.inbox_rows("failed") == [(row, "wa", "malformed JSON")]
    assert await store.replay_inbox("other-channel") == 0
    assert await store.replay_inbox("wa") == 1
    assert [r.id for r in await store.claim_inbox(10, NOW, 30)] == [row]


async def test_idempotent_create(store: Store) -> None:
    assert await store.create_message(new_message("msg_1", "k"), NOW) == ("msg_1", "queued", True)
    assert await store.create_message(new_message("msg_2", "k"), NOW) == ("msg_1", "queued", False)
    with pytest.raises(IdempotencyConflict):
        await store.create_message(new_message("msg_3", "k", "other-body"), NOW)
    assert await store.create_message(new_message("msg_4"), NOW) == ("msg_4", "queued", True)
    sends = await store.claim_outbox("send", 10, NOW, 30)
    assert [s.ref for s in sends] == ["msg_1", "msg_4"]


async def test_status_never_moves_backwards(store: Store) -> None:
    await store.create_message(new_message("msg_1"), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.record_sent(
        send.id, "msg_1", "wa", ["wamid.out"], None, status("wamid.out", "sent", None), targets, NOW
    )
    row = await store.append_inbox("wa", "s", "u", "{}", b"s", NOW)
    assert row
    stored = await store.record_inbound(
        row,
        [
            (status("wamid.out", "read"), "status:read"),
            (status("wamid.out", "delivered"), "status:delivered"),
        ],
        targets,
        NOW,
    )
    assert [e.status.state for e in stored if e.status] == ["read"]
    assert stored[0].status and stored[0].status.message_id == "msg_1"
    record = await store.get_message("msg_1")
    assert record and record.state == "read" and record.external_ids == ["wamid.out"]
    assert [h[1] for h in record.history] == ["queued", "sent", "read", "ignored:delivered"]


async def test_status_arriving_before_send_commit_is_adopted(store: Store) -> None:
    await store.create_message(new_message("msg_1"), NOW)
    row = await store.append_inbox("wa", "s", "u", "{}", b"s", NOW)
    assert row
    [orphan] = await store.record_inbound(
        row, [(status("wamid.fast", "delivered"), "status:d")], targets, NOW
    )
    assert orphan.status and orphan.status.message_id is None
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    emitted = await store.record_sent(
        send.id,
        "msg_1",
        "wa",
        ["wamid.fast"],
        None,
        status("wamid.fast", "sent", None),
        targets,
        NOW,
    )
    assert [(e.status.state, e.status.message_id) for e in emitted if e.status] == [
        ("sent", None),
        ("delivered", "msg_1"),
    ]
    record = await store.get_message("msg_1")
    assert record and record.state == "delivered"


async def test_retry_dead_letter_and_replay(store: Store) -> None:
    await store.create_message(new_message("msg_1"), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.retry_outbox([send.id], NOW + 60, "HTTP 503", False, NOW)
    assert await store.claim_outbox("send", 1, NOW + 1, 30) == []
    [again] = await store.claim_outbox("send", 1, NOW + 61, 30)
    assert again.attempts == 1
    await store.retry_outbox([again.id], NOW + 60, "HTTP 503", True, NOW)
    assert (await store.outbox_counts())["send:dead"] == 1
    assert await store.replay_dead(NOW) == 1
    assert len(await store.claim_outbox("send", 1, NOW + 1, 30)) == 1


async def test_two_processes_never_claim_the_same_row(make_store: Callable[[], Store]) -> None:
    one, two = make_store(), make_store()
    for i in range(200):
        await one.append_inbox("wa", f"k{i}", "u", "{}", b"b", NOW)
    claims = await asyncio.gather(*(s.claim_inbox(7, NOW, 30) for s in [one, two] * 20))
    ids = [r.id for claim in claims for r in claim]
    assert len(ids) == len(set(ids)) == 200
