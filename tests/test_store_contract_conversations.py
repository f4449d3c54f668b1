"""The store contract for group conversations, on SQLite and on PostgreSQL (`store` fixture):
participants, routing of inbound messages, relayed copies, statuses naming their recipient,
history pages and lifecycle events."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.ids import new_id
from gateway.pipeline.dispatcher import status_event
from gateway.schema import (
    CONTENT_ADAPTER,
    CONVERSATION_EVENT_TYPES,
    ChannelRef,
    Event,
    ParticipantRef,
    Party,
)
from gateway.store import ConversationConflict, ConversationRecord, SeatRequest, Store
from gateway.store.records import prepare

from .store_events import events_of_types, status, targets
from .test_store_contract_users import new_user

NOW = time.time()
CUSTOMER = "16505551234"  # on "wa"
COURIER = "+14155550100"  # on "sms"
RESTAURANT = "6291474124214458"  # on "fb"
TEXT = CONTENT_ADAPTER.validate_python({"type": "text", "text": "order is ready"})


def seat(field: str, channel: str, provider_id: str, role: str, name: str) -> SeatRequest:
    return SeatRequest(field, role, name, channel_id=channel, provider_id=provider_id)


SEATS = [
    seat("participants[0]", "wa", CUSTOMER, "customer", "Sheena"),
    seat("participants[1]", "sms", COURIER, "courier", "Jasper"),
    seat("participants[2]", "fb", RESTAURANT, "restaurant", "Luigi's"),
]


def said(channel: str, sender: str, text: str = "stuck in traffic", **fields: Any) -> Event:
    kind = {"wa": "whatsapp", "sms": "sms", "fb": "messenger"}[channel]
    return Event(
        id=new_id("evt"),
        type="message",
        channel=ChannelRef(id=channel, type=kind),
        external_id=f"ext-{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC),
        sender=Party(id=sender),
        message={"content": {"type": "text", "text": text}},  # type: ignore[arg-type]
        **fields,
    )


async def start(
    store: Store, mode: str = "relay", seats: list[SeatRequest] = SEATS, owner: str = "orders"
) -> ConversationRecord:
    return await store.create_conversation(
        new_id("conv"), owner, mode, '{"order_id": "1234"}', seats, targets, NOW
    )


async def copies(store: Store, conversation_id: str) -> list[tuple[str, str, str, str]]:
    """Queued copies: (channel, recipient, participant, content), in order."""
    rows = await store.db.run(
        lambda tx: tx.all(
            "SELECT m.channel_id, m.recipient_id, m.participant_id, m.content FROM messages m"
            " JOIN outbox o ON o.ref = m.id AND o.kind = 'send'"
            " JOIN participants p ON p.id = m.participant_id"
            " WHERE m.conversation_id = ? ORDER BY m.created_at, p.position, m.id",
            (conversation_id,),
        )
    )
    return [(r[0], r[1], r[2], json.loads(r[3])["text"]) for r in rows]


async def lifecycle(store: Store) -> list[dict[str, Any]]:
    return await events_of_types(store, CONVERSATION_EVENT_TYPES)


def ids(conversation: ConversationRecord) -> dict[str, str]:
    return {p.seat.role: p.seat.id for p in conversation.participants}


async def test_create_and_read_a_conversation(store: Store) -> None:
    created = await start(store)
    found = await store.get_conversation(created.id)
    assert found == created
    assert (found.mode, found.state, json.loads(found.metadata or "")) == (
        "relay",
        "open",
        {"order_id": "1234"},
    )
    assert [(p.seat.channel_id, p.seat.role, p.seat.present) for p in found.participants] == [
        ("wa", "customer", True),
        ("sms", "courier", True),
        ("fb", "restaurant", True),
    ]
    [event] = await lifecycle(store)
    assert event["type"] == "conversation.created" and event["target"] == "orders"
    assert [p["display_name"] for p in event["participants"]] == ["Sheena", "Jasper", "Luigi's"]
    assert await store.get_conversation("conv_nope") is None


async def test_a_user_is_reached_on_their_first_identity_or_the_one_given(store: Store) -> None:
    user = await store.create_user(new_user(name="Sheena"), NOW)
    await store.link_identity(user.id, "wa", "whatsapp", CUSTOMER, targets, NOW)
    await store.link_identity(user.id, "sms", "sms", "+16505551234", targets, NOW + 1)
    first = SeatRequest("participants[0]", "customer", "Sheena", user_id=user.id)
    chosen = SeatRequest("participants[0]", "customer", "Sheena", user.id, "sms", "+16505551234")
    [a] = (await start(store, seats=[first])).participants
    [b] = (await start(store, seats=[chosen])).participants
    assert (a.seat.channel_id, a.seat.provider_id, a.seat.user_id) == ("wa", CUSTOMER, user.id)
    assert (b.seat.channel_id, b.seat.provider_id) == ("sms", "+16505551234")


@pytest.mark.parametrize(
    ("request_", "status_", "code", "field"),
    [
        (
            SeatRequest("participants[0]", "customer", "S", user_id="usr_unknown"),
            422,
            "user_not_found",
            "participants[0].user_id",
        ),
        (
            SeatRequest("participants[0]", "customer", "S", user_id="<user>"),
            422,
            "no_identity",
            "participants[0].identity",
        ),
        (
            SeatRequest("participants[0]", "customer", "S", "<user>", "wa", "someone-else"),
            422,
            "not_linked",
            "participants[0].identity",
        ),
        (
            SeatRequest("participants[0]", "customer", "S", user_id="<other key's user>"),
            422,
            "user_not_found",
            "participants[0].user_id",
        ),
    ],
)
async def test_a_participant_who_cannot_join_is_refused_and_nothing_is_kept(
    store: Store, request_: SeatRequest, status_: int, code: str, field: str
) -> None:
    mine = await store.create_user(new_user(), NOW)
    theirs = await store.create_user(new_user(owner="couriers"), NOW)
    await store.link_identity(theirs.id, "wa", "whatsapp", "555", targets, NOW)
    user_id = {"<user>": mine.id, "<other key's user>": theirs.id}.get(
        request_.user_id or "", request_.user_id
    )
    conversation_id = new_id("conv")
    with pytest.raises(ConversationConflict) as refused:
        await store.create_conversation(
            conversation_id,
            "orders",
            "relay",
            None,
            [SEATS[0], SeatRequest(**{**request_.__dict__, "user_id": user_id})],
            targets,
            NOW,
        )
    assert (refused.value.status, refused.value.code, refused.value.field) == (
        status_,
        code,
        field,
    )
    assert await store.get_conversation(conversation_id) is None
    assert await lifecycle(store) == []


async def test_an_identity_is_present_once(store: Store) -> None:
    with pytest.raises(ConversationConflict) as refused:
        await start(store, seats=[SEATS[0], SEATS[0]])
    assert (refused.value.status, refused.value.code) == (409, "already_participant")


async def test_a_participants_message_is_relayed_to_the_others_attributed(store: Store) -> None:
    conversation = await start(store)
    seats = ids(conversation)
    [event] = await store.record_inbound(1, [(said("sms", COURIER), "k1")], targets, NOW)
    assert event.conversation_id == conversation.id
    assert event.author == ParticipantRef(
        id=seats["courier"], role="courier", display_name="Jasper"
    )
    assert await copies(store, conversation.id) == [
        ("wa", CUSTOMER, seats["customer"], "Jasper (courier): stuck in traffic"),
        ("fb", RESTAURANT, seats["restaurant"], "Jasper (courier): stuck in traffic"),
    ]
    # A redelivery of the same webhook relays nothing again.
    assert await store.record_inbound(2, [(said("sms", COURIER), "k1")], targets, NOW) == []
    assert len(await copies(store, conversation.id)) == 2


async def test_a_batch_says_which_channels_its_relayed_copies_were_queued_on(
    store: Store,
) -> None:
    """The normaliser wakes those channels' senders, and only those."""
    await start(store)
    relayed = await store.record_inbound_batch(
        [(1, [prepare(said("sms", COURIER), "k1")])], targets, NOW
    )
    assert sorted(relayed.send_channels) == ["fb", "wa"]
    alone = await store.record_inbound_batch(
        [(2, [prepare(said("sms", "+19995550000"), "k2")])], targets, NOW
    )
    assert [len(e) for e in alone.events.values()] == [1] and alone.send_channels == []


