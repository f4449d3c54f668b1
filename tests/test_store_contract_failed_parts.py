"""Store contract: the parts of a webhook that failed alone (store/failed_parts.py), on every
store, upgraded ones included: kept beside their failed row, handed back with the row when it
is replayed, and gone once they read."""

from __future__ import annotations

from gateway.store import Store
from gateway.store.records import FailedPartRecord

NOW = 1_750_000_000.0
BAD = FailedPartRecord("entry[0].messaging[1]", "entry[0].messaging[1].sender: missing", '{"a":1}')
WORSE = FailedPartRecord("entry[1]", "entry[1]: expected an object, got a string", '"x"')


async def test_failed_parts_fail_their_row_and_come_back_with_its_replay(store: Store) -> None:
    raw_id = await store.append_inbox("fb", "k1", "u", "{}", b"body", NOW)
    assert raw_id is not None
    [row] = await store.claim_inbox(10, NOW, 30)
    assert row.failed_parts == frozenset()  # a first claim
    await store.record_inbound_batch(
        [(raw_id, [])], lambda _t: [], NOW, failed={raw_id: [BAD, WORSE]}
    )
    [(failed_id, _channel, reason)] = await store.inbox_rows("failed")
    assert failed_id == raw_id
    assert reason == f"invalid payload: {BAD.reason} (and 1 more unreadable part(s))"
    assert await store.failed_parts_of([raw_id]) == {
        raw_id: [(BAD.path, BAD.reason), (WORSE.path, WORSE.reason)]
    }

    assert await store.replay_inbox() == 1
    [again] = await store.claim_inbox(10, NOW + 1, 30)
    assert again.failed_parts == frozenset({BAD.path, WORSE.path})
    await store.record_inbound_batch([(raw_id, [])], lambda _t: [], NOW + 1, failed={raw_id: [BAD]})
    assert [p for p, _ in (await store.failed_parts_of([raw_id]))[raw_id]] == [BAD.path]

    assert await store.replay_inbox() == 1
    [last] = await store.claim_inbox(10, NOW + 2, 30)
    assert last.failed_parts == frozenset({BAD.path})
    await store.record_inbound_batch([(raw_id, [])], lambda _t: [], NOW + 2, failed={raw_id: []})
    assert await store.inbox_rows("failed") == []
    assert await store.failed_parts_of([raw_id]) == {}
    assert await store.backlog() and (await store.backlog())["inbox"]["failed"] == 0
