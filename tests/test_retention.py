"""Retention: old, finished rows go; anything a delivery, a send or a replay still needs stays.

Store tests run on SQLite and on PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.config import RetentionConfig
from gateway.ids import new_id
from gateway.pipeline.retention import DAY, Retention
from gateway.store import SeatRequest, Store, sqlite_database
from gateway.store.pruning import PRUNERS, last_id_before

from .conftest import base_config, config_from
from .store_events import inbound, new_message, status, targets, unsupported
from .test_store_contract_conversations import TEXT

NOW = 1_790_000_000.0
OLD = NOW - 20 * DAY  # beyond the 14-day default
RECENT = NOW - DAY
CUTOFF = NOW - 14 * DAY


async def received(store: Store, key: str, at: float) -> tuple[int, str]:
    """A webhook stored and normalised at `at`: (inbox row, event id)."""
    row = await store.append_inbox("wa", key, "u", "{}", key.encode(), at)
    assert row
    [event] = await store.record_inbound(row, [(inbound(key), f"msg:{key}")], targets, at)
    return row, event.id


async def column(store: Store, sql: str) -> set[Any]:
    return {r[0] for r in await store.db.run(lambda tx: tx.all(sql))}


def counts(**deleted: int) -> dict[str, int]:
    """A pass's counts: `deleted`, and none from every other table."""
    return dict.fromkeys(PRUNERS, 0) | deleted


async def prune_all(store: Store, limit: int = 100) -> dict[str, int]:
    return {table: await store.prune(table, CUTOFF, limit) for table in PRUNERS}


async def test_inbox_keeps_failed_pending_unsupported_and_recent_rows(store: Store) -> None:
    old, _ = await received(store, "wamid.old", OLD)
    recent, _ = await received(store, "wamid.recent", RECENT)
    failed = await store.append_inbox("wa", "bad", "u", "{}", b"not json", OLD)
    pending = await store.append_inbox("wa", "waiting", "u", "{}", b"{}", OLD)
    unknown = await store.append_inbox("wa", "wamid.poll", "u", "{}", b"{}", OLD)
    assert failed and pending and unknown
    await store.fail_inbox(failed, "malformed JSON", OLD)
    [kept_raw] = await store.record_inbound(
        unknown, [(unsupported("wamid.poll", unknown), "msg:wamid.poll")], lambda _t: [], OLD
    )

    assert await prune_all(store) == counts(inbox=1)
    assert await column(store, "SELECT id FROM inbox") == {recent, failed, pending, unknown}
    assert kept_raw.id in await column(store, "SELECT id FROM events")
    # Its dedupe key went with it: a redelivery now, beyond every provider's window, is new.
    assert await store.append_inbox("wa", "wamid.old", "u", "{}", b"again", NOW) is not None
    assert await store.append_inbox("wa", "wamid.recent", "u", "{}", b"again", NOW) is None
    assert old not in await column(store, "SELECT id FROM inbox")


async def test_events_stay_while_a_delivery_still_needs_them(store: Store) -> None:
    _, delivered = await received(store, "wamid.delivered", OLD)
    _, pending = await received(store, "wamid.pending", OLD)
    _, dead = await received(store, "wamid.dead", OLD)
    _, recent = await received(store, "wamid.recent", RECENT)
    items = {i.ref: i.id for i in await store.claim_outbox("webhook", 10, NOW, 30)}
    await store.complete_outbox([items[delivered]], OLD)
    await store.complete_outbox([items[recent]], RECENT)  # finished, but not long ago
    await store.retry_outbox([items[dead]], NOW, "HTTP 500", True, OLD)

    deleted = await prune_all(store)

    assert deleted == counts(inbox=3, outbox=1, events=1)
    assert await column(store, "SELECT id FROM events") == {pending, dead, recent}
    assert await column(store, "SELECT ref FROM outbox") == {pending, dead, recent}
    # The dead letter can still be replayed, and its event still goes out.
    assert await store.replay_dead(NOW) == 1
    again = await store.claim_outbox("webhook", 10, NOW + 31, 30)  # past the first lease
    assert {i.ref for i in again} == {pending, dead}
    assert all(i.body and '"wamid.' in i.body for i in again)


