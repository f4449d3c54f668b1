"""Provider groups as conversations, on SQLite and PostgreSQL: a LINE group or room and a
WhatsApp group are each a conversation, made on their first message; members join as they
first speak, are reached only through the group, and replies go to the group
(docs/conversations.md, "Provider groups")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from gateway.ids import new_id
from gateway.router.conversations import RoutingPolicy
from gateway.schema import ChannelRef, Event, Party, Postback
from gateway.store import SeatRequest, Store

from .store_events import targets
from .test_store_contract_conversations import COURIER, NOW, TEXT, copies, lifecycle, said

GROUP = "Ca56f94637cc4347f90a25382909b24b9"  # a LINE groupId
ROOM = "Rb56f94637cc4347f90a25382909b24b9"
WA_GROUP = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
ALICE, BOB = "U4af4980629aaaaaaaaaaaaaaaaaaaaaa", "U4af4980629bbbbbbbbbbbbbbbbbbbbbb"
ROUTING = RoutingPolicy(provider_groups_owner="orders")


def in_group(
    sender: str, text: str = "who has the keys?", group: str = GROUP, source: str = "group"
) -> Event:
    key = "room_id" if source == "room" else "group_id"
    return Event(
        id=new_id("evt"),
        type="message",
        channel=ChannelRef(id="line", type="line"),
        external_id=f"ext-{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC),
        sender=Party(id=sender),
        message={"content": {"type": "text", "text": text}},  # type: ignore[arg-type]
        channel_data={"source_type": source, key: group},
    )


async def record(store: Store, raw_id: int, event: Event, at: float = NOW) -> list[Event]:
    return await store.record_inbound(raw_id, [(event, f"k{raw_id}")], targets, at, routing=ROUTING)


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], (e.get("participant") or {}).get("role")) for e in events]


async def test_a_groups_first_message_makes_its_conversation_and_members_join_as_they_speak(
    store: Store,
) -> None:
    [first] = await record(store, 1, in_group(ALICE))
    conversation_id = first.conversation_id
    assert conversation_id is not None and first.author is not None
    assert (first.author.role, first.author.display_name) == ("member", "Group member")
    [again] = await record(store, 2, in_group(ALICE, "found them"))
    [other] = await record(store, 3, in_group(BOB))
    assert again.conversation_id == other.conversation_id == conversation_id
    assert again.author == first.author and other.author != first.author
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.owner == "orders"
    assert [
        (p.seat.role, p.seat.provider_id, p.seat.via_group) for p in conversation.participants
    ] == [
        ("group", GROUP, None),
        ("member", ALICE, GROUP),
        ("member", BOB, GROUP),
    ]
    events = await lifecycle(store)
    assert kinds(events) == [
        ("conversation.created", None),
        ("participant.joined", "member"),
        ("participant.joined", "member"),
    ]
    assert [p["role"] for p in events[0]["participants"]] == ["group"]
    # The members all see each other in the group: nothing is relayed among them.
    assert await copies(store, conversation_id) == []


async def test_a_reply_goes_to_the_group_never_privately_to_a_member(store: Store) -> None:
    [first] = await record(store, 1, in_group(ALICE))
    assert first.conversation_id is not None
    posted = await store.post_to_conversation(first.conversation_id, TEXT, None, None, NOW)
    assert posted is not None
    assert await copies(store, first.conversation_id) == [
        ("line", GROUP, posted[0].copies[0].participant.id, "order is ready")
    ]
    assert posted[0].copies[0].participant.role == "group"


async def test_a_participant_the_backend_adds_hears_the_group_and_the_group_hears_them(
    store: Store,
) -> None:
    [first] = await record(store, 1, in_group(ALICE))
    conversation_id = first.conversation_id
    assert conversation_id is not None
    courier = SeatRequest("", "courier", "Jasper", channel_id="sms", provider_id=COURIER)
    await store.add_participant(conversation_id, courier, targets, NOW)
    await record(store, 2, in_group(ALICE, "we are at the back door"), NOW + 1)
    [from_courier] = await store.record_inbound(
        3, [(said("sms", COURIER, "2 min"), "k3")], targets, NOW + 2, routing=ROUTING
    )
    assert from_courier.conversation_id == conversation_id
    assert [(c[0], c[1], c[3]) for c in await copies(store, conversation_id)] == [
        ("line", GROUP, "Jasper (courier) joined"),  # a visible join is announced to the group
        ("sms", COURIER, "Group member (member): we are at the back door"),
        ("line", GROUP, "Jasper (courier): 2 min"),
    ]


async def test_a_member_writing_privately_stays_in_their_own_chat(store: Store) -> None:
    [first] = await record(store, 1, in_group(ALICE))
    private = in_group(ALICE).model_copy(update={"channel_data": {"source_type": "user"}})
    [alone] = await record(store, 2, private)
    assert alone.conversation_id != first.conversation_id and alone.author is None


async def test_each_group_and_room_is_a_conversation_of_its_own(store: Store) -> None:
    [in_a] = await record(store, 1, in_group(ALICE))
    [in_room] = await record(store, 2, in_group(ALICE, source="room", group=ROOM))
    whatsapp = Event(
        id=new_id("evt"),
        type="message",
        channel=ChannelRef(id="wa", type="whatsapp"),
        external_id=f"ext-{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC),
        sender=Party(id="16505551234", name="Sheena"),
        message={"content": {"type": "text", "text": "hi all"}},  # type: ignore[arg-type]
        channel_data={"group_id": WA_GROUP},
    )
    [in_wa] = await record(store, 3, whatsapp)
    assert len({in_a.conversation_id, in_room.conversation_id, in_wa.conversation_id}) == 3
    assert in_wa.author is not None and in_wa.author.display_name == "Sheena"
    assert in_wa.conversation_id is not None
    posted = await store.post_to_conversation(in_wa.conversation_id, TEXT, None, None, NOW)
    assert posted is not None
    assert [(c[0], c[1]) for c in await copies(store, in_wa.conversation_id)] == [("wa", WA_GROUP)]


async def test_once_closed_a_groups_messages_go_on_as_plain_events(store: Store) -> None:
    [first] = await record(store, 1, in_group(ALICE))
    assert first.conversation_id is not None
    await store.close_conversation(first.conversation_id, targets, NOW)
    [after] = await record(store, 2, in_group(BOB))
    assert after.conversation_id != first.conversation_id and after.author is None


async def test_a_tap_in_the_group_is_the_members_postback_in_its_conversation(
    store: Store,
) -> None:
    [first] = await record(store, 1, in_group(ALICE))
    tap = in_group(BOB).model_copy(
        update={"type": "postback", "message": None, "postback": Postback(payload="action=buy")}
    )
    [postback] = await record(store, 2, tap)
    assert postback.conversation_id == first.conversation_id
    assert postback.author is not None and postback.author.role == "member"
    assert first.conversation_id is not None
    assert await copies(store, first.conversation_id) == []
