"""The store contract for users and identities, on SQLite and on PostgreSQL (`store` fixture)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest

from gateway.ids import new_id
from gateway.schema import USER_EVENT_TYPES, ChannelRef, Party
from gateway.store import NewUser, Store, UserConflict, UserRecord

from .store_events import events_of_types, inbound, new_message, targets, whatsapp_event

NOW = time.time()


def new_user(owner: str = "orders", external_id: str | None = None, **fields: Any) -> NewUser:
    return NewUser(
        id=new_id("usr"),
        owner=owner,
        external_id=external_id,
        name=fields.get("name"),
        locale=fields.get("locale"),
        metadata=json.dumps(fields["metadata"]) if "metadata" in fields else None,
        country=fields.get("country"),
        preferred_channel=fields.get("preferred_channel"),
    )


async def user_events(store: Store) -> list[dict[str, Any]]:
    """Events about users, oldest first, each with the backends its delivery was queued for."""
    return await events_of_types(store, USER_EVENT_TYPES)


async def link(store: Store, user: UserRecord, channel: str, provider_id: str) -> UserRecord:
    kind = "sms" if channel.startswith("sms") else "whatsapp"
    linked = await store.link_identity(user.id, channel, kind, provider_id, targets, NOW)
    assert linked is not None
    return linked[0]


async def test_create_get_and_update(store: Store) -> None:
    created = await store.create_user(
        new_user(external_id="cust-1", name="Ana", locale="pt-BR", metadata={"tier": "gold"}),
        NOW,
    )
    assert created.id.startswith("usr_") and created.owner == "orders"
    assert await store.get_user(created.id) == created
    assert await store.get_user("usr_unknown") is None
    updated = await store.update_user(
        created.id, {"name": "Ana Souza", "locale": None, "metadata": {"tier": "vip"}}, NOW + 1
    )
    assert updated is not None
    assert (updated.name, updated.locale, updated.external_id) == ("Ana Souza", None, "cust-1")
    assert json.loads(updated.metadata or "") == {"tier": "vip"}
    assert updated.updated_at == NOW + 1 and updated.created_at == NOW
    assert await store.update_user("usr_unknown", {"name": "x"}, NOW) is None


async def test_external_id_is_unique_per_owner_key(store: Store) -> None:
    first = await store.create_user(new_user(external_id="cust-1"), NOW)
    with pytest.raises(UserConflict) as taken:
        await store.create_user(new_user(external_id="cust-1"), NOW)
    assert (taken.value.code, taken.value.field) == ("external_id_taken", "external_id")
    # Another key's users are another namespace; users without one never clash.
    await store.create_user(new_user(owner="couriers", external_id="cust-1"), NOW)
    await store.create_user(new_user(), NOW)
    await store.create_user(new_user(), NOW)
    second = await store.create_user(new_user(external_id="cust-2"), NOW)
    with pytest.raises(UserConflict):
        await store.update_user(second.id, {"external_id": "cust-1"}, NOW)
    unchanged = await store.update_user(first.id, {"external_id": "cust-1"}, NOW)
    assert unchanged is not None and unchanged.external_id == "cust-1"


async def test_link_and_unlink_emit_events_to_subscribed_backends(store: Store) -> None:
    user = await store.create_user(new_user(external_id="cust-1"), NOW)
    linked = await store.link_identity(
        user.id, "wa", "whatsapp", "US.13491208655302741918", targets, NOW
    )
    assert linked is not None
    user, new = linked
    assert new and [(i.channel_id, i.provider_id, i.linked_by) for i in user.identities] == [
        ("wa", "US.13491208655302741918", "api")
    ]
    assert user.identities[0].phone is None  # a business-scoped id is not a phone number
    again = await store.link_identity(
        user.id, "wa", "whatsapp", "US.13491208655302741918", targets, NOW
    )
    assert again is not None and again[1] is False  # linked already: no second event

    other = await store.create_user(new_user(), NOW)
    with pytest.raises(UserConflict) as taken:
        await store.link_identity(
            other.id, "wa", "whatsapp", "US.13491208655302741918", targets, NOW
        )
    assert taken.value.code == "identity_taken"

    unlinked = await store.unlink_identity(user.id, "wa", "US.13491208655302741918", targets, NOW)
    assert unlinked is not None and unlinked.identities == []
    with pytest.raises(UserConflict) as missing:
        await store.unlink_identity(user.id, "wa", "US.13491208655302741918", targets, NOW)
    assert missing.value.code == "not_linked"
    assert await store.link_identity("usr_unknown", "wa", "whatsapp", "1", targets, NOW) is None
    assert await store.unlink_identity("usr_unknown", "wa", "1", targets, NOW) is None

    events = await user_events(store)
    assert [(e["type"], e["user_id"], e["identity"]["id"], e["target"]) for e in events] == [
        ("identity.linked", user.id, "US.13491208655302741918", "orders"),
        ("identity.unlinked", user.id, "US.13491208655302741918", "orders"),
    ]
    assert events[0]["external_id"] == "cust-1" and events[0]["identity"]["linked_by"] == "api"


async def test_a_linked_identity_has_the_phone_the_provider_sent(store: Store) -> None:
    row = await store.append_inbox("wa", "k1", "u", "{}", b"b", NOW)
    assert row is not None
    sent = whatsapp_event(
        "message",
        "wamid.1",
        sender=Party(id="16505551234", phone="+16505551234"),
        message={"content": {"type": "text", "text": "hi"}},
    )
    await store.record_inbound(row, [(sent, "msg:wamid.1")], targets, NOW)
    user = await link(store, await store.create_user(new_user(), NOW), "wa", "16505551234")
    assert user.identities[0].phone == "+16505551234"


async def test_merge_keeps_both_histories_and_answers_for_the_merged_id(store: Store) -> None:
    survivor = await store.create_user(
        new_user(external_id="cust-1", name="Ana", metadata={"tier": "gold", "a": 1}), NOW
    )
    merged = await store.create_user(
        new_user(external_id="cust-9", locale="pt-BR", metadata={"tier": "none", "b": 2}), NOW
    )
    await link(store, survivor, "wa", "16505551234")
    await link(store, merged, "sms-us", "+16505550000")
    for message_id, recipient in (("msg_a", "16505551234"), ("msg_b", "+16505550000")):
        channel = "wa" if recipient.isdigit() else "sms-us"
        message = replace(new_message(message_id), channel_id=channel, recipient_id=recipient)
        await store.create_message(message, NOW)
    assert [m.id for m in await store.user_messages(merged.id, "orders", 10)] == ["msg_b"]

    result = await store.merge_users(survivor.id, merged.id, targets, NOW + 1)
    assert result is not None and result.id == survivor.id
    assert {(i.channel_id, i.provider_id) for i in result.identities} == {
        ("wa", "16505551234"),
        ("sms-us", "+16505550000"),
    }
    assert (result.external_id, result.name, result.locale) == ("cust-1", "Ana", "pt-BR")
    assert json.loads(result.metadata or "") == {"tier": "gold", "a": 1, "b": 2}
    assert result.merged_ids == [merged.id]
    assert await store.get_user(merged.id) == result  # the old id answers with the survivor
    # Messages to either user's identities are the survivor's now.
    assert {m.id for m in await store.user_messages(survivor.id, "orders", 10)} == {
        "msg_a",
        "msg_b",
    }
    assert await store.user_messages(survivor.id, "couriers", 10) == []
    # The merged user's external_id is free again for this key.
    await store.create_user(new_user(external_id="cust-9"), NOW)
    [event] = [e for e in await user_events(store) if e["type"] == "user.merged"]
    assert event["user_id"] == survivor.id
    assert event["merge"] == {"merged_id": merged.id, "merged_external_id": "cust-9"}

    with pytest.raises(UserConflict) as same:
        await store.merge_users(survivor.id, merged.id, targets, NOW)
    assert same.value.code == "same_user"
    assert await store.merge_users(survivor.id, "usr_unknown", targets, NOW) is None


async def test_merge_takes_country_and_preferred_channel_only_where_the_survivor_has_none(
    store: Store,
) -> None:
    survivor = await store.create_user(new_user(country="JP"), NOW)
    merged = await store.create_user(new_user(country="US", preferred_channel="line"), NOW)
    result = await store.merge_users(survivor.id, merged.id, targets, NOW + 1)
    assert result is not None and (result.country, result.preferred_channel) == ("JP", "line")
    assert await store.get_user(survivor.id) == result  # persisted, not only answered

    keeps_all = await store.create_user(new_user(country="BR", preferred_channel="wa"), NOW)
    other = await store.create_user(new_user(country="TH", preferred_channel="line"), NOW)
    kept = await store.merge_users(keeps_all.id, other.id, targets, NOW + 1)
    assert kept is not None and (kept.country, kept.preferred_channel) == ("BR", "wa")


async def test_merges_chain_to_the_last_survivor(store: Store) -> None:
    first, second, third = [await store.create_user(new_user(), NOW) for _ in range(3)]
    await store.merge_users(second.id, first.id, targets, NOW)
    final = await store.merge_users(third.id, second.id, targets, NOW)
    assert final is not None and sorted(final.merged_ids) == sorted([first.id, second.id])
    found = await store.get_user(first.id)
    assert found is not None and found.id == third.id


def sender_event(channel: str, kind: str, sender: str, phone: str | None) -> Any:
    event = inbound(f"wamid.{uuid.uuid4().hex}", sender)
    return event.model_copy(
        update={
            "channel": ChannelRef(id=channel, type=kind),
            "sender": Party(id=sender, phone=phone),
        }
    )


async def receive(store: Store, event: Any, link_by_phone: bool) -> None:
    from gateway.store.records import prepare

    row = await store.append_inbox(event.channel.id, event.external_id, "u", "{}", b"b", NOW)
    assert row is not None
    await store.record_inbound_batch(
        [(row, [prepare(event, event.external_id)])], targets, NOW, link_by_phone=link_by_phone
    )


@pytest.mark.parametrize("link_by_phone", [True, False])
async def test_a_new_sender_joins_the_user_with_their_phone(
    store: Store, link_by_phone: bool
) -> None:
    # The SMS number wrote in, and a backend linked it to a user.
    await receive(store, sender_event("sms-us", "sms", "+16505551234", "+16505551234"), False)
    user = await link(store, await store.create_user(new_user(), NOW), "sms-us", "+16505551234")
    assert user.identities[0].phone == "+16505551234"
    # The same number writes on WhatsApp (`from` is the digits, the phone is their E.164 form).
    await receive(
        store, sender_event("wa", "whatsapp", "16505551234", "+16505551234"), link_by_phone
    )
    found = await store.get_user(user.id)
    assert found is not None
    linked = {(i.channel_id, i.provider_id, i.linked_by) for i in found.identities}
    if link_by_phone:
        assert ("wa", "16505551234", "phone") in linked
        [event] = [e for e in await user_events(store) if e["identity"]["linked_by"] == "phone"]
        assert event["type"] == "identity.linked" and event["user_id"] == user.id
    else:
        assert linked == {("sms-us", "+16505551234", "api")}


async def test_a_shared_phone_or_a_channel_without_phones_links_nobody(store: Store) -> None:
    for channel, sender in (("sms-us", "+16505551234"), ("sms-eu", "+16505551234")):
        await receive(store, sender_event(channel, "sms", sender, sender), False)
        await link(store, await store.create_user(new_user(), NOW), channel, sender)
    # Two users hold this number: which one writes on WhatsApp is not the gateway's guess.
    await receive(store, sender_event("wa", "whatsapp", "16505551234", "+16505551234"), True)
    # A Messenger sender never links by phone, even if a phone came with it.
    await receive(store, sender_event("fb", "messenger", "2478931", "+16505551234"), True)
    linked = await store.db.run(lambda tx: tx.all("SELECT channel_id FROM identities"))
    assert sorted(r[0] for r in linked) == ["sms-eu", "sms-us"]
