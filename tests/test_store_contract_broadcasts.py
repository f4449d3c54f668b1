"""The store contract for audiences, broadcasts and bulk priority, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest

from gateway.ids import new_id
from gateway.router.broadcasts import ChannelRules
from gateway.store import BroadcastConflict, MemberRef, NewBroadcast, NewUser, Store

from .broadcast_support import ROAD_CLOSED
from .store_events import events_of_types, new_message, targets

NOW = time.time()
CHANNELS = {
    "wa": ChannelRules(window_hours=24, templates=True),
    "fb": ChannelRules(window_hours=24, templates=False),
    "sms": ChannelRules(window_hours=None, templates=False),
}
TEMPLATE = {"wa": {"name": "road_closure", "language": "nl"}}


def ident(channel: str, provider_id: str) -> MemberRef:
    return MemberRef(None, channel, provider_id)


async def user(store: Store, *identities: tuple[str, str], owner: str = "orders") -> str:
    made = await store.create_user(NewUser(new_id("usr"), owner, None, None, None, None), NOW)
    for channel, provider_id in identities:
        await store.link_identity(made.id, channel, channel, provider_id, targets, NOW)
    return made.id


async def wrote(store: Store, channel: str, provider_id: str, at: float) -> None:
    await store.db.run(
        lambda tx: tx.execute(
            "INSERT INTO contacts (channel_id, user_id, conversation_id, last_inbound_at,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            (channel, provider_id, f"conv_{channel}_{provider_id}", at, at),
        )
    )


def broadcast(audience_id: str, **fields: object) -> NewBroadcast:
    base: dict[str, object] = {
        "id": new_id("bc"), "owner": "orders", "audience_id": audience_id,
        "content": json.dumps(ROAD_CLOSED), "templates": json.dumps(TEMPLATE), "metadata": None,
        "schedule_at": NOW, "expires_at": None,
    }  # fmt: skip
    return NewBroadcast(**{**base, **fields})  # type: ignore[arg-type]


async def expand_all(store: Store, now: float = NOW, batch: int = 2) -> set[str]:
    channels: set[str] = set()
    while (step := await store.expand_broadcast(now, batch, CHANNELS)) is not None:
        channels |= step.channels
    return channels


async def test_audience_members_are_kept_once_in_order_and_paged(store: Store) -> None:
    mine = await user(store, ("sms", "+31600000001"))
    theirs = await user(store, owner="couriers")
    members = [ident("sms", "+31600000002"), MemberRef(mine), ident("sms", "+31600000002")]
    added = await store.create_audience("grp_1", "orders", "Utrecht", members, NOW)
    assert (added.added, added.already) == (2, 1)
    with pytest.raises(BroadcastConflict) as refused:
        await store.add_audience_members(
            "grp_1", "orders", [ident("wa", "1"), MemberRef(theirs)], NOW
        )
    assert refused.value.field == "members[1].user_id"
    lenient = await store.add_audience_members(
        "grp_1", "orders", [ident("wa", "1"), MemberRef(theirs)], NOW, strict=False
    )
    assert (lenient.added, lenient.unknown_users) == (1, [1])
    first = await store.audience_members("grp_1", 0, 2)
    rest = await store.audience_members("grp_1", first[-1].seq, 2)
    assert [m.member for m in first + rest] == [
        ident("sms", "+31600000002"),
        MemberRef(mine),
        ident("wa", "1"),
    ]
    assert await store.remove_audience_member("grp_1", MemberRef(mine))
    assert not await store.remove_audience_member("grp_1", MemberRef(mine))
    group = await store.get_audience("grp_1")
    assert group is not None and (group.size, group.owner, group.name) == (2, "orders", "Utrecht")


async def test_each_member_once_on_their_preferred_identity_or_skipped_with_a_reason(
    store: Store,
) -> None:
    both = await user(store, ("sms", "+31600000001"), ("wa", "31600000001"))
    await wrote(store, "wa", "31600000001", NOW - 60)  # WhatsApp open: it is the one they use
    closed_fb = await user(store, ("fb", "psid-1"))  # never wrote: Messenger is closed
    await wrote(store, "fb", "psid-2", NOW - 48 * 3600)
    await store.set_unsubscribed("sms", "+31600000009", "STOP", NOW)
    members = [
        MemberRef(both),
        ident("sms", "+31600000001"),  # the same person again, by identity
        MemberRef(closed_fb),
        ident("fb", "psid-2"),
        ident("wa", "31600000002"),  # outside the window: the template goes
        ident("sms", "+31600000009"),  # said STOP
        ident("tg", "42"),  # a channel not configured
    ]
    await store.create_audience("grp_1", "orders", None, members, NOW)
    new = broadcast("grp_1")
    assert await store.create_broadcast(new, None, NOW) == 7
    assert await expand_all(store) == {"wa"}
    found = await store.get_broadcast(new.id)
    assert found is not None and found.state == "sending" and found.expanded == 6
    assert found.counts == {"queued": 2, "skipped": 4}
    outcomes = await store.broadcast_outcomes(new.id, 0, 100)
    assert [(o.channel_id, o.provider_id, o.state, o.reason) for o in outcomes] == [
        ("wa", "31600000001", "queued", None),
        ("fb", "psid-1", "skipped", "window_closed"),
        ("fb", "psid-2", "skipped", "window_closed"),
        ("wa", "31600000002", "queued", None),
        ("sms", "+31600000009", "skipped", "opted_out"),
        ("tg", "42", "skipped", "no_usable_identity"),
    ]
    sends = await store.get_messages([o.message_id for o in outcomes if o.message_id])
    options = {m.recipient_id: m.options for m in sends.values()}
    assert json.loads(options["31600000002"] or "{}") == {"template": TEMPLATE["wa"]}
    assert options["31600000001"] is not None  # the fallback goes with every WhatsApp copy
    assert await store.expand_broadcast(NOW, 2, CHANNELS) is None  # nothing twice


async def test_an_empty_audience_is_refused(store: Store) -> None:
    await store.create_audience("grp_1", "orders", None, [], NOW)
    with pytest.raises(BroadcastConflict) as refused:
        await store.create_broadcast(broadcast("grp_1"), None, NOW)
    assert refused.value.code == "empty_audience"


async def test_bulk_rows_wait_for_normal_ones_and_stay_within_their_window(store: Store) -> None:
    members = [ident("sms", f"+316000000{i:02d}") for i in range(6)]
    await store.create_audience("grp_1", "orders", None, members, NOW)
    await store.create_broadcast(broadcast("grp_1"), None, NOW)
    await expand_all(store, batch=10)
    await store.create_message(new_message("msg_reply"), NOW + 1)  # a reply, queued later
    await store.db.run(
        lambda tx: tx.execute("UPDATE messages SET channel_id = 'sms' WHERE id = 'msg_reply'")
    )
    await store.db.run(
        lambda tx: tx.execute("UPDATE outbox SET target = 'sms' WHERE ref = 'msg_reply'")
    )
    first = await store.claim_outbox(
        "send", 4, NOW + 2, 30, target="sms", first_in_line=True, bulk_window=2
    )
    assert first[0].ref == "msg_reply" and [i.priority for i in first] == [0, 1, 1]
    # Two bulk rows are out: none more until one is done, whatever room the claim has.
    assert await store.claim_outbox("send", 4, NOW + 2, 30, target="sms", bulk_window=2) == []
    await store.complete_outbox([first[1].id], NOW + 3)
    [one] = await store.claim_outbox("send", 4, NOW + 3, 30, target="sms", bulk_window=2)
    assert one.priority == 1


async def test_cancel_takes_out_what_is_queued_and_withdraws_what_is_claimed(store: Store) -> None:
    members = [ident("sms", f"+316000000{i:02d}") for i in range(4)]
    await store.create_audience("grp_1", "orders", None, members, NOW)
    new = broadcast("grp_1")
    await store.create_broadcast(new, None, NOW)
    await expand_all(store, batch=10)
    [claimed] = await store.claim_outbox("send", 1, NOW, 30, target="sms", bulk_window=1)
    assert await store.may_send_bulk(claimed.ref, claimed.id, NOW)
    assert await store.cancel_broadcast(new.id, NOW + 1)
    assert not await store.cancel_broadcast(new.id, NOW + 1)
    assert await store.claim_outbox("send", 10, NOW + 2, 30, target="sms", bulk_window=10) == []
    assert await store.finish_broadcasts(targets, NOW + 2) == []  # one is still claimed
    assert not await store.may_send_bulk(claimed.ref, claimed.id, NOW + 2)
    assert await store.finish_broadcasts(targets, NOW + 3) == [new.id]
    found = await store.get_broadcast(new.id)
    assert found is not None and found.counts == {"cancelled": 4} and found.state == "cancelled"
    [event] = await events_of_types(store, ("broadcast.completed",))
    assert event["cancelled"] is True and event["counts"]["cancelled"] == 4
    assert event["target"] == "orders"
    message = await store.get_message(claimed.ref)
    assert (
        message is not None and message.state == "failed" and "cancelled" in (message.error or "")
    )


async def test_past_its_ttl_nothing_more_is_queued_or_sent(store: Store) -> None:
    members = [ident("sms", "+31600000001"), ident("sms", "+31600000002")]
    await store.create_audience("grp_1", "orders", None, members, NOW)
    new = broadcast("grp_1", expires_at=NOW + 60)
    await store.create_broadcast(new, None, NOW)
    await store.expand_broadcast(NOW, 1, CHANNELS)  # the first queued in time
    await store.expand_broadcast(NOW + 61, 1, CHANNELS)  # the second too late
    await expand_all(store, NOW + 61)
    [claimed] = await store.claim_outbox("send", 1, NOW + 61, 30, target="sms", bulk_window=1)
    assert not await store.may_send_bulk(claimed.ref, claimed.id, NOW + 61)
    assert await store.finish_broadcasts(targets, NOW + 62) == [new.id]
    found = await store.get_broadcast(new.id)
    assert found is not None and found.counts == {"expired": 2} and found.state == "completed"


async def test_a_scheduled_broadcast_waits_for_its_time(store: Store) -> None:
    await store.create_audience("grp_1", "orders", None, [ident("sms", "+31600000001")], NOW)
    await store.create_broadcast(broadcast("grp_1", schedule_at=NOW + 600), None, NOW)
    assert await store.expand_broadcast(NOW, 10, CHANNELS) is None
    assert await store.expand_broadcast(NOW + 600, 10, CHANNELS) is not None
