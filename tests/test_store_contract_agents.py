"""The store contract for agents, bots and control, on SQLite and on PostgreSQL (`store`
fixture): the controller's events and the standby copies, handovers and their events, silent
observers, participants reached through the API only, and join and leave announcements."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from gateway.ids import new_id
from gateway.schema import CONTENT_ADAPTER
from gateway.store import ConversationConflict, ConversationRecord, SeatRequest, Store

from .store_events import events_of_types
from .test_store_contract_conversations import (
    COURIER,
    CUSTOMER,
    NOW,
    SEATS,
    copies,
    ids,
    said,
    seat,
)
from .test_store_contract_conversations import targets as one_backend

BACKENDS = ["bot", "desk"]
AGENT = "+14155550177"  # an agent on SMS
SAM = SeatRequest("", "support", "Sam", api_only=True, observer=True)
TOM = SeatRequest("", "support", "Tom", channel_id="sms", provider_id=AGENT, observer=True)


def both(event_type: str) -> list[str]:
    return BACKENDS


async def start(store: Store, controller: str | None = "bot", **kw: Any) -> ConversationRecord:
    seats = kw.get("seats", SEATS[:2])
    return await store.create_conversation(
        new_id("conv"), "orders", kw.get("mode", "relay"), None, seats, both, NOW, controller
    )


async def sent_to(store: Store, participant_id: str) -> list[str]:
    """The texts queued for one participant, in the order they go: their line's order."""
    rows = await store.db.run(
        lambda tx: tx.all(
            "SELECT m.content FROM messages m JOIN outbox o ON o.ref = m.id AND o.kind = 'send'"
            " WHERE m.participant_id = ? ORDER BY o.id",
            (participant_id,),
        )
    )
    return [json.loads(r[0])["text"] for r in rows]


async def deliveries(store: Store, text: str) -> list[tuple[str, bool]]:
    """Each backend a message event saying `text` is queued for, and whether as standby."""
    found = await events_of_types(store, ("message",))
    return sorted(
        (e["target"], bool(e.get("standby")))
        for e in found
        if e["message"]["content"].get("text") == text
    )


async def test_the_controller_gets_the_message_the_others_a_standby_copy(store: Store) -> None:
    conversation = await start(store)
    assert conversation.controller == "bot"
    [event] = await store.record_inbound(1, [(said("wa", CUSTOMER, "hi"), "k1")], both, NOW)
    assert event.conversation_id == conversation.id and event.standby is None
    assert await deliveries(store, "hi") == [("bot", False), ("desk", True)]
    [copy] = [
        e
        for e in await events_of_types(store, ("message",))
        if e.get("standby") and e["message"]["content"]["text"] == "hi"
    ]
    assert copy["id"] != event.id and copy["external_id"] == event.external_id
    assert copy["author"] == event.author.model_dump(exclude_none=True)  # type: ignore[union-attr]
    # A redelivery stores nothing again, standby copy included.
    assert await store.record_inbound(2, [(said("wa", CUSTOMER, "hi"), "k1")], both, NOW) == []
    assert await deliveries(store, "hi") == [("bot", False), ("desk", True)]


async def test_without_a_controller_or_a_conversation_every_backend_gets_it(store: Store) -> None:
    await start(store, controller=None)
    await store.record_inbound(1, [(said("wa", CUSTOMER, "group"), "k1")], both, NOW)
    assert await deliveries(store, "group") == [("bot", False), ("desk", False)]
    await store.record_inbound(2, [(said("wa", "16505559999", "solo"), "k2")], both, NOW)
    assert await deliveries(store, "solo") == [("bot", False), ("desk", False)]


async def test_control_passes_and_each_change_is_an_event(store: Store) -> None:
    conversation = await start(store)

    async def change(action: str, backend: str | None) -> str | None:
        changed = await store.change_control(
            conversation.id, action, backend, "bot", BACKENDS, both, NOW
        )
        assert changed is not None
        return changed.controller

    assert await change("pass", "desk") == "desk"
    assert await change("pass", "desk") == "desk"  # held already: no event
    await store.record_inbound(1, [(said("wa", CUSTOMER, "human please"), "k1")], both, NOW)
    assert await deliveries(store, "human please") == [("bot", True), ("desk", False)]
    assert await change("take", None) == "bot"  # the default controller takes it back
    assert await change("release", "bot") is None  # the default releasing: no one
    events = await events_of_types(store, ("control.passed",))
    assert [(e["control"].get("previous"), e["control"].get("controller")) for e in events][
        ::2
    ] == [
        ("bot", "desk"),
        ("desk", "bot"),
        ("bot", None),
    ]
    assert {e["target"] for e in events} == set(BACKENDS)
    with pytest.raises(ConversationConflict) as refused:
        await change("release", "desk")
    assert (refused.value.status, refused.value.code) == (409, "not_in_control")
    await store.close_conversation(conversation.id, both, NOW)
    with pytest.raises(ConversationConflict) as closed:
        await change("pass", "desk")
    assert closed.value.code == "conversation_closed"


