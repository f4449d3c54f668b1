"""API sends accepted together (store/accepts.py): each answered as if alone, on both stores."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from gateway.store import IdempotencyConflict, Store

from .store_events import new_message

NOW = time.time()


async def test_sends_accepted_together_answer_as_one_by_one(store: Store) -> None:
    other = dataclasses.replace(new_message("msg_e"), recipient_id="16505559999")
    results = await asyncio.gather(
        store.create_message(new_message("msg_a", "k1"), NOW),
        store.create_message(new_message("msg_b", "k1"), NOW),
        store.create_message(new_message("msg_c", "k1", "other-body"), NOW),
        store.create_message(new_message("msg_d"), NOW),
        store.create_message(other, NOW),
        return_exceptions=True,
    )
    assert results[:2] == [("msg_a", "queued", True), ("msg_a", "queued", False)]
    assert isinstance(results[2], IdempotencyConflict)
    assert results[3:] == [("msg_d", "queued", True), ("msg_e", "queued", True)]
    sends = await store.claim_outbox("send", 10, NOW, 30)
    assert [s.ref for s in sends] == ["msg_a", "msg_d", "msg_e"]
    records = await store.get_messages(["msg_a", "msg_d", "msg_e"])
    assert [records[m].state for m in ("msg_a", "msg_d", "msg_e")] == ["queued"] * 3
    contact = await store.get_contact("wa", "16505559999")
    assert contact.last_inbound_at is None and contact.unsubscribed_at is None


async def test_sends_accepted_together_wait_behind_a_retry(store: Store) -> None:
    await store.create_message(new_message("msg_first"), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.record_send_retry(send.id, "msg_first", "wa", [], NOW + 10, "131000: x", NOW)
    other = dataclasses.replace(new_message("msg_other"), recipient_id="16505559999")
    await asyncio.gather(
        *(store.create_message(new_message(f"msg_{n}"), NOW + 1) for n in range(3)),
        store.create_message(other, NOW + 1),
    )
    assert [i.ref for i in await store.claim_outbox("send", 10, NOW + 5, 30)] == ["msg_other"]
    due = await store.claim_outbox("send", 10, NOW + 10, 30)
    assert [i.ref for i in due] == ["msg_first", "msg_0", "msg_1", "msg_2"]


async def test_contacts_read_together_are_each_ones_own(store: Store) -> None:
    await store.set_unsubscribed("wa", "16505551234", "STOP", NOW)
    first, second, unknown = await asyncio.gather(
        store.get_contact("wa", "16505551234"),
        store.get_contact("wa", "16505559999"),
        store.get_contact("sms", "16505551234"),
    )
    assert first.unsubscribe_reason == "STOP" and first.unsubscribed_at == pytest.approx(NOW)
    assert second.unsubscribed_at is None and unknown.unsubscribed_at is None
