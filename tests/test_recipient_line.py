"""Each recipient's sends stand in a line, and only its first row is claimed: one recipient's
messages go one at a time, in order, even when several gateways claim from one PostgreSQL
(on SQLite and PostgreSQL alike)."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.whatsapp import WhatsAppSimulator
from gateway.store import NewMessage, OutboxItem, Store, sqlite_database, writes

from .conftest import base_config, config_from
from .test_lanes import (  # noqa: F401 (sims: a fixture)
    AUTH,
    SlowGraph,
    accepted_by_recipient,
    churn,
    send_template,
    sims,
)

NOW = 1_760_000_000.0


def message(message_id: str, recipient: str) -> NewMessage:
    return NewMessage(
        message_id, "wa", recipient, '{"type":"text","text":"hi"}', None, "orders", None, "h"
    )


async def claim(store: Store, at: float, limit: int = 10) -> list[OutboxItem]:
    return await store.claim_outbox("send", limit, at, 30, target="wa", first_in_line=True)


async def test_only_the_first_of_each_recipients_line_is_claimed(store: Store) -> None:
    for n, recipient in enumerate(["ann", "ann", "bob", "ann", "bob"]):
        await store.create_message(message(f"msg_{n}", recipient), NOW + n)
    first = await claim(store, NOW + 10)
    assert [i.ref for i in first] == ["msg_0", "msg_2"]  # ann's first, bob's first
    # Under way, they still head their lines: nothing more of ann's or bob's goes meanwhile.
    assert await claim(store, NOW + 11) == []
    await store.complete_outbox([first[0].id], NOW + 12)
    assert [i.ref for i in await claim(store, NOW + 13)] == ["msg_1"]


async def test_a_retry_far_off_steps_out_of_line(store: Store) -> None:
    for n in range(2):
        await store.create_message(message(f"msg_{n}", "ann"), NOW + n)
    [first] = await claim(store, NOW + 5)
    # Due within a minute, the retry keeps the head of the line: the next one waits behind it.
    await store.record_send_retry(first.id, "msg_0", "wa", [], NOW + 30, "HTTP 500", NOW + 5)
    assert await claim(store, NOW + 6) == []
    assert [i.ref for i in await claim(store, NOW + 31)] == ["msg_0"]
    # Due in an hour, it stands behind the next one, which goes.
    await store.record_send_retry(first.id, "msg_0", "wa", [], NOW + 3600, "HTTP 500", NOW + 31)
    assert [i.ref for i in await claim(store, NOW + 32)] == ["msg_1"]


async def test_the_line_is_the_order_queued_whatever_the_due_times_say(store: Store) -> None:
    """A message queued at one gateway while another records a retry of an earlier one does
    not see the retry's new time: due before it, it must still wait behind it."""
    for n in range(2):
        await store.create_message(message(f"msg_{n}", "ann"), NOW + n)
    [first] = await claim(store, NOW + 2)
    await store.db.run(  # the retry, recorded as if msg_1 had been queued meanwhile elsewhere
        lambda tx: tx.execute(
            "UPDATE outbox SET next_attempt_at = ?, claimed_until = NULL WHERE id = ?",
            (NOW + 30, first.id),
        )
    )
    assert await claim(store, NOW + 3) == []
    assert [i.ref for i in await claim(store, NOW + 30)] == ["msg_0"]


async def test_two_processes_never_claim_two_of_one_recipients_messages(
    make_store: Callable[[], Store],
) -> None:
    one, two = make_store(), make_store()
    for n in range(60):
        await one.create_message(message(f"msg_{n:02d}", f"user{n % 6}"), NOW + n)
    claims = await asyncio.gather(*(claim(s, NOW + 100, 3) for s in [one, two] * 10))
    refs = [i.ref for c in claims for i in c]
    # One row per recipient, and each the first of its line: msg_00 ... msg_05.
    assert sorted(refs) == [f"msg_{n:02d}" for n in range(6)]
    assert Counter(int(ref[4:]) % 6 for ref in refs) == Counter(range(6))