async def test_a_visible_join_and_leave_are_announced_an_observers_are_not(store: Store) -> None:
    conversation = await start(store)
    seats = ids(conversation)
    await store.add_participant(conversation.id, TOM, one_backend, NOW)
    visible = seat("", "fb", "6291474124214458", "restaurant", "Luigi's")
    joined = await store.add_participant(conversation.id, visible, one_backend, NOW)
    assert joined is not None
    tom = next(p.seat.id for p in joined.participants if p.seat.display_name == "Tom")
    luigi = ids(joined)["restaurant"]
    await store.remove_participant(conversation.id, luigi, one_backend, NOW)
    await store.remove_participant(conversation.id, tom, one_backend, NOW)
    said_to = sorted((c[2], c[3]) for c in await copies(store, conversation.id))
    assert said_to == sorted(
        [
            (seats["customer"], "Luigi's (restaurant) joined"),
            (seats["courier"], "Luigi's (restaurant) joined"),
            (tom, "Luigi's (restaurant) joined"),  # an observer receives everything
            (seats["customer"], "Luigi's (restaurant) left"),
            (seats["courier"], "Luigi's (restaurant) left"),
            (tom, "Luigi's (restaurant) left"),
        ]
    )


async def test_an_observer_who_speaks_is_announced_once_first(store: Store) -> None:
    conversation = await start(store)
    seats = ids(conversation)
    await store.add_participant(conversation.id, TOM, one_backend, NOW)
    await store.record_inbound(1, [(said("sms", COURIER, "late"), "k1")], one_backend, NOW)
    [tom] = [s for s in (await store.get_conversation(conversation.id)).seats() if s.observer]  # type: ignore[union-attr]
    assert sorted(c[2] for c in await copies(store, conversation.id)) == sorted(
        [seats["customer"], tom.id]
    )
    for key in ("k2", "k3"):
        await store.record_inbound(2, [(said("sms", AGENT, "on it"), key)], one_backend, NOW)
    assert await sent_to(store, seats["customer"]) == [
        "Jasper (courier): late",
        "Tom (support) joined",
        "Tom (support): on it",
        "Tom (support): on it",
    ]
    found = await store.get_conversation(conversation.id)
    assert found is not None and not any(s.observer for s in found.seats())


async def test_an_api_only_participant_gets_no_copy_and_speaks_through_posts(
    store: Store,
) -> None:
    conversation = await start(store)
    seats = ids(conversation)
    with_sam = await store.add_participant(conversation.id, SAM, one_backend, NOW)
    assert with_sam is not None
    [sam] = [s for s in with_sam.seats() if s.api_only]
    assert sam.observer and sam.provider_id == sam.id
    await store.record_inbound(1, [(said("wa", CUSTOMER, "hello"), "k1")], one_backend, NOW)
    assert [c[2] for c in await copies(store, conversation.id)] == [seats["courier"]]
    with pytest.raises(ConversationConflict) as refused:
        await store.post_to_conversation(conversation.id, TEXT, None, [sam.id], NOW)
    assert (refused.value.status, refused.value.field) == (422, "to[0]")
    posted = await store.post_to_conversation(conversation.id, TEXT, sam.id, None, NOW)
    assert posted is not None
    record, _channels = posted
    assert record.author is not None and record.author.id == sam.id
    assert (await sent_to(store, seats["courier"]))[-2:] == [
        "Sam (support) joined",
        "Sam (support): on my way",
    ]
    history = await store.conversation_messages(conversation.id, None, 10)
    assert [m.author.display_name if m.author else None for m in history][:2] == ["Sam", None]


TEXT = CONTENT_ADAPTER.validate_python({"type": "text", "text": "on my way"})


async def test_a_store_made_before_control_and_observers_gains_their_columns(
    make_store: Callable[[], Store],
) -> None:
    older = make_store()
    for table, column in (("conversations", "controller"), ("participants", "observer")):
        await older.db.run(
            lambda tx, t=table, c=column: tx.execute(f"ALTER TABLE {t} DROP COLUMN {c}")
        )
    # Made before versioned migrations, too: it has no record of any (gateway/store/migrations).
    await older.db.run(lambda tx: tx.execute("DROP TABLE schema_migrations"))
    older.close()
    store = make_store()
    conversation = await start(store, seats=[*SEATS[:2], TOM])
    found = await store.get_conversation(conversation.id)
    assert found is not None and found.controller == "bot"
    assert [s.observer for s in found.seats()] == [False, False, True]
