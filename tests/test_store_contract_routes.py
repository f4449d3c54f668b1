"""The store contract for messages to users (store/routes.py), on SQLite and PostgreSQL: the
route kept with a message, failover once per failure and never twice on one channel, the
durable delivery due time, and a user's country and preferred channel."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from gateway.ids import new_id
from gateway.schema import ChannelRef, Event, EventError, Party, Status
from gateway.store import NewMessage, NewUser, Store
from gateway.store.routes import NewRoute, RouteStep

from .store_events import events_of_types, status, targets

NOW = time.time()
WA = RouteStep("wa", "16505551234", "last_inbound (1.0 h ago, window open)", timed=True)
SMS = RouteStep("sms-main", "+16505551234", "channel_order default", timed=True)
LINE = RouteStep("line-jp", "U4af4980629", "preferred_channel", timed=False)


async def user(store: Store) -> str:
    made = await store.create_user(
        NewUser(new_id("usr"), "orders", None, "Aiko", None, None, "JP", "line"), NOW
    )
    return made.id


def message(channel: str = "wa", recipient: str = "16505551234") -> NewMessage:
    return NewMessage(
        new_id("msg"), channel, recipient, '{"type":"text","text":"hi"}', None, "orders", None, "h"
    )


async def send(store: Store, route: NewRoute, channel: str = "wa") -> str:
    first = message(channel, route.chosen.id)
    message_id, _state, created = await store.create_message(first, NOW, route)
    assert created
    return message_id


def failed_event(message_id: str, channel: str = "wa") -> Event:
    error = EventError(code="131047", title="Re-engagement message", retryable=False)
    return Event(
        id=new_id("evt"),
        type="status",
        channel=ChannelRef(id=channel, type="whatsapp"),
        timestamp=datetime.now(UTC),
        recipient=Party(id="16505551234"),
        status=Status(message_id=message_id, state="failed", error=error),
    )


async def fail(store: Store, message_id: str, channel: str = "wa") -> str | None:
    [outbox_id] = await store.db.run(
        lambda tx: tx.all("SELECT id FROM outbox WHERE kind = 'send' AND ref = ?", (message_id,))
    )
    error = {"code": "131047", "title": "Re-engagement message", "retryable": False}
    event = failed_event(message_id, channel)
    return await store.record_send_failed(outbox_id[0], message_id, error, event, targets, NOW)


async def history(store: Store, message_id: str) -> list[tuple[str, str | None]]:
    record = await store.get_message(message_id)
    assert record is not None
    return [(state, detail) for _at, state, detail in record.history]


async def test_country_and_preferred_channel_are_kept_and_changed(store: Store) -> None:
    user_id = await user(store)
    found = await store.get_user(user_id)
    assert found is not None and (found.country, found.preferred_channel) == ("JP", "line")
    changed = await store.update_user(user_id, {"country": "UA", "preferred_channel": None}, NOW)
    assert changed is not None and (changed.country, changed.preferred_channel) == ("UA", None)


async def test_the_choice_is_in_the_history(store: Store) -> None:
    skipped = replace(SMS, reason="opted out")
    route = NewRoute(await user(store), WA, [LINE], [skipped], False, None)
    message_id = await send(store, route)
    assert await history(store, message_id) == [
        ("queued", None),
        ("skipped", "sms-main: opted out"),
        ("chosen", "wa: last_inbound (1.0 h ago, window open)"),
    ]


async def test_a_failure_fails_over_once_to_the_next_channel(store: Store) -> None:
    user_id = await user(store)
    root = await send(store, NewRoute(user_id, WA, [WA, SMS, LINE], [], True, None))
    # The same channel again (a second identity on it) is passed over: never twice on one.
    assert await fail(store, root) == "sms-main"
    [event] = await events_of_types(store, ("message.failover",))
    assert event["user_id"] == user_id and event["target"] == "orders"
    failover = event["failover"]
    assert failover["message_id"] == root and failover["reason"] == "131047: Re-engagement message"
    assert failover["failed"] == {"channel": "wa", "id": "16505551234", "message_id": root}
    child = failover["next"]["message_id"]
    assert failover["next"] == {"channel": "sms-main", "id": "+16505551234", "message_id": child}
    record = await store.get_message(child)
    assert record is not None and record.state == "queued"
    assert (record.channel_id, record.recipient_id) == ("sms-main", "+16505551234")
    assert record.content == '{"type":"text","text":"hi"}' and record.api_key == "orders"
    assert ("chosen", "sms-main: channel_order default; failover from wa") in await history(
        store, child
    )
    line = f"wa → sms-main ({child}): 131047: Re-engagement message"
    assert ("failover", line) in await history(store, root)
    # The child failing goes on to LINE; LINE failing leaves nobody, said in the root's history.
    assert await fail(store, child, "sms-main") == "line-jp"
    [_, second] = await events_of_types(store, ("message.failover",))
    last = second["failover"]["next"]["message_id"]
    assert second["failover"]["message_id"] == root  # the chain keeps the backend's id
    assert await fail(store, last, "line-jp") is None
    assert ("failover", "no identity left to try: 131047: Re-engagement message") in (
        await history(store, root)
    )


async def test_without_failover_a_failure_is_only_a_failure(store: Store) -> None:
    root = await send(store, NewRoute(await user(store), WA, [SMS], [], False, None))
    assert await fail(store, root) is None
    assert await events_of_types(store, ("message.failover",)) == []


async def test_an_opted_out_next_identity_is_skipped(store: Store) -> None:
    await store.set_unsubscribed("sms-main", "+16505551234", "21610: STOP", NOW)
    root = await send(store, NewRoute(await user(store), WA, [SMS, LINE], [], True, None))
    assert await fail(store, root) == "line-jp"
    assert ("skipped", "sms-main: opted out") in await history(store, root)


async def test_a_missed_delivered_status_fails_over_after_a_restart(
    store: Store, make_store: Any
) -> None:
    root = await send(store, NewRoute(await user(store), WA, [LINE], [], True, 30.0))
    assert await store.next_delivery_due() == NOW + 30.0
    assert await store.overdue_deliveries(NOW + 29, 10) == []
    store.close()
    reopened = make_store()  # the timer is in the store
    [(message_id, state, channel, recipient, timeout)] = await reopened.overdue_deliveries(
        NOW + 31, 10
    )
    assert (message_id, state, channel, recipient, timeout) == (
        root, "queued", "wa", "16505551234", 30.0,
    )  # fmt: skip
    # Still queued (a retried send): it fails first, its send taken out, then fails over.
    event = failed_event(root)
    assert await reopened.time_out_delivery(root, event, targets, NOW + 31) == "line-jp"
    record = await reopened.get_message(root)
    assert record is not None and record.state == "failed"
    pending = await reopened.db.run(
        lambda tx: tx.all("SELECT status FROM outbox WHERE kind = 'send' AND ref = ?", (root,))
    )
    assert [r[0] for r in pending] == ["failed"]
    # LINE reports no delivery: its message waits for no timer; nothing is due any more.
    assert await reopened.next_delivery_due() is None
    assert await reopened.time_out_delivery(root, event, targets, NOW + 32) is None


async def test_a_sent_message_times_out_without_changing_state(store: Store) -> None:
    root = await send(store, NewRoute(await user(store), WA, [SMS], [], True, 30.0))
    sent = failed_event(root).model_copy(
        update={"status": Status(message_id=root, state="sent", external_id="wamid.1")}
    )
    [outbox_id] = await store.db.run(
        lambda tx: tx.all("SELECT id FROM outbox WHERE kind = 'send' AND ref = ?", (root,))
    )
    await store.record_sent(outbox_id[0], root, "wa", ["wamid.1"], None, sent, targets, NOW)
    assert await store.time_out_delivery(root, failed_event(root), targets, NOW + 31) == "sms-main"
    record = await store.get_message(root)
    assert record is not None and record.state == "sent"
    assert ("timeout", "no delivered status within 30 s") in await history(store, root)


async def test_delivered_settles_the_route(store: Store) -> None:
    root = await send(store, NewRoute(await user(store), WA, [SMS], [], True, 30.0))
    [outbox_id] = await store.db.run(
        lambda tx: tx.all("SELECT id FROM outbox WHERE kind = 'send' AND ref = ?", (root,))
    )
    sent = failed_event(root).model_copy(
        update={"status": Status(message_id=root, state="sent", external_id="wamid.9")}
    )
    await store.record_sent(outbox_id[0], root, "wa", ["wamid.9"], None, sent, targets, NOW)
    raw = await store.append_inbox("wa", "d1", "https://gw/webhooks/wa", "{}", b"{}", NOW)
    assert raw is not None
    await store.record_inbound(raw, [(status("wamid.9", "delivered"), "st:wamid.9")], targets, NOW)
    assert await store.next_delivery_due() is None
    # A failure reported later changes nothing: the message reached the user.
    assert await fail_reported(store, "wamid.9") is None
    assert await events_of_types(store, ("message.failover",)) == []


async def fail_reported(store: Store, external_id: str) -> None:
    raw = await store.append_inbox("wa", "d2", "https://gw/webhooks/wa", "{}", b"{}", NOW)
    assert raw is not None
    await store.record_inbound(
        raw, [(status(external_id, "failed"), f"st:{external_id}:f")], targets, NOW
    )