async def test_in_hub_mode_only_the_backend_hears_it(store: Store) -> None:
    conversation = await start(store, mode="hub")
    [event] = await store.record_inbound(1, [(said("sms", COURIER), "k1")], targets, NOW)
    assert event.conversation_id == conversation.id and event.author is not None
    assert await copies(store, conversation.id) == []
    [kept] = await store.conversation_messages(conversation.id, None, 10)
    assert kept.event_id == event.id and kept.copies == []


async def test_someone_in_no_open_conversation_stays_in_their_own(store: Store) -> None:
    conversation = await start(store)
    [stranger] = await store.record_inbound(1, [(said("sms", "+19995550000"), "k1")], targets, NOW)
    assert stranger.conversation_id is not None and stranger.conversation_id.startswith("conv_")
    assert stranger.conversation_id != conversation.id and stranger.author is None
    await store.close_conversation(conversation.id, targets, NOW)
    [after] = await store.record_inbound(2, [(said("sms", COURIER), "k2")], targets, NOW)
    assert after.conversation_id != conversation.id and after.author is None
    assert await copies(store, conversation.id) == []


async def test_one_who_left_gets_no_copy_and_is_no_longer_routed(store: Store) -> None:
    conversation = await start(store)
    seats = ids(conversation)
    await store.remove_participant(conversation.id, seats["restaurant"], targets, NOW)
    await store.record_inbound(1, [(said("sms", COURIER), "k1")], targets, NOW)
    queued = await copies(store, conversation.id)
    assert sorted((c[2], c[3]) for c in queued) == sorted(
        [
            (seats["customer"], "Luigi's (restaurant) left"),
            (seats["courier"], "Luigi's (restaurant) left"),
            (seats["customer"], "Jasper (courier): stuck in traffic"),
        ]
    )
    [left] = await store.record_inbound(2, [(said("fb", RESTAURANT), "k2")], targets, NOW)
    assert left.conversation_id != conversation.id
    with pytest.raises(ConversationConflict) as refused:
        await store.remove_participant(conversation.id, seats["restaurant"], targets, NOW)
    assert (refused.value.status, refused.value.field) == (404, "participant_id")
    assert [e["type"] for e in await lifecycle(store)] == [
        "conversation.created",
        "participant.left",
    ]


