"""Statuses that arrive before their send is recorded are held, then delivered naming their
message (gateway/store/held.py). Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence

from gateway.schema import Event
from gateway.store import Store
from gateway.store import writes as store_writes

from .store_events import new_message, status, targets

NOW = time.time()
HOLD = 300.0


async def status_arrives(store: Store, external_id: str, state: str) -> list[Event]:
    """A provider's status callback, stored raw and normalised."""
    row = await store.append_inbox("wa", f"{external_id}:{state}", "u", "{}", b"s", NOW)
    assert row
    return await store.record_inbound(
        row, [(status(external_id, state, row), f"status:{external_id}:{state}")], targets, NOW
    )


async def queued_statuses(store: Store) -> list[dict]:
    """The status events waiting for the backends, oldest first."""
    items = await store.claim_outbox("webhook", 100, NOW + 3600, 30)
    return [json.loads(i.body or "{}")["status"] for i in items]


async def send_recorded(
    store: Store, message_id: str, external_ids: Sequence[str], at: float = NOW
) -> list[Event]:
    [send] = await store.claim_outbox("send", 1, at, 30)
    assert send.ref == message_id
    sent = status(external_ids[0], "sent", None)
    sent.status.message_id = message_id  # type: ignore[union-attr]
    return await store.record_sent(
        send.id, message_id, "wa", external_ids, None, sent, targets, NOW
    )


async def held_count(store: Store) -> int:
    row = await store.db.run(
        lambda tx: tx.one("SELECT COUNT(*) FROM events WHERE held_since IS NOT NULL")
    )
    return int(row[0])


def states(events: Sequence[Event]) -> list[tuple[str, str | None]]:
    return [(e.status.state, e.status.message_id) for e in events if e.status]


async def test_a_status_before_its_send_is_held_then_delivered_naming_the_message(
    store: Store,
) -> None:
    await store.create_message(new_message("msg_1"), NOW)
    assert await status_arrives(store, "wamid.fast", "delivered") == []
    assert await queued_statuses(store) == []  # nothing reaches a backend without its message
    emitted = await send_recorded(store, "msg_1", ["wamid.fast"])
    assert states(emitted) == [("sent", "msg_1"), ("delivered", "msg_1")]
    queued = await queued_statuses(store)
    assert [(s["state"], s["message_id"]) for s in queued] == [
        ("sent", "msg_1"),
        ("delivered", "msg_1"),
    ]
    assert await held_count(store) == 0
    record = await store.get_message("msg_1")
    assert record and record.state == "delivered"


async def test_every_part_of_a_multipart_send_is_resolved_to_its_message(store: Store) -> None:
    await store.create_message(new_message("msg_long"), NOW)
    parts = ["SM1", "SM2", "SM3"]
    for part in parts:
        for state in ("sent", "delivered"):
            assert await status_arrives(store, part, state) == []
    emitted = await send_recorded(store, "msg_long", parts)
    # The message moves on once per state; the other parts' reports change nothing.
    assert states(emitted) == [("sent", "msg_long"), ("delivered", "msg_long")]
    assert all(s["message_id"] == "msg_long" for s in await queued_statuses(store))
    named = await store.db.run(
        lambda tx: tx.all(
            "SELECT external_id, message_id FROM events WHERE type = 'status'"
            " AND raw_id IS NOT NULL ORDER BY external_id"
        )
    )
    assert named == [(p, "msg_long") for p in parts for _ in range(2)]
    assert await held_count(store) == 0


async def test_a_status_for_no_send_of_ours_is_released_after_the_hold(store: Store) -> None:
    assert await status_arrives(store, "SMother-tool", "delivered") == []
    early = await store.settle_held_statuses(NOW - HOLD, 10, targets, NOW)
    assert early == ([], []) and await queued_statuses(store) == []
    later = NOW + HOLD + 1
    settled = await store.settle_held_statuses(later - HOLD, 10, targets, later)
    assert settled.resolved == []
    assert [(e.external_id, e.status.message_id) for e in settled.released if e.status] == [
        ("SMother-tool", None)
    ]
    [queued] = await queued_statuses(store)
    assert queued["external_id"] == "SMother-tool" and "message_id" not in queued
    assert await store.settle_held_statuses(later, 10, targets, later) == ([], [])  # once