async def test_messages_go_with_parts_and_history_once_their_send_is_done(store: Store) -> None:
    await store.create_message(new_message("msg_old", key="order-1"), OLD)
    await store.create_message(new_message("msg_queued"), OLD)
    await store.create_message(new_message("msg_recent"), RECENT)
    sends = {s.ref: s.id for s in await store.claim_outbox("send", 10, OLD, 30)}
    await store.record_sent(
        sends["msg_old"],
        "msg_old",
        "wa",
        ["wamid.out"],
        None,
        status("wamid.out", "sent", None),
        targets,
        OLD,
    )

    deleted = await prune_all(store)

    assert deleted["messages"] == 1
    assert await store.get_message("msg_old") is None
    assert await column(store, "SELECT id FROM messages") == {"msg_queued", "msg_recent"}
    assert "msg_old" not in await column(store, "SELECT message_id FROM message_parts")
    assert "msg_old" not in await column(store, "SELECT message_id FROM message_history")
    queued = await store.get_message("msg_queued")
    assert queued and queued.history  # pending send: kept whole
    # The idempotency key is free again.
    assert await store.create_message(new_message("msg_new", key="order-1"), NOW) == (
        "msg_new",
        "queued",
        True,
    )


async def test_closed_conversations_go_with_their_history_open_ones_never(store: Store) -> None:
    people = [
        SeatRequest("", "customer", "Sheena", channel_id="wa", provider_id="16505551234"),
        SeatRequest("", "courier", "Jasper", channel_id="sms", provider_id="+14155550100"),
    ]

    async def conversation(close_at: float | None) -> str:
        made = await store.create_conversation(
            new_id("conv"), "orders", "relay", None, people, targets, OLD
        )
        await store.post_to_conversation(made.id, TEXT, None, None, OLD)
        if close_at is not None:
            await store.close_conversation(made.id, targets, close_at)
        return made.id

    closed_long_ago, closed_lately, open_and_old = (
        await conversation(OLD),
        await conversation(RECENT),  # opened long ago: its age counts from the close
        await conversation(None),
    )

    assert (await prune_all(store))["conversations"] == 1

    kept = {closed_lately, open_and_old}
    assert await column(store, "SELECT id FROM conversations") == kept
    assert await column(store, "SELECT conversation_id FROM participants") == kept
    assert await column(store, "SELECT conversation_id FROM conversation_messages") == kept
    assert await store.get_conversation(closed_long_ago) is None


async def test_batches_go_oldest_first(store: Store) -> None:
    rows = [(await received(store, f"wamid.{i}", OLD + i))[0] for i in range(5)]
    assert await store.prune("inbox", CUTOFF, 2) == 2
    assert await column(store, "SELECT id FROM inbox") == set(rows[2:])
    assert await store.prune("inbox", CUTOFF, 2) == 2
    assert await store.prune("inbox", CUTOFF, 2) == 1
    assert await store.prune("inbox", CUTOFF, 2) == 0


@pytest.mark.parametrize(
    ("received_at", "expected"),
    [
        ([], None),
        ([RECENT, RECENT], None),
        ([OLD, OLD, OLD], 3),
        ([OLD, OLD + 1, RECENT, RECENT, NOW], 2),
        ([OLD, RECENT, OLD, RECENT, RECENT, RECENT], 1),  # a clock went back: approximate
        ([OLD] * 40 + [RECENT] * 23, 40),
    ],
)
async def test_the_last_row_before_the_cutoff_is_found_by_bisection(
    store: Store, received_at: list[float], expected: int | None
) -> None:
    ids = [
        await store.append_inbox("wa", f"k{i}", "u", "{}", b"", t)
        for i, t in enumerate(received_at)
    ]
    found = await store.db.run(lambda tx: last_id_before(tx, "inbox", "received_at", CUTOFF))
    assert found == (None if expected is None else ids[expected - 1])


async def test_a_pass_deletes_in_batches_until_caught_up(store: Store) -> None:
    for i in range(5):
        await received(store, f"wamid.{i}", OLD)
    await received(store, "wamid.recent", RECENT)
    retention = Retention(store, RetentionConfig(batch_size=2), clock=lambda: NOW)

    deleted = await retention.prune()

    assert deleted == counts(inbox=5)
    assert len(await column(store, "SELECT id FROM inbox")) == 1


