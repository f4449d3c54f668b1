"""The web channel's log, on SQLite and PostgreSQL (fresh and upgraded stores): per-user event
ids counting up, a retried send finding its row, pages after an event id, acks, reads and the
offline wait each storing the status they cause in the inbox, once."""

from __future__ import annotations

import json
from typing import Any

from gateway.store import Store
from gateway.store.web_log import WebLog

TEXT = '{"type":"text","text":"hi"}'


async def inbox(store: Store) -> list[dict[str, Any]]:
    rows = await store.db.run(
        lambda tx: tx.all("SELECT dedupe_key, body FROM inbox WHERE channel_id = 'web' ORDER BY id")
    )
    return [{"key": r[0], **json.loads(bytes(r[1]))} for r in rows]


async def test_event_ids_count_up_per_user_and_a_retried_send_finds_its_row(store: Store) -> None:
    log = WebLog(store.db)
    first = await log.append("web", "alice", "msg_1", 0, TEXT, expires_at=2e9)
    second = await log.append("web", "alice", "msg_1", 1, TEXT, expires_at=2e9)
    other = await log.append("web", "bob", "msg_2", 0, TEXT, expires_at=2e9)
    again = await log.append("web", "alice", "msg_1", 0, TEXT, expires_at=2e9)
    assert (first.event_id, second.event_id, other.event_id) == (1, 2, 1)
    assert first.new and not again.new
    assert (again.event_id, again.external_id, again.frame) == (1, first.external_id, first.frame)
    frame = json.loads(first.frame)
    assert frame == {"type": "message", "event_id": 1, "external_id": first.external_id,
                     "message_id": "msg_1", "sent_at": frame["sent_at"],
                     "content": {"type": "text", "text": "hi"}}  # fmt: skip
    assert [e.event_id for e in await log.after("web", "alice", 0)] == [1, 2]
    assert [e.event_id for e in await log.after("web", "alice", 1)] == [2]
    assert await log.after("web", "alice", 2) == []
    assert await log.after("web-2", "alice", 0) == []  # another web channel's alice


async def test_acks_and_reads_store_their_statuses_once(store: Store) -> None:
    log = WebLog(store.db)
    one = await log.append("web", "alice", "msg_1", 0, TEXT, expires_at=2e9)
    two = await log.append("web", "alice", "msg_2", 0, TEXT, expires_at=2e9)
    assert await log.delivered("web", "alice", 1, now=100.0)
    assert not await log.delivered("web", "alice", 1, now=101.0)  # a second device's ack
    assert not await log.delivered("web", "bob", 2, now=101.0)  # not bob's to ack
    assert await log.read("web", "alice", 2, now=102.0) == 2
    assert await log.read("web", "alice", 2, now=103.0) == 0
    stored = await inbox(store)
    assert [(s["key"], s["status"]["message_id"]) for s in stored] == [
        (f"delivered:{one.external_id}", "msg_1"),
        (f"read:{one.external_id}", "msg_1"),
        (f"delivered:{two.external_id}", "msg_2"),  # read before any ack: delivered first
        (f"read:{two.external_id}", "msg_2"),
    ]
    assert all(s["user"] == "alice" for s in stored)


async def test_what_no_device_acknowledged_in_time_fails_once_and_is_not_resumed(
    store: Store,
) -> None:
    log = WebLog(store.db)
    late = await log.append("web", "alice", "msg_1", 0, TEXT, expires_at=50.0)
    await log.append("web", "alice", "msg_2", 0, TEXT, expires_at=50.0)
    await log.append("web", "alice", "msg_3", 0, TEXT, expires_at=500.0)
    assert await log.delivered("web", "alice", 2, now=40.0)
    assert await log.expire(now=60.0, reason="offline") == [("web", "alice")]
    assert await log.expire(now=61.0, reason="offline") == []
    assert not await log.delivered("web", "alice", 1, now=62.0)  # too late: it failed
    [failed] = [s for s in await inbox(store) if s["status"]["state"] == "failed"]
    assert failed["key"] == f"failed:{late.external_id}"
    assert failed["status"]["error_code"] == "offline_timeout"
    assert failed["status"]["error_title"] == "offline"
    assert [e.event_id for e in await log.after("web", "alice", 0)] == [2, 3]
    assert [(c, u) for c, u, _n in await log.recent(since=0)] == [("web", "alice")]
