"""Sends recorded together (store/sent.py) end as they would recorded one at a time
(`Store.record_sent`). Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.store import Store
from gateway.store.database import Tx
from gateway.store.sent import SentSend

from .store_events import new_message, status, targets
from .test_held_statuses import queued_statuses, status_arrives

NOW = time.time()


def sent(outbox_id: int, message_id: str, external_ids: list[str]) -> SentSend:
    event = status(external_ids[0], "sent", None)
    event.status.message_id = message_id  # type: ignore[union-attr]
    return SentSend(outbox_id, message_id, "wa", external_ids, "2 provider message(s)", event)


async def test_sends_recorded_together_end_as_recorded_one_by_one(store: Store) -> None:
    for n in (1, 2, 3):
        await store.create_message(new_message(f"msg_{n}"), NOW + n)
    one, two, three = await store.claim_outbox("send", 3, NOW + 5, 30)
    await status_arrives(store, "wamid.2b", "delivered")  # before its send is recorded: held
    alone = sent(three.id, "msg_3", ["wamid.3"])
    await store.record_sent(*alone[:4], None, alone.event, targets, NOW)
    emitted = await store.record_sent_together(
        [
            sent(one.id, "msg_1", ["wamid.1"]),
            sent(two.id, "msg_2", ["wamid.2a", "wamid.2b"]),
            sent(one.id, "msg_1", ["wamid.1"]),  # recorded twice: changes once
            sent(three.id, "msg_3", ["wamid.3"]),  # recorded already: changes nothing
        ],
        targets,
        NOW + 6,
    )
    assert [(e.status.state, e.status.message_id) for e in emitted if e.status] == [
        ("sent", "msg_1"),
        ("sent", "msg_2"),
        ("delivered", "msg_2"),
    ]
    records = await store.get_messages(["msg_1", "msg_2", "msg_3"])
    assert {m: (r.state, r.external_ids) for m, r in records.items()} == {
        "msg_1": ("sent", ["wamid.1"]),
        "msg_2": ("delivered", ["wamid.2a", "wamid.2b"]),
        "msg_3": ("sent", ["wamid.3"]),
    }
    assert records["msg_1"].history[1][1:] == ("sent", "2 provider message(s)")
    assert [h[1] for h in records["msg_2"].history] == ["queued", "sent", "delivered"]
    assert [h[1] for h in records["msg_3"].history] == ["queued", "sent"]
    assert await store.claim_outbox("send", 10, NOW + 3600, 30) == []  # every send done
    queued = [(s["state"], s["message_id"]) for s in await queued_statuses(store)]
    assert queued == [
        ("sent", "msg_3"),
        ("sent", "msg_1"),
        ("sent", "msg_2"),
        ("delivered", "msg_2"),
    ]


async def test_nothing_to_record_is_no_statement(store: Store) -> None:
    assert await store.record_sent_together([], targets, NOW) == []


async def test_an_op_that_fails_in_a_group_commit_undoes_only_itself(store: Store) -> None:
    """Each op of a batch has a savepoint (on PostgreSQL, released with the next one's start):
    a failing op's writes are undone, its neighbours' kept, on both sides of it."""

    def insert(message_id: str, fail: bool = False) -> Callable[[Tx], str]:
        def op(tx: Tx) -> str:
            tx.execute(
                "INSERT INTO message_history (message_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (message_id, NOW, "queued", None),
            )
            if fail:
                tx.one("SELECT 1 / 0 FROM messages WHERE id = ?", (message_id,))
                raise ValueError("refused")
            return message_id

        return op

    results = await asyncio.gather(
        *(store.db.run(insert(f"msg_{n}", fail=n in (2, 3))) for n in range(1, 6)),
        return_exceptions=True,
    )
    assert [r if isinstance(r, str) else "failed" for r in results] == [
        "msg_1", "failed", "failed", "msg_4", "msg_5"
    ]  # fmt: skip
    ids = [f"msg_{n}" for n in range(1, 6)]
    rows = await store.db.run(
        lambda tx: tx.all(
            "SELECT message_id FROM message_history WHERE message_id IN (?, ?, ?, ?, ?)", ids
        )
    )
    assert sorted(r[0] for r in rows) == ["msg_1", "msg_4", "msg_5"]
