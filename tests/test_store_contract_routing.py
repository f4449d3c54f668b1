"""Routing a person present in several open conversations, on SQLite and PostgreSQL: reply
context, recency, and "Which chat is this for?" with its held messages (docs/conversations.md,
"Routing a person in several conversations")."""

from __future__ import annotations

import json
from typing import Any

from gateway.ids import new_id
from gateway.router.conversations import RoutingPolicy
from gateway.store import ConversationRecord, Store, writes

from .store_events import targets
from .test_store_contract_conversations import (
    CUSTOMER,
    NOW,
    SEATS,
    TEXT,
    copies,
    ids,
    said,
    seat,
)

NEIGHBOUR = "+16505550000"  # on "sms"
POLICY = RoutingPolicy(recency_seconds=60.0, question_seconds=600.0)


async def open_two(store: Store) -> tuple[ConversationRecord, ConversationRecord]:
    """The customer in an order chat and, made a second later, a community."""
    order = await store.create_conversation(
        new_id("conv"), "orders", "relay", '{"title": "Order #1234"}', SEATS, targets, NOW
    )
    community = await store.create_conversation(
        new_id("conv"),
        "orders",
        "relay",
        '{"subject": "Community"}',
        [SEATS[0], seat("participants[1]", "sms", NEIGHBOUR, "neighbour", "Ana")],
        targets,
        NOW + 1,
    )
    return order, community


async def inbound(
    store: Store, raw_id: int, key: str, at: float, text: str = "hi", reply_to: str | None = None
) -> list[Any]:
    """The customer writes on WhatsApp, quoting the message `reply_to` names."""
    event = said("wa", CUSTOMER, text)
    assert event.message is not None
    event = event.model_copy(
        update={"message": event.message.model_copy(update={"reply_to": reply_to})}
    )
    return await store.record_inbound(raw_id, [(event, key)], targets, at, routing=POLICY)


async def questions_to_customer(store: Store) -> list[str]:
    rows = await store.db.run(
        lambda tx: tx.all(
            "SELECT content FROM messages WHERE api_key = 'gateway:route' AND channel_id = 'wa'"
            " AND recipient_id = ? ORDER BY created_at, id",
            (CUSTOMER,),
        )
    )
    return [json.loads(r[0])["text"] for r in rows]


async def forwarded(store: Store, event_id: str) -> dict[str, Any] | None:
    """The event as stored, when it is queued for the backend; None while held."""
    row = await store.db.run(
        lambda tx: tx.one(
            "SELECT e.body FROM events e JOIN outbox o ON o.ref = e.id AND o.kind = 'webhook'"
            " WHERE e.id = ? AND e.held_since IS NULL",
            (event_id,),
        )
    )
    return json.loads(row[0]) if row else None


async def held_ids(store: Store) -> list[str]:
    rows = await store.db.run(
        lambda tx: tx.all(
            "SELECT id FROM events WHERE held_since IS NOT NULL AND type = 'message'"
            " ORDER BY created_at, id"
        )
    )
    return [r[0] for r in rows]


async def test_reply_context_routes_to_the_conversation_of_the_copy_quoted(store: Store) -> None:
    order, community = await open_two(store)
    # The order chat wrote to the customer first, then the community: recency says community.
    posted = await store.post_to_conversation(order.id, TEXT, None, None, NOW + 2)
    assert posted is not None
    [to_customer] = [c for c in posted[0].copies if c.participant.id == ids(order)["customer"]]
    await store.db.run(
        lambda tx: writes.record_parts(tx, "wa", to_customer.message_id, ["wamid.order"])
    )
    await store.post_to_conversation(community.id, TEXT, None, None, NOW + 3)
    [recent] = await inbound(store, 1, "k1", NOW + 4)
    assert recent.conversation_id == community.id
    [quoting] = await inbound(store, 2, "k2", NOW + 5, reply_to="wamid.order")
    assert quoting.conversation_id == order.id
    # A quote of a message of no conversation decides nothing: recency does (their own
    # message a second ago was in the order chat).
    [other] = await inbound(store, 3, "k3", NOW + 6, reply_to="wamid.unknown")
    assert other.conversation_id == order.id