async def test_a_send_recorded_where_the_status_was_not_seen_is_resolved_by_the_sweep(
    store: Store,
) -> None:
    """Another process recorded the send while this one stored the status: each transaction
    missed the other's row. The sweep finds the pair, well before the hold ends."""
    await store.create_message(new_message("msg_1"), NOW)
    await status_arrives(store, "wamid.race", "read")

    def recorded_elsewhere(tx: store_writes.Tx) -> None:
        store_writes.record_parts(tx, "wa", "msg_1", ["wamid.race"])
        store_writes.advance(tx, "msg_1", "sent", None, None, NOW)

    await store.db.run(recorded_elsewhere)
    settled = await store.settle_held_statuses(NOW - HOLD, 10, targets, NOW)
    assert states(settled.resolved) == [("read", "msg_1")] and settled.released == []
    assert [s["message_id"] for s in await queued_statuses(store)] == ["msg_1"]


async def test_a_part_reported_while_the_rest_waits_for_a_retry_stays_held(store: Store) -> None:
    """Applied to the message before the retry, `delivered` would move it on from `queued`
    and the retry would send nothing."""
    await store.create_message(new_message("msg_1"), NOW)
    await status_arrives(store, "SM1", "delivered")
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.record_send_retry(send.id, "msg_1", "wa", ["SM1"], NOW + 1, "20429: x", NOW)
    later = NOW + HOLD + 1
    assert await store.settle_held_statuses(later - HOLD, 10, targets, later) == ([], [])
    record = await store.get_message("msg_1")
    assert record and record.state == "queued" and await held_count(store) == 1
    emitted = await send_recorded(store, "msg_1", ["SM1", "SM2"], at=NOW + 2)
    assert states(emitted) == [("sent", "msg_1"), ("delivered", "msg_1")]


async def test_a_part_reported_after_its_retry_was_recorded_is_held_too(store: Store) -> None:
    """The parts accepted before a retry are recorded with it; a report on one of them must
    not move the message on while the rest wait to be sent."""
    await store.create_message(new_message("msg_1"), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.record_send_retry(send.id, "msg_1", "wa", ["SM1"], NOW + 1, "20429: x", NOW)
    assert await status_arrives(store, "SM1", "delivered") == []
    record = await store.get_message("msg_1")
    assert record and record.state == "queued"
    emitted = await send_recorded(store, "msg_1", ["SM1", "SM2"], at=NOW + 2)
    assert states(emitted) == [("sent", "msg_1"), ("delivered", "msg_1")]


async def test_a_status_without_a_provider_id_is_not_held(store: Store) -> None:
    """Nothing could ever match it: it goes at once, as before."""
    row = await store.append_inbox("wa", "s", "u", "{}", b"s", NOW)
    assert row
    event = status("wamid.x", "failed", row)
    event.status.external_id = None  # type: ignore[union-attr]
    [stored] = await store.record_inbound(row, [(event, "status:x")], targets, NOW)
    assert stored.status and stored.status.message_id is None
    assert len(await queued_statuses(store)) == 1


async def test_two_processes_sweeping_deliver_each_status_once(
    make_store: Callable[[], Store],
) -> None:
    one, two = make_store(), make_store()
    for n in range(40):
        await status_arrives(one, f"SMforeign{n}", "delivered")
    later = NOW + HOLD + 1
    sweeps = await asyncio.gather(
        *(s.settle_held_statuses(later - HOLD, 7, targets, later) for s in [one, two] * 10)
    )
    released = [e.external_id for settled in sweeps for e in settled.released]
    assert sorted(released) == sorted(f"SMforeign{n}" for n in range(40))
    assert len(await queued_statuses(one)) == 40
