"""One contract, two stores: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.schema import ChannelRef, Event, Party, Status
from gateway.store import IdempotencyConflict, NewMessage, Store, sqlite_database

from .store_events import inbound, new_message, status, targets, unsupported

NOW = time.time()


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


@pytest.mark.parametrize(
    "provider_id",
    ["wamid.nul\x00id", "wamid.lone\ud800surrogate"],
    ids=["NUL (PostgreSQL text refuses it)", "lone surrogate (no driver binds it)"],
)
async def test_provider_ids_no_text_column_takes_are_stored_and_dedupe(
    store: Store, provider_id: str
) -> None:
    """A signed webhook whose id held such a character failed to store (503) on every
    redelivery, for ever; its event, on PostgreSQL, failed the normaliser's batch. Stored,
    such characters read back as U+FFFD where the column cannot keep them."""
    key = f"msg:{provider_id}"
    row = await store.append_inbox("wa", key, "u", "{}", b"raw", NOW)
    assert row is not None
    assert await store.append_inbox("wa", key, "u", "{}", b"raw", NOW) is None  # still dedupes
    # Event models refuse lone surrogates (the adapter fails the row, naming the field), so
    # only a NUL can reach an event's columns; both can reach its dedupe key.
    event = inbound(provider_id if "\x00" in provider_id else "wamid.plain")
    [stored] = await store.record_inbound(row, [(event, key)], targets, NOW)
    assert await store.record_inbound(row, [(event, key)], targets, NOW) == []
    assert stored.external_id == event.external_id  # the event sent to backends is intact
    (kept_key,) = await store.db.run(
        lambda tx: tx.one("SELECT dedupe_key FROM inbox WHERE id = ?", (row,))
    )
    assert kept_key in {key, key.replace("\x00", "\ufffd").replace("\ud800", "\ufffd")}


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


async def test_messages_read_together_are_the_messages_read_one_by_one(store: Store) -> None:
    for n in (1, 2, 3):
        await store.create_message(new_message(f"msg_{n}"), NOW + n)
    [send, *_] = await store.claim_outbox("send", 3, NOW + 5, 30)
    await store.record_sent(
        send.id, "msg_1", "wa", ["wamid.a", "wamid.b"], None, status("wamid.a", "sent", None),
        targets, NOW + 6,
    )  # fmt: skip
    ids = ["msg_3", "msg_1", "msg_nope", "msg_2", "msg_1"]
    together = await store.get_messages(ids)
    assert sorted(together) == ["msg_1", "msg_2", "msg_3"]  # the unknown one is absent
    for message_id, record in together.items():
        assert record == await store.get_message(message_id)
    assert together["msg_1"].external_ids == ["wamid.a", "wamid.b"]
    assert [h[1] for h in together["msg_1"].history] == ["queued", "sent"]
    assert await store.get_messages([]) == {}
    assert await store.get_message("msg_1", created_by="orders") == together["msg_1"]
    assert await store.get_message("msg_1", created_by="someone-else") is None


async def test_retry_dead_letter_and_replay(store: Store) -> None:
    await store.create_message(new_message("msg_1"), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.retry_outbox([send.id], NOW + 60, "HTTP 503", False, NOW)
    assert await store.claim_outbox("send", 1, NOW + 1, 30) == []
    [again] = await store.claim_outbox("send", 1, NOW + 61, 30)
    assert again.attempts == 1
    await store.retry_outbox([again.id], NOW + 60, "HTTP 503", True, NOW)
    assert (await store.backlog())["send"] == {"pending": 0, "dead": 1}
    assert await store.replay_dead(NOW) == 1
    assert len(await store.claim_outbox("send", 1, NOW + 1, 30)) == 1


async def test_rows_held_after_a_failure_keep_their_place_in_line(store: Store) -> None:
    for n in range(3):
        await store.create_message(new_message(f"msg_{n}"), NOW + n)
    [first] = await store.claim_outbox("send", 1, NOW + 5, 30)
    await store.hold_outbox([first.id], NOW + 10, "HTTP 503")
    assert [i.ref for i in await store.claim_outbox("send", 3, NOW + 9, 1)] == ["msg_1", "msg_2"]
    again = await store.claim_outbox("send", 3, NOW + 11, 30)
    assert [(i.ref, i.attempts) for i in again] == [
        (first.ref, 1),
        ("msg_1", 0),
        ("msg_2", 0),
    ]


async def test_two_processes_never_claim_the_same_row(make_store: Callable[[], Store]) -> None:
    one, two = make_store(), make_store()
    for i in range(200):
        await one.append_inbox("wa", f"k{i}", "u", "{}", b"b", NOW)
    claims = await asyncio.gather(*(s.claim_inbox(7, NOW, 30) for s in [one, two] * 20))
    ids = [r.id for claim in claims for r in claim]
    assert len(ids) == len(set(ids)) == 200


def subscription(state: str, keyword: str | None, sender: str = "+14155550100") -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="subscription",
        channel=ChannelRef(id="sms", type="sms"),
        timestamp=datetime.now(UTC),
        sender=Party(id=sender),
        subscription={"state": state, "keyword": keyword},  # type: ignore[arg-type]
    )


async def test_opt_out_and_opt_in_are_remembered(store: Store) -> None:
    assert (await store.get_contact("sms", "+14155550100")).unsubscribed_at is None
    row = await store.append_inbox("sms", "stop", "u", "{}", b"STOP", NOW)
    assert row
    stop = subscription("unsubscribed", "STOP")
    await store.record_inbound(row, [(stop, "SM1")], targets, NOW)
    contact = await store.get_contact("sms", "+14155550100")
    # Opted out when they sent STOP, not when the gateway read it.
    assert contact.unsubscribed_at == stop.timestamp.timestamp()
    assert contact.unsubscribe_reason == "STOP"
    # HELP changes nothing; a redelivered STOP is deduped and changes nothing either.
    row = await store.append_inbox("sms", "help", "u", "{}", b"HELP", NOW + 1)
    assert row
    await store.record_inbound(row, [(subscription("help", "HELP"), "SM2")], targets, NOW + 1)
    assert (
        await store.get_contact("sms", "+14155550100")
    ).unsubscribed_at == contact.unsubscribed_at
    row = await store.append_inbox("sms", "start", "u", "{}", b"START", NOW + 2)
    assert row
    await store.record_inbound(
        row, [(subscription("subscribed", "START"), "SM3")], targets, NOW + 2
    )
    contact = await store.get_contact("sms", "+14155550100")
    assert contact.unsubscribed_at is None and contact.unsubscribe_reason is None
    await store.set_unsubscribed("sms", "+14155550100", "21610: unsubscribed", NOW + 3)
    assert (await store.get_contact("sms", "+14155550100")).unsubscribe_reason == (
        "21610: unsubscribed"
    )


def line_message(token: str, at: datetime, group: str | None = None) -> Event:
    data = {"reply_token": token, **({"reply_target": group} if group else {})}
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="message",
        channel=ChannelRef(id="line", type="line"),
        external_id=f"m-{token}",
        timestamp=at,
        sender=Party(id="U1"),
        message={"content": {"type": "text", "text": "hi"}},  # type: ignore[arg-type]
        channel_data=data,
    )


async def test_newest_reply_token_is_kept_per_target_and_spent_once(store: Store) -> None:
    t0 = datetime.fromtimestamp(NOW, UTC)
    t1 = datetime.fromtimestamp(NOW + 5, UTC)
    row = await store.append_inbox("line", "r1", "u", "{}", b"1", NOW)
    assert row
    # Out of order within a batch: the newer token wins; the group's token is the group's.
    await store.record_inbound(
        row,
        [
            (line_message("new", t1), "e2"),
            (line_message("old", t0), "e1"),
            (line_message("grp", t0, group="C9"), "e3"),
        ],
        targets,
        NOW,
    )
    user = await store.get_contact("line", "U1")
    assert user.reply_token == "new"
    assert user.reply_token_at == pytest.approx(NOW + 5, abs=1e-5)
    assert (await store.get_contact("line", "C9")).reply_token == "grp"
    await store.consume_reply_token("line", "U1", "stale")  # not the current one: kept
    assert (await store.get_contact("line", "U1")).reply_token == "new"
    await store.consume_reply_token("line", "U1", "new")
    assert (await store.get_contact("line", "U1")).reply_token is None


def watermark(state: str, at: float) -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="status",
        channel=ChannelRef(id="wa", type="messenger"),
        timestamp=datetime.fromtimestamp(at, UTC),
        sender=Party(id="page"),
        recipient=Party(id="16505551234"),
        status=Status(state=state, watermark=datetime.fromtimestamp(at, UTC)),  # type: ignore[arg-type]
        raw_id=1,
    )


async def test_watermark_covers_every_message_sent_up_to_it(store: Store) -> None:
    for n, created in ((1, NOW), (2, NOW + 1), (3, NOW + 10)):
        await store.create_message(new_message(f"msg_{n}"), created)
        [send] = await store.claim_outbox("send", 1, NOW + 20, 30)
        await store.record_sent(
            send.id,
            f"msg_{n}",
            "wa",
            [f"m_{n}"],
            None,
            status(f"m_{n}", "sent", None),
            targets,
            NOW,
        )
    row = await store.append_inbox("wa", "w", "u", "{}", b"w", NOW)
    assert row
    read = await store.record_inbound(row, [(watermark("read", NOW + 5), "read:x:1")], targets, NOW)
    assert [
        (e.status.message_id, e.status.external_id, e.status.state) for e in read if e.status
    ] == [
        ("msg_1", "m_1", "read"),
        ("msg_2", "m_2", "read"),
    ]
    assert len({e.id for e in read}) == 2
    # A later delivery watermark cannot move read messages back; it covers only msg_3.
    row = await store.append_inbox("wa", "w2", "u", "{}", b"w2", NOW)
    assert row
    delivered = await store.record_inbound(
        row, [(watermark("delivered", NOW + 30), "delivery:x:2")], targets, NOW
    )
    assert [e.status.message_id for e in delivered if e.status] == ["msg_3"]
    record = await store.get_message("msg_1")
    assert record and record.state == "read"


async def test_message_options_round_trip(store: Store) -> None:
    message = NewMessage(
        "msg_o",
        "wa",
        "u1",
        '{"type":"text","text":"hi"}',
        None,
        "orders",
        None,
        "h",
        options='{"messaging_tag":"HUMAN_AGENT"}',
    )
    await store.create_message(message, NOW)
    record = await store.get_message("msg_o")
    assert record and record.options == '{"messaging_tag":"HUMAN_AGENT"}'


def test_an_older_sqlite_database_gains_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE contacts (channel_id TEXT NOT NULL, user_id TEXT NOT NULL, name TEXT,"
        " phone TEXT, conversation_id TEXT NOT NULL, last_inbound_at REAL, unsubscribed_at REAL,"
        " created_at REAL NOT NULL, PRIMARY KEY (channel_id, user_id))"
    )
    conn.execute("INSERT INTO contacts VALUES ('wa', 'u1', NULL, NULL, 'conv_1', 5.0, NULL, 1.0)")
    conn.commit()
    conn.close()
    store = Store(sqlite_database(path))
    store.start()
    try:
        contact = asyncio.run(store.get_contact("wa", "u1"))
        assert contact.last_inbound_at == 5.0 and contact.reply_token is None
    finally:
        store.close()


def text_from(user: str, text: str) -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type="message",
        channel=ChannelRef(id="sms", type="sms"),
        external_id=f"SM{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC),
        sender=Party(id=user),
        message={"content": {"type": "text", "text": text}},  # type: ignore[arg-type]
    )


async def test_a_downgrade_recorded_once_is_not_recorded_again(store: Store) -> None:
    """A template that replaced a message on a retry (the window closed meanwhile) is noted in
    its history once, however many tries it takes."""
    await store.create_message(new_message("msg_once"), NOW)
    shortened = "button label → shortened: 'Deliver tomorrow' is longer than 10 characters"
    await store.record_plan("msg_once", "sms", "+14155550100", [shortened] * 2, [], NOW, NOW)
    replaced = "text → template order_update: the recipient last wrote 25.0 hours ago"
    for attempt in range(3):
        await store.record_plan(
            "msg_once", "sms", "+14155550100", [replaced], [], NOW, NOW + attempt, once=True
        )
    record = await store.get_message("msg_once")
    assert record is not None
    recorded = [detail for _at, state, detail in record.history if state == "downgraded"]
    assert recorded == [shortened, shortened, replaced]


async def test_numbered_answers_become_postbacks_until_they_expire(store: Store) -> None:
    from gateway.downgrade import Choice

    choices = [Choice(1, "Margherita", "PIZZA_1"), Choice(2, "Funghi", "PIZZA_2")]
    await store.create_message(new_message("msg_c"), NOW)
    await store.record_plan(
        "msg_c", "sms", "+14155550100", ["carousel → numbered_text: sms has no carousel"],
        choices, NOW + 60, NOW,
    )  # fmt: skip
    row = await store.append_inbox("sms", "a1", "u", "{}", b"1", NOW)
    assert row
    [answer, other, stranger] = await store.record_inbound(
        row,
        [
            (text_from("+14155550100", " #2 "), "SM1"),
            (text_from("+14155550100", "where is my pizza?"), "SM2"),
            (text_from("+14155550199", "2"), "SM3"),  # someone else: no mapping
        ],
        targets,
        NOW,
    )
    assert answer.type == "postback" and answer.postback is not None
    assert (answer.postback.payload, answer.postback.title) == ("PIZZA_2", "Funghi")
    assert answer.channel_data == {"answered_with_text": " #2 ", "choices_message_id": "msg_c"}
    assert other.type == "message" and stranger.type == "message"
    row = await store.append_inbox("sms", "a2", "u", "{}", b"2", NOW + 61)
    assert row
    [late] = await store.record_inbound(
        row, [(text_from("+14155550100", "1"), "SM4")], targets, NOW + 61
    )
    assert late.type == "message"  # the mapping expired
    record = await store.get_message("msg_c")
    assert record is not None
    assert ("downgraded", "carousel → numbered_text: sms has no carousel") in [
        (state, detail) for _at, state, detail in record.history
    ]


async def test_an_empty_id_list_matches_nothing(store: Store) -> None:
    """`IN ()` is a syntax error in PostgreSQL (and a table scan in SQLite)."""
    from gateway.store.writes import in_list

    assert await store.append_inbox("wa", "k", "u", "{}", b"{}", NOW)
    changed = await store.db.run(
        lambda tx: tx.execute("UPDATE inbox SET status = 'done' WHERE id IN " + in_list([]), [])
    )
    assert changed == 0
    assert (await store.record_inbound_batch([], targets, NOW)).events == {}
    assert (await store.backlog())["inbox"]["pending"] == 1


async def test_a_replayed_unknown_payload_is_superseded_by_what_it_now_is(store: Store) -> None:
    row = await store.append_inbox("wa", "r1", "u", "{}", b"{}", NOW)
    assert row
    poll = unsupported("wamid.9", row)
    [kept] = await store.record_inbound(row, [(poll, "msg:wamid.9")], targets, NOW)
    assert await store.unsupported_rows() == [(row, "wa", "message type 'poll' is not supported")]
    assert await store.replay_inbox("other-channel", unsupported=True) == 0
    assert await store.replay_inbox("wa", unsupported=True) == 1
    assert [r.id for r in await store.claim_inbox(10, NOW, 30)] == [row]

    # Parsed the old way again: a duplicate, nothing new.
    assert await store.record_inbound(row, [(poll, "msg:wamid.9")], targets, NOW) == []
    # Parsed by an adapter that learnt the type: the new event takes the key.
    learnt = inbound("wamid.9").model_copy(update={"raw_id": row})
    [now_known] = await store.record_inbound(row, [(learnt, "msg:wamid.9")], targets, NOW + 1)
    assert now_known.type == "message" and now_known.id != kept.id
    assert await store.unsupported_rows() == []
    # ...once: a redelivery of it later is a duplicate like any other.
    again = inbound("wamid.9").model_copy(update={"raw_id": row})
    assert await store.record_inbound(row, [(again, "msg:wamid.9")], targets, NOW + 2) == []
    # Both went to the backend; the old event stays for the delivery that carried it.
    deliveries = await store.claim_outbox("webhook", 10, NOW + 60, 30)
    assert {d.ref for d in deliveries} == {kept.id, now_known.id}
    assert all(d.body for d in deliveries)
    # And its raw request is no longer held back from retention (an upgraded store's older
    # rows may go with it).
    await store.prune("inbox", NOW + 10, 10)
    left = await store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM inbox WHERE id = ?", (row,)))
    assert left == (0,)


async def test_claims_by_target_and_besides_the_configured_ones(store: Store) -> None:
    """Each lane claims its own target's rows; rows of targets no lane serves, apart."""
    three = lambda _event_type: ["orders", "audit", "retired"]  # noqa: E731
    for n in range(2):
        row = await store.append_inbox("wa", f"k{n}", "u", "{}", b"{}", NOW)
        assert row
        await store.record_inbound(row, [(inbound(f"wamid.{n}"), f"msg:wamid.{n}")], three, NOW)
    orders = await store.claim_outbox("webhook", 10, NOW, 30, target="orders")
    assert [i.target for i in orders] == ["orders", "orders"]
    assert [i.id for i in orders] == sorted(i.id for i in orders)
    [retired, _] = await store.claim_outbox("webhook", 10, NOW, 30, besides=["orders", "audit"])
    assert retired.target == "retired"
    assert [i.target for i in await store.claim_outbox("webhook", 10, NOW, 30)] == ["audit"] * 2