async def test_a_claim_reads_each_line_through_its_index_without_sorting_the_backlog(
    store: Store,
) -> None:
    """Each planner, without statistics (a new database), once chose a plan that sorted every
    due row of the channel and ran the first-in-line test on each: seconds a claim."""
    for n in range(300):
        await store.create_message(message(f"msg_{n}", f"user{n % 30}"), NOW)
    dialect = store.db.dialect
    sql = writes.claim_outbox_sql(" AND target = ?" + writes.FIRST_IN_LINE, dialect.skip_locked)
    params = ("send", "wa", NOW + 60, NOW, NOW, 10, NOW + 30)  # writes.claim_outbox_sql
    if dialect.name == "sqlite":
        plan = "\n".join(
            row[3]
            for row in await store.db.run(lambda tx: tx.all("EXPLAIN QUERY PLAN " + sql, params))
        )
        assert "USING COVERING INDEX outbox_recipient_line" in plan and "TEMP B-TREE" not in plan
    else:
        plan = "\n".join(
            row[0] for row in await store.db.run(lambda tx: tx.all("EXPLAIN " + sql, params))
        )
        assert "Sort" not in plan, plan
        assert "outbox_recipient_line" in plan and "(recipient = o.recipient)" in plan, plan


def test_sends_queued_by_an_older_release_stand_in_no_line(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL,"
        " ref TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_at REAL NOT NULL, claimed_until REAL, last_error TEXT,"
        " created_at REAL NOT NULL, done_at REAL)"
    )
    for ref in ["msg_old1", "msg_old2"]:
        conn.execute(
            "INSERT INTO outbox (kind, target, ref, status, next_attempt_at, created_at)"
            " VALUES ('send', 'wa', ?, 'pending', 1.0, 1.0)",
            (ref,),
        )
    conn.commit()
    conn.close()
    store = Store(sqlite_database(path))
    store.start()
    try:
        assert [i.ref for i in asyncio.run(claim(store, NOW))] == ["msg_old1", "msg_old2"]
        indexes = sqlite3.connect(path).execute("PRAGMA index_list(outbox)").fetchall()
        assert "outbox_recipient_line" in {row[1] for row in indexes}
    finally:
        store.close()


async def test_two_gateways_on_one_postgresql_send_a_recipients_messages_in_turn(
    tmp_path: Path, start_gateway: Any, request: pytest.FixtureRequest
) -> None:
    """ "confirmed" goes out from one gateway, slowly; "on its way", queued at the other
    meanwhile, must not overtake it from there."""
    graph = SlowGraph({"confirmed": 0.3})
    await graph.start()
    try:
        data = base_config(tmp_path)
        data["channels"][0]["api_base_url"] = graph.url
        data["storage"] = {"backend": "postgres", "dsn": request.getfixturevalue("pg_schema")}
        first, second = [await start_gateway(config_from(data)) for _ in range(2)]
        async with httpx.AsyncClient(headers=AUTH) as client:
            client.base_url = httpx.URL(first.url)
            await send_template(client, "16505551234", "confirmed")
            await graph.wait_for_arrivals(1)  # under way, from the first gateway
            client.base_url = httpx.URL(second.url)
            await send_template(client, "16505551234", "on its way")
        await graph.wait_for_arrivals(2)
        at = {text: when for when, _to, text in graph.arrivals}
        assert at["on its way"] - at["confirmed"] >= 0.3  # after the first was answered
    finally:
        await graph.stop()


async def test_two_gateways_under_churn_send_each_recipients_messages_once_and_in_turn(
    tmp_path: Path,
    start_gateway: Any,
    request: pytest.FixtureRequest,
    sims: tuple[WhatsAppSimulator, Any],
) -> None:
    """Messages queued at two gateways on one PostgreSQL, alternately, through provider errors
    and throttles: each is sent once, and each recipient's in the order queued. SOAK_SEED=N
    replays another churn."""
    whatsapp, _sms = sims
    rng = random.Random(int(os.environ.get("SOAK_SEED", "7")))
    data = base_config(tmp_path)
    data["channels"][0]["api_base_url"] = whatsapp.base_url
    data["delivery"]["send_concurrency"] = 4
    data["storage"] = {"backend": "postgres", "dsn": request.getfixturevalue("pg_schema")}
    gateways = [await start_gateway(config_from(data)) for _ in range(2)]
    churning = asyncio.create_task(churn(whatsapp, rng, 30))
    sent: list[tuple[Any, str]] = []
    try:
        for n in range(48):
            gw = gateways[n % 2]
            async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as client:
                sent.append((gw, await send_template(client, f"1650555{n % 6:04d}", f"m{n}")))
        async with asyncio.timeout(20):
            while True:
                records = [await gw.store.get_message(i) for gw, i in sent]
                if all(r is not None and r.state == "sent" for r in records):
                    break
                await asyncio.sleep(0.1)
    finally:
        churning.cancel()
    assert all(gw.gateway.dispatcher.turns.idle() for gw in gateways)
    accepted = accepted_by_recipient(whatsapp)
    assert sum(len(o) for o in accepted.values()) == 48  # each accepted once
    assert not [o for o in accepted.values() if o != sorted(o)], accepted