async def test_a_pass_ends_after_its_batch_when_the_gateway_stops(store: Store) -> None:
    """A pass over weeks of rows must not hold a shutdown for its grace period."""
    for i in range(5):
        await received(store, f"wamid.{i}", OLD)
    retention = Retention(store, RetentionConfig(batch_size=2), clock=lambda: NOW)
    prune = store.prune

    async def prune_then_stop(table: str, cutoff: float, limit: int) -> int:
        count = await prune(table, cutoff, limit)
        retention._stopping.set()  # what stop() does, here after the first batch
        return count

    store.prune = prune_then_stop  # type: ignore[method-assign]
    assert await retention.prune() == counts(inbox=2)


async def test_null_keeps_for_ever(store: Store) -> None:
    await received(store, "wamid.old", OLD)
    await store.create_message(new_message("msg_old"), OLD)
    [send] = await store.claim_outbox("send", 1, OLD, 30)
    await store.record_send_failed(
        send.id,
        "msg_old",
        {"code": "131026", "title": "x"},
        status("w", "failed", None),
        targets,
        OLD,
    )
    policy = RetentionConfig(days=None, message_days=None)

    deleted = await Retention(store, policy, clock=lambda: NOW).prune()

    assert deleted == counts()
    assert await store.get_message("msg_old") is not None


async def test_a_pass_gives_way_while_ingress_is_busy(store: Store) -> None:
    await received(store, "wamid.old", OLD)
    [delivery] = await store.claim_outbox("webhook", 1, OLD, 30)
    await store.complete_outbox([delivery.id], OLD)
    answers = iter([False, True])  # busy from the second question on
    retention = Retention(store, RetentionConfig(), busy=lambda: next(answers), clock=lambda: NOW)

    assert await retention.prune() == counts(inbox=1)
    assert await column(store, "SELECT COUNT(*) FROM outbox") == {1}  # the pass stopped there
    assert await Retention(store, RetentionConfig(), clock=lambda: NOW).prune() == counts(
        outbox=1, events=1
    )


@pytest.mark.parametrize(
    ("idle_seconds", "deleted"),
    [
        # The loop idle through the pause: acknowledgements leave the CPU, the pass goes on.
        (time.perf_counter, counts(inbox=1, outbox=1, events=1)),
        # Never idle: a saturated core, the pass gives way before its first batch.
        (lambda: 0.0, counts()),
    ],
    ids=["spare CPU", "saturated core"],
)
async def test_while_ingress_is_busy_a_pass_goes_on_only_with_cpu_to_spare(
    store: Store, idle_seconds: Callable[[], float], deleted: dict[str, int]
) -> None:
    """A steady load above server.busy_webhooks_per_second must not stop retention for good:
    the store would grow until the disk filled."""
    await received(store, "wamid.old", OLD)
    [delivery] = await store.claim_outbox("webhook", 1, OLD, 30)
    await store.complete_outbox([delivery.id], OLD)
    retention = Retention(
        store,
        RetentionConfig(),
        busy=lambda: True,
        clock=lambda: NOW,
        idle_clocks=[idle_seconds],
    )
    assert await retention.prune() == deleted


async def test_the_gateway_runs_retention_with_the_configured_policy(tmp_path: Path) -> None:
    from gateway.app import Gateway

    data = base_config(tmp_path)
    data["storage"]["retention"] = {"days": 9, "message_days": None, "interval_seconds": 60}
    gateway = Gateway(config_from(data))
    try:
        assert gateway.retention in gateway.workers
        assert gateway.retention.poll_interval == 60
        assert gateway.retention.cutoffs(NOW) == {
            "inbox": NOW - 9 * DAY,
            "outbox": NOW - 9 * DAY,
            "events": NOW - 9 * DAY,
        }
    finally:
        await gateway.http.aclose()


