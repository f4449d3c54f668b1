"""The store operations the console adds, on both stores: discarding a failed inbox row or a
dead letter, replaying one dead letter by id, and each channel's last inbound and last
send error."""

from __future__ import annotations

import time

from gateway.store import Store

from .store_events import new_message, status, targets

NOW = time.time()


async def _dead(store: Store, message_id: str) -> int:
    await store.create_message(new_message(message_id), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.retry_outbox([send.id], NOW + 60, "HTTP 503", True, NOW)
    return send.id


async def test_a_failed_inbox_row_is_discarded_once(store: Store) -> None:
    kept = await store.append_inbox("wa", "a", "u", "{}", b"not json", NOW)
    gone = await store.append_inbox("wa", "b", "u", "{}", b"not json", NOW)
    assert kept and gone
    for row in (kept, gone):
        await store.fail_inbox(row, "malformed JSON", NOW)
    assert await store.discard_inbox([gone], NOW) == 1
    assert await store.discard_inbox([gone], NOW) == 0  # not failed any more
    assert await store.inbox_rows("failed") == [(kept, "wa", "malformed JSON")]
    assert await store.replay_inbox(row_ids=[gone]) == 0  # a discarded row is not replayed
    assert await store.claim_inbox(10, NOW, 30) == []


async def test_one_dead_letter_is_replayed_or_discarded_by_id(store: Store) -> None:
    first, second = await _dead(store, "msg_1"), await _dead(store, "msg_2")
    assert await store.replay_dead(NOW, ids=[second]) == 1
    assert (await store.backlog())["send"] == {"pending": 1, "dead": 1}
    assert await store.discard_dead([first], NOW) == 1
    assert await store.discard_dead([first], NOW) == 0
    assert (await store.backlog())["send"] == {"pending": 1, "dead": 0}
    assert await store.replay_dead(NOW) == 0  # the discarded one stays discarded


async def test_channel_facts(store: Store) -> None:
    assert await store.channel_facts(["wa"], NOW - 60) == {"wa": (None, None, None)}
    await store.append_inbox("wa", "a", "u", "{}", b"{}", NOW - 5)
    await store.append_inbox("wa", "b", "u", "{}", b"{}", NOW - 1)
    await store.create_message(new_message("msg_1"), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    error = {"code": "131026", "title": "Message undeliverable"}
    await store.record_send_failed(
        send.id, "msg_1", error, status("w", "failed", None), targets, NOW + 1
    )
    facts = await store.channel_facts(["wa", "line"], NOW - 60)
    assert facts["line"] == (None, None, None)
    inbound, stored_error, at = facts["wa"]
    assert inbound == NOW - 1
    assert stored_error is not None and "131026" in stored_error
    assert at is not None and at >= NOW