async def test_one_who_left_may_join_again(store: Store) -> None:
    conversation = await start(store)
    await store.remove_participant(conversation.id, ids(conversation)["courier"], targets, NOW)
    back = await store.add_participant(conversation.id, SEATS[1], targets, NOW + 1)
    assert back is not None
    assert [(p.seat.role, p.seat.present) for p in back.participants[1:]] == [
        ("courier", False),
        ("restaurant", True),
        ("courier", True),
    ]


async def test_in_several_the_most_recently_active_conversation_wins(store: Store) -> None:
    first = await start(store)
    second = await start(store)
    await store.post_to_conversation(first.id, TEXT, None, None, NOW + 5)
    [event] = await store.record_inbound(1, [(said("sms", COURIER), "k1")], targets, NOW + 6)
    assert event.conversation_id == first.id
    await store.post_to_conversation(second.id, TEXT, None, None, NOW + 7)
    [event] = await store.record_inbound(2, [(said("sms", COURIER), "k2")], targets, NOW + 8)
    assert event.conversation_id == second.id


async def test_a_user_is_routed_from_any_of_their_identities(store: Store) -> None:
    user = await store.create_user(new_user(), NOW)
    await store.link_identity(user.id, "wa", "whatsapp", CUSTOMER, targets, NOW)
    await store.link_identity(user.id, "sms", "sms", "+16505551234", targets, NOW)
    conversation = await start(
        store, seats=[SeatRequest("p", "customer", "Sheena", user_id=user.id), SEATS[1]]
    )
    [event] = await store.record_inbound(1, [(said("sms", "+16505551234"), "k1")], targets, NOW)
    assert event.conversation_id == conversation.id and event.author is not None
    assert event.author.user_id == user.id