async def test_a_running_gateway_prunes_at_start_and_logs_it(
    tmp_path: Path, start_gateway: Any
) -> None:
    import time

    data = base_config(tmp_path)
    store = Store(sqlite_database(data["storage"]["path"]))
    store.start()
    try:
        await received(store, "wamid.old", time.time() - 20 * DAY)
        recent, _ = await received(store, "wamid.recent", time.time())
    finally:
        store.close()

    gw = await start_gateway(config_from(data))

    async with asyncio.timeout(10):
        while await column(gw.store, "SELECT id FROM inbox") != {recent}:
            await asyncio.sleep(0.02)
    async with asyncio.timeout(10):
        while '"retention_pruned"' not in gw.logs.getvalue():
            await asyncio.sleep(0.02)
    line = next(x for x in gw.logs.getvalue().splitlines() if '"retention_pruned"' in x)
    assert '"inbox": 1' in line
    assert '"events": 0' in line  # its delivery to "orders" is still pending


async def test_prune_command_reports_what_went(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    data = base_config(tmp_path)
    data["storage"]["retention"] = {"message_days": None}
    store = Store(sqlite_database(data["storage"]["path"]))
    store.start()
    try:
        now = time.time()
        await received(store, "wamid.old", now - 20 * DAY)
        await received(store, "wamid.new", now)
    finally:
        store.close()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))

    assert await asyncio.to_thread(main, ["prune", "--config", str(path)]) == 0

    out = capsys.readouterr().out
    assert "inbox\t1\n" in out and "events\t0\n" in out
    assert "kept for ever (storage.retention.message_days: null)" in out


def test_no_pass_scans_a_whole_table(tmp_path: Path) -> None:
    """Every statement retention runs reads through an index: a pass over a table of millions
    of rows must cost what a pass over a few does (SQLite's plans, read with EXPLAIN)."""
    import sqlite3

    from gateway.store.database import Tx
    from gateway.store.schema import SQLITE_DDL, statements
    from gateway.store.sqlite import DIALECT

    conn = sqlite3.connect(tmp_path / "plans.db", isolation_level=None)
    for statement in statements(SQLITE_DDL):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO inbox (channel_id, dedupe_key, received_at, url, headers, body, status)"
        " VALUES ('wa', 'k', ?, 'u', '{}', x'00', 'done')",
        (OLD,),
    )
    conn.execute(
        "INSERT INTO outbox (kind, target, ref, status, next_attempt_at, created_at, done_at)"
        " VALUES ('webhook', 'orders', 'evt_1', 'done', ?, ?, ?)",
        (OLD, OLD, OLD),
    )
    conn.execute(
        "INSERT INTO conversations (id, owner, mode, state, created_at, closed_at,"
        " last_active_at) VALUES ('conv_1', 'orders', 'relay', 'closed', ?, ?, ?)",
        (OLD, OLD, OLD),
    )
    run: list[str] = []
    conn.set_trace_callback(run.append)
    tx = Tx(conn.cursor(), DIALECT)
    for prune in PRUNERS.values():
        prune(tx, CUTOFF, 10)
    conn.set_trace_callback(None)

    assert any(s.startswith("DELETE FROM inbox") for s in run)  # the pass did reach the deletes
    assert any(s.startswith("DELETE FROM participants") for s in run)
    for statement in run:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement)]
        scans = [s for s in plan if s.startswith("SCAN") and s != "SCAN CONSTANT ROW"]
        assert not scans, (statement, plan)


async def test_two_processes_prune_side_by_side(make_store: Any) -> None:
    one, two = make_store(), make_store()
    for i in range(60):
        await received(one, f"wamid.{i}", OLD)
    counts = await asyncio.gather(*(s.prune("inbox", CUTOFF, 7) for s in [one, two] * 10))
    assert sum(counts) == 60
    assert await column(one, "SELECT COUNT(*) FROM inbox") == {0}


class _PrunedMeanwhile:
    """A transaction in which another process deletes every row between two statements: on
    PostgreSQL (READ COMMITTED) each statement sees the database anew."""

    def __init__(self) -> None:
        self.answers: list[Any] = [(1, OLD), (None,)]  # the oldest row, then MAX(id) of none

    def one(self, _sql: str, _params: Any = ()) -> Any:
        return self.answers.pop(0)


def test_rows_pruned_by_another_process_mid_bisection_end_it() -> None:
    """Found by test_two_processes_prune_side_by_side on PostgreSQL: MAX(id) of an emptied
    table is NULL, which the bisection compared with an int."""
    assert last_id_before(_PrunedMeanwhile(), "inbox", "received_at", CUTOFF) is None  # type: ignore[arg-type]