async def test_recency_routes_within_its_time_and_asks_after_it(store: Store) -> None:
    order, _community = await open_two(store)
    await store.post_to_conversation(order.id, TEXT, None, None, NOW + 2)
    [event] = await inbound(store, 1, "k1", NOW + 62)  # 60 s after the copy: still recent
    assert event.conversation_id == order.id
    assert await inbound(store, 2, "k2", NOW + 200) == []  # held: asked instead
    assert await questions_to_customer(store) == [
        "Which chat is this for?\n1. Order #1234\n2. Community\nReply with the number."
    ]


async def test_the_answer_routes_the_held_message_as_if_it_arrived_there(store: Store) -> None:
    order, community = await open_two(store)
    assert await inbound(store, 1, "k1", NOW + 2, "10 min late") == []
    # Most recently active first: the community was made last.
    assert await questions_to_customer(store) == [
        "Which chat is this for?\n1. Community\n2. Order #1234\nReply with the number."
    ]
    [held] = await held_ids(store)
    assert await forwarded(store, held) is None
    assert await copies(store, order.id) == []
    # A redelivery of the held message changes nothing, and asks nothing again.
    assert await inbound(store, 2, "k1", NOW + 3, "10 min late") == []
    assert len(await questions_to_customer(store)) == 1

    assert await inbound(store, 3, "k3", NOW + 4, "2") == []  # the answer is not forwarded
    released = await forwarded(store, held)
    assert released is not None and released["conversation_id"] == order.id
    assert released["author"]["id"] == ids(order)["customer"]
    assert [c[3] for c in await copies(store, order.id)] == [
        "Sheena (customer): 10 min late",
        "Sheena (customer): 10 min late",
    ]
    assert await copies(store, community.id) == []
    [said_there] = await store.conversation_messages(order.id, None, 10)
    assert said_there.event_id == held
    # Answered: the next "2" is an ordinary message, routed by recency (the order chat).
    [after] = await inbound(store, 4, "k4", NOW + 5, "2")
    assert after.conversation_id == order.id


async def test_a_message_that_answers_nothing_is_held_too_and_the_question_asked_again(
    store: Store,
) -> None:
    order, community = await open_two(store)
    await inbound(store, 1, "k1", NOW + 2, "10 min late")
    assert await inbound(store, 2, "k2", NOW + 3, "the one with the pizza") == []
    assert len(await questions_to_customer(store)) == 2
    first, second = await held_ids(store)
    await inbound(store, 3, "k3", NOW + 4, "one")
    for event_id in (first, second):
        released = await forwarded(store, event_id)
        assert released is not None and released["conversation_id"] == community.id
    # Released in the order they came (the history is newest first), each relayed once.
    history = await store.conversation_messages(community.id, None, 10)
    assert [m.event_id for m in history] == [second, first]
    assert sorted(c[3] for c in await copies(store, community.id)) == [
        "Sheena (customer): 10 min late",
        "Sheena (customer): the one with the pizza",
    ]
    assert await copies(store, order.id) == []


async def test_unanswered_the_held_messages_go_to_the_most_recently_active(store: Store) -> None:
    order, _community = await open_two(store)
    await inbound(store, 1, "k1", NOW + 2)
    [held] = await held_ids(store)
    await store.post_to_conversation(
        order.id, TEXT, ids(order)["courier"], [ids(order)["restaurant"]], NOW + 3
    )
    assert await store.expire_route_questions(targets, NOW + 2 + 599) == 0  # not yet
    assert await store.expire_route_questions(targets, NOW + 2 + 600) == 1
    released = await forwarded(store, held)
    assert released is not None and released["conversation_id"] == order.id
    assert await store.expire_route_questions(targets, NOW + 2000) == 0


async def test_when_the_offered_conversations_close_the_held_message_stays_one_to_one(
    store: Store,
) -> None:
    order, community = await open_two(store)
    await inbound(store, 1, "k1", NOW + 2)
    [held] = await held_ids(store)
    for conversation in (order, community):
        await store.close_conversation(conversation.id, targets, NOW + 3)
    # Past its time, the person's next message releases it before it is routed itself.
    [later] = await inbound(store, 2, "k2", NOW + 700)
    released = await forwarded(store, held)
    assert released is not None and released.get("author") is None
    assert released["conversation_id"] == later.conversation_id
    assert released["conversation_id"] not in (order.id, community.id)