async def test_posts_reach_everyone_present_or_those_named(store: Store) -> None:
    conversation = await start(store)
    seats = ids(conversation)
    posted = await store.post_to_conversation(conversation.id, TEXT, None, None, NOW)
    assert posted is not None
    record, channels = posted
    assert sorted(channels) == ["fb", "sms", "wa"]
    assert {c.participant.id for c in record.copies} == set(seats.values())
    assert {c.state for c in record.copies} == {"queued"}
    posted = await store.post_to_conversation(
        conversation.id, TEXT, seats["restaurant"], [seats["courier"]], NOW + 1
    )
    assert posted is not None
    [copy] = posted[0].copies
    assert copy.participant.id == seats["courier"]
    assert (await copies(store, conversation.id))[-1][3] == "Luigi's (restaurant): order is ready"


@pytest.mark.parametrize(
    ("author", "to", "field"),
    [("par_nobody", None, "author"), (None, ["par_nobody"], "to[0]")],
)
async def test_a_post_naming_someone_not_present_is_refused(
    store: Store, author: str | None, to: list[str] | None, field: str
) -> None:
    conversation = await start(store)
    with pytest.raises(ConversationConflict) as refused:
        await store.post_to_conversation(conversation.id, TEXT, author, to, NOW)
    assert (refused.value.status, refused.value.field) == (422, field)
    assert await copies(store, conversation.id) == []


async def test_a_closed_conversation_takes_no_post_and_no_participant(store: Store) -> None:
    conversation = await start(store)
    closed = await store.close_conversation(conversation.id, targets, NOW)
    assert closed is not None and closed.state == "closed" and closed.closed_at == NOW
    again = await store.close_conversation(conversation.id, targets, NOW + 1)
    assert again is not None and again.closed_at == NOW
    for attempt in (
        store.post_to_conversation(conversation.id, TEXT, None, None, NOW),
        store.add_participant(conversation.id, SEATS[0], targets, NOW),
    ):
        with pytest.raises(ConversationConflict) as refused:
            await attempt
        assert (refused.value.status, refused.value.code) == (409, "conversation_closed")
    assert [e["type"] for e in await lifecycle(store)] == [
        "conversation.created",
        "conversation.closed",
    ]


async def test_statuses_of_a_copy_name_its_recipient_participant(store: Store) -> None:
    conversation = await start(store)
    seats = ids(conversation)
    await store.record_inbound(1, [(said("sms", COURIER), "k1")], targets, NOW)
    [to_customer, _] = [
        m for m in (await store.conversation_messages(conversation.id, None, 1))[0].copies
    ]
    record = await store.get_message(to_customer.message_id)
    assert record is not None and record.participant is not None
    assert record.participant.id == seats["customer"]
    sent = status_event(record, "whatsapp", "sent", "wamid.copy")
    assert sent.status is not None and sent.status.participant == record.participant
    await store.record_sent(0, record.id, "wa", ["wamid.copy"], None, sent, targets, NOW)
    [delivered] = await store.record_inbound(
        2, [(status("wamid.copy", "delivered"), "s1")], targets, NOW
    )
    assert delivered.conversation_id == conversation.id
    assert delivered.status is not None and delivered.status.participant == record.participant
    [page] = await store.conversation_messages(conversation.id, None, 1)
    assert {c.participant.id: c.state for c in page.copies} == {
        seats["customer"]: "delivered",
        seats["restaurant"]: "queued",
    }


async def test_history_pages_newest_first(store: Store) -> None:
    conversation = await start(store)
    seats = ids(conversation)
    for n in range(3):
        text = CONTENT_ADAPTER.validate_python({"type": "text", "text": f"m{n}"})
        await store.post_to_conversation(conversation.id, text, seats["customer"], None, NOW + n)
    first = await store.conversation_messages(conversation.id, None, 2)
    rest = await store.conversation_messages(conversation.id, first[-1].seq, 2)
    assert [json.loads(m.content)["text"] for m in first + rest] == ["m2", "m1", "m0"]
    assert all(m.author is not None and m.author.id == seats["customer"] for m in first + rest)
    assert await store.conversation_messages(conversation.id, rest[-1].seq, 2) == []