async def test_a_deferred_row_waits_without_an_attempt(store: Store) -> None:
    await store.create_message(new_message("msg_defer"), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.defer_outbox([send.id], NOW + 10)
    assert await store.claim_outbox("send", 1, NOW + 5, 30) == []
    [again] = await store.claim_outbox("send", 1, NOW + 10, 30)
    assert (again.id, again.attempts) == (send.id, 0)


async def test_a_recipients_later_messages_wait_behind_one_retried(store: Store) -> None:
    """Claims come in (due, id) order: no message of a recipient may come due before an
    earlier one of theirs that waits for a retry (gateway/pipeline/recipient_order.py)."""
    first, later = new_message("msg_first"), new_message("msg_later")
    other = dataclasses.replace(new_message("msg_other"), recipient_id="16505559999")
    for message in (first, later, other):
        await store.create_message(message, NOW)
    [send, *_] = await store.claim_outbox("send", 1, NOW, 30)
    assert send.ref == "msg_first"
    await store.record_send_retry(send.id, "msg_first", "wa", [], NOW + 10, "131000: x", NOW)
    await store.create_message(new_message("msg_newest"), NOW + 1)  # queued during the wait
    due_now = await store.claim_outbox("send", 10, NOW + 5, 30)
    assert [i.ref for i in due_now] == ["msg_other"]
    due_later = await store.claim_outbox("send", 10, NOW + 10, 30)
    assert [i.ref for i in due_later] == ["msg_first", "msg_later", "msg_newest"]
    assert [i.attempts for i in due_later] == [1, 0, 0]  # waiting is not an attempt


def test_the_turn_queries_read_indexes_only(tmp_path: Path) -> None:
    """A new message and a retry look up the recipient's queued messages: with a broadcast of
    thousands pending, neither may walk the outbox."""
    store = Store(sqlite_database(tmp_path / "turns.db"))
    store.start()
    try:
        conn = store.db._conn  # type: ignore[attr-defined]
        run: list[str] = []

        async def exercise() -> None:
            await store.create_message(new_message("msg_a"), NOW)
            [send] = await store.claim_outbox("send", 1, NOW, 30)
            await store.record_send_retry(send.id, "msg_a", "wa", [], NOW + 10, "x", NOW)

        conn.set_trace_callback(run.append)
        asyncio.run(exercise())
        conn.set_trace_callback(None)
        turns = [s for s in run if "recipient_id" in s and "outbox" in s]
        assert len(turns) == 2
        for statement in turns:
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement)]
            assert not [p for p in plan if p.startswith("SCAN") or "outbox_lane" in p], plan
    finally:
        store.close()


