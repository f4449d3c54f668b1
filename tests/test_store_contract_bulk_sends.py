"""A claim's broadcast sends read in one go, and the cancel/ttl check answered from memory
(store/bulk_sends.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store import Store, bulk_sends

from .store_events import targets
from .test_store_contract_broadcasts import NOW, broadcast, expand_all, ident, wrote


async def claimed_sends(store: Store, expires_at: float | None = None) -> tuple[str, list[str]]:
    members = [ident("sms", f"+3160000000{i}") for i in range(3)]
    await store.create_audience("grp_1", "orders", None, members, NOW)
    new = broadcast("grp_1", expires_at=expires_at)
    await store.create_broadcast(new, None, NOW)
    await expand_all(store, batch=10)
    claimed = await store.claim_outbox("send", 3, NOW, 30, target="sms", bulk_window=3)
    return new.id, [item.ref for item in claimed]


async def test_a_claims_sends_come_with_their_member_and_contact(store: Store) -> None:
    await wrote(store, "sms", "+31600000001", NOW - 60)
    broadcast_id, refs = await claimed_sends(store)
    facts = await store.bulk.facts([*refs, "msg_not_a_broadcasts"])
    assert set(facts) == set(refs)
    assert {f.broadcast_id for f in facts.values()} == {broadcast_id}
    assert len({f.member_key for f in facts.values()}) == 3
    wrote_last = sorted(
        (f.contact.last_inbound_at for f in facts.values()), key=lambda at: at is not None
    )
    assert wrote_last == [None, None, pytest.approx(NOW - 60)]
    assert store.bulk.why_not(broadcast_id, NOW) is None


async def test_this_process_cancel_stops_its_claimed_sends_at_once(store: Store) -> None:
    broadcast_id, refs = await claimed_sends(store)
    facts = await store.bulk.facts(refs)
    assert await store.cancel_broadcast(broadcast_id, NOW + 1)
    assert store.bulk.why_not(broadcast_id, NOW + 1) == "cancelled"
    claimed = await store.claim_outbox("send", 3, NOW + 400, 30, target="sms")  # leases over
    for item in claimed:
        await store.bulk.withdraw(item.id, facts[item.ref], "cancelled", NOW + 400)
    assert await store.finish_broadcasts(targets, NOW + 401) == [broadcast_id]
    found = await store.get_broadcast(broadcast_id)
    assert found is not None and found.counts == {"cancelled": 3}


async def test_another_process_cancel_is_seen_within_the_refresh(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    broadcast_id, refs = await claimed_sends(store)
    await store.bulk.facts(refs)
    other = Store(store.db)  # another gateway on the same store: its own memory
    assert await other.cancel_broadcast(broadcast_id, NOW + 1)
    assert store.bulk.why_not(broadcast_id, NOW + 1) is None  # not read again yet
    monkeypatch.setattr(bulk_sends, "REFRESH_SECONDS", 0.0)
    store.bulk.why_not(broadcast_id, NOW + 1)  # starts the read
    for _ in range(500):
        if store.bulk.why_not(broadcast_id, NOW + 1) == "cancelled":
            break
        await asyncio.sleep(0.01)  # the read runs in the background
    assert store.bulk.why_not(broadcast_id, NOW + 1) == "cancelled"


async def test_past_its_ttl_a_claimed_send_is_not_wanted(store: Store) -> None:
    broadcast_id, refs = await claimed_sends(store, expires_at=NOW + 60)
    await store.bulk.facts(refs)
    assert store.bulk.why_not(broadcast_id, NOW + 59) is None
    assert store.bulk.why_not(broadcast_id, NOW + 61) == "expired"
