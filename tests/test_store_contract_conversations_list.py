"""Listing and changing conversations in the store, on SQLite and on PostgreSQL (`store`): the
filters read JSON metadata with each database's own functions, so both are checked."""

from __future__ import annotations

from gateway.ids import new_id
from gateway.store import ConversationQuery, SeatRequest, Store

from .store_events import targets
from .test_store_contract_conversations import NOW, SEATS, start
from .test_store_contract_users import new_user


async def found(store: Store, query: ConversationQuery, limit: int = 10) -> list[str]:
    return [c.id for c in await store.list_conversations(query, limit)]


async def test_filters_and_pages(store: Store) -> None:
    user = await store.create_user(new_user(name="Jasper"), NOW)
    merged = await store.create_user(new_user(name="J."), NOW)
    await store.link_identity(user.id, "sms", "sms", "+14155550100", targets, NOW)
    await store.link_identity(merged.id, "fb", "messenger", "6291474124214458", targets, NOW)
    as_user = SeatRequest("", "courier", "Jasper", user_id=user.id)
    as_merged = SeatRequest("", "restaurant", "J.", user_id=merged.id)

    made: dict[str, float] = {}

    async def conversation(
        metadata: str | None, seats: list[SeatRequest], owner: str = "orders"
    ) -> str:
        at = NOW + len(made)  # two in one millisecond have ids in no particular order
        conversation = await store.create_conversation(
            new_id("conv"), owner, "relay", metadata, seats, targets, at
        )
        made[conversation.id] = at
        return conversation.id

    a = await conversation('{"order_id": "1234", "rush": true}', [SEATS[0]])
    b = await conversation('{"order_id": 1234}', [as_user])
    c = await conversation(None, [as_merged])
    d = await conversation('{"order_id": "12345", "nested": {"order_id": "1234"}}', [])
    await store.close_conversation(b, targets, NOW)
    await store.merge_users(user.id, merged.id, targets, NOW)
    other_key = await conversation('{"order_id": "1234"}', SEATS, owner="couriers")

    mine = ConversationQuery(owner="orders")
    assert await found(store, mine) == [d, c, b, a]
    assert await found(store, ConversationQuery(owner=None)) == [other_key, d, c, b, a]
    assert await found(store, mine, limit=2) == [d, c]
    assert await found(store, ConversationQuery(owner="orders", before=(made[c], c))) == [b, a]
    by_order = ConversationQuery(owner="orders", metadata=(("order_id", "1234"),))
    assert await found(store, by_order) == [b, a]  # never a nested value, nor a longer one
    assert await found(store, ConversationQuery(owner="orders", state="open")) == [d, c, a]
    assert await found(store, ConversationQuery(owner="orders", state="closed")) == [b]
    # A user's conversations include those of the user merged into them.
    assert await found(store, ConversationQuery(owner="orders", user_id=user.id)) == [c, b]

    twin = await store.create_conversation(
        new_id("conv"), "orders", "relay", None, [], targets, made[a]
    )  # made in the same instant as `a`: its id decides
    tied = sorted([a, twin.id], reverse=True)
    assert await found(store, ConversationQuery(owner="orders", before=(made[b], b))) == tied
    after_first = ConversationQuery(owner="orders", before=(made[a], tied[0]))
    assert await found(store, after_first) == tied[1:]


async def test_metadata_is_replaced_or_cleared(store: Store) -> None:
    made = await start(store)
    changed = await store.set_conversation_metadata(made.id, '{"eta": "10 min"}')
    assert changed is not None and changed.metadata == '{"eta": "10 min"}'
    assert changed.participants == made.participants
    cleared = await store.set_conversation_metadata(made.id, None)
    assert cleared is not None and cleared.metadata is None
    assert await store.set_conversation_metadata("conv_nobody", None) is None