async def test_a_retry_far_off_holds_no_later_message(store: Store) -> None:
    """In order is worth a minute, not a customer left without news for days."""
    from gateway.store.writes import KEEP_ORDER_SECONDS

    far = NOW + KEEP_ORDER_SECONDS + 60
    await store.create_message(new_message("msg_stuck"), NOW)
    await store.create_message(new_message("msg_next"), NOW)
    [send] = await store.claim_outbox("send", 1, NOW, 30)
    await store.record_send_retry(send.id, "msg_stuck", "wa", [], far, "131000: x", NOW)
    await store.create_message(new_message("msg_newest"), NOW + 1)
    due = await store.claim_outbox("send", 10, NOW + 2, 30)
    assert [i.ref for i in due] == ["msg_next", "msg_newest"]


async def test_a_message_is_read_only_by_the_key_that_created_it(store: Store) -> None:
    await store.create_message(new_message("msg_1"), NOW)  # created by "orders"
    mine = await store.get_message("msg_1", created_by="orders")
    assert mine is not None and mine.api_key == "orders"
    assert await store.get_message("msg_1", created_by="billing") is None
    unfiltered = await store.get_message("msg_1")  # the gateway's own reads, and read_all keys
    assert unfiltered is not None and unfiltered.api_key == "orders"


async def test_a_whatsapp_window_opens_under_the_phone_and_the_business_scoped_id(
    store: Store,
) -> None:
    """A user Meta names by phone and BSUID may be answered under either: the window is open
    for both, so a reply to the BSUID is not refused as outside it."""
    bsuid = "US.13491208655302741918"
    event = inbound("wamid.both")
    event.sender = Party(id="16505551234", phone="+16505551234", user_id=bsuid)
    row = await store.append_inbox("wa", "both", "u", "{}", b"{}", NOW)
    assert row
    await store.record_inbound(row, [(event, "msg:wamid.both")], targets, NOW)
    by_phone = await store.get_contact("wa", "16505551234")
    by_bsuid = await store.get_contact("wa", bsuid)
    assert by_phone.last_inbound_at == by_bsuid.last_inbound_at == event.timestamp.timestamp()
