"""The store's community operations, on SQLite and PostgreSQL (docs/communities.md)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from gateway.ids import new_id
from gateway.schema import ChannelRef, Event, Party
from gateway.schema.communities import CommunitySettings, ModerationSettings
from gateway.store import ConversationConflict, Store
from gateway.store.communities import Joining

SUSHI = CommunitySettings.model_validate(
    {
        "name": "Sushi Lovers",
        "keywords": {"en": {"join": ["JOIN SUSHI"], "leave": ["LEAVE SUSHI"], "name": ["NAME"]}},
        "welcome": {"en": "Welcome!"},
        "rate_limit_per_minute": 2,
    }
)


def nobody(_event_type: str) -> list[str]:
    return []


async def test_a_community_is_saved_with_its_relay_conversation(store: Store) -> None:
    made = await store.communities.save("sushi", "orders", SUSHI, nobody, 100.0)
    assert (made.id, made.owner, made.settings.name, made.members) == (
        "sushi", "orders", "Sushi Lovers", 0)  # fmt: skip
    conversation = await store.get_conversation(made.conversation_id)
    assert conversation is not None and conversation.mode == "relay"
    renamed = SUSHI.model_copy(update={"name": "Sushi Fans"})
    again = await store.communities.save("sushi", "orders", renamed, nobody, 200.0)
    assert again.conversation_id == made.conversation_id and again.settings.name == "Sushi Fans"
    assert [c.id for c in await store.communities.page("orders", 10)] == ["sushi"]
    assert await store.communities.page("other", 10) == []


async def test_a_join_keyword_belongs_to_one_community(store: Store) -> None:
    await store.communities.save("sushi", "orders", SUSHI, nobody, 100.0)
    with pytest.raises(ConversationConflict) as refused:
        await store.communities.save("copy", "orders", SUSHI, nobody, 100.0)
    assert (refused.value.code, refused.value.field) == ("keyword_taken", "keywords.en.join[0]")
    assert await store.communities.get("copy") is None  # nothing kept of it


async def test_members_join_with_given_names_and_banned_ones_cannot_rejoin(store: Store) -> None:
    await store.communities.save("sushi", "orders", SUSHI, nobody, 100.0)
    kenji = await store.communities.join(
        "sushi", Joining("line-main", "U1", None, "Kenji", "en"), nobody, 101.0
    )
    other = await store.communities.join(
        "sushi", Joining("vb-main", "V1", None, None, "en"), nobody, 102.0
    )
    assert kenji is not None and other is not None
    assert kenji.display_name == "Kenji" and other.display_name.startswith("Member ")
    with pytest.raises(ConversationConflict) as taken:
        await store.communities.join(
            "sushi", Joining("sms-main", "+1", None, "kenji", None), nobody, 103.0
        )
    assert taken.value.code == "name_taken"
    members = await store.communities.members("sushi", 10)
    assert [m.seat.display_name for m in members] == ["Kenji", other.display_name]

    assert await store.communities.act_on_member("sushi", kenji.id, "ban", nobody, 104.0)
    with pytest.raises(ConversationConflict) as banned:
        await store.communities.join(
            "sushi", Joining("line-main", "U1", None, None, None), nobody, 105.0
        )
    assert banned.value.code == "banned"
    assert [m.seat.id for m in await store.communities.members("sushi", 10)] == [other.id]
    assert (
        await store.communities.act_on_member("sushi", "par_nobody", "remove", nobody, 1.0) is False
    )
    assert await store.communities.act_on_member("nope", other.id, "remove", nobody, 1.0) is None


async def test_mute_is_recorded_until_its_time(store: Store) -> None:
    await store.communities.save("sushi", "orders", SUSHI, nobody, 100.0)
    member = await store.communities.join(
        "sushi", Joining("line-main", "U1", None, None, None), nobody, 101.0
    )
    assert member is not None
    assert await store.communities.act_on_member(
        "sushi", member.id, "mute", nobody, 102.0, until=700.0, reason="spam"
    )
    [listed] = await store.communities.members("sushi", 10)
    assert listed.muted_until == 700.0


async def test_nothing_awaits_moderation_in_a_new_community(store: Store) -> None:
    await store.communities.save("sushi", "orders", SUSHI, nobody, 100.0)
    assert await store.communities.claim_moderation(100.0, 30.0, 10) == []
    assert await store.communities.held("sushi", "held", 10) == []
    assert await store.communities.decide("mod_nope", "allow", "api", None, 1.0) is None


MODERATED = SUSHI.model_copy(
    update={
        "rate_limit_per_minute": None,
        "moderation": ModerationSettings.model_validate(
            {"url": "https://mod.example.com/hook", "secret": "sushi-moderation-secret-4f9a"}
        ),
    }
)
LEASE = 90.0


def line_text(sender: str, text: str) -> Event:
    """A LINE member's message (docs/communities.md: a member writes on their own channel)."""
    return Event(
        id=new_id("evt"),
        type="message",
        channel=ChannelRef(id="line-main", type="line"),
        external_id=f"ext-{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC),
        sender=Party(id=sender),
        message={"content": {"type": "text", "text": text}},  # type: ignore[arg-type]
    )


async def moderated_community(store: Store) -> tuple[str, str]:
    """The community's conversation and its first member's id (Kenji on LINE, Mia on Viber)."""
    made = await store.communities.save("sushi", "orders", MODERATED, nobody, 100.0)
    kenji = await store.communities.join(
        "sushi", Joining("line-main", "U1", None, "Kenji", "en"), nobody, 101.0
    )
    await store.communities.join(
        "sushi", Joining("vb-main", "V1", None, "Mia", "en"), nobody, 102.0
    )
    assert kenji is not None
    return made.conversation_id, kenji.id


async def said_by_members(store: Store, conversation_id: str) -> list[str]:
    """The texts kept in the conversation's history, oldest first (a relayed message is)."""
    history = await store.conversation_messages(conversation_id, None, 50)
    texts = [json.loads(m.content).get("text", "") for m in reversed(history) if m.author]
    return [t for t in texts if t]


async def test_a_pending_message_is_claimed_once_and_relayed_when_allowed(store: Store) -> None:
    conversation, kenji = await moderated_community(store)
    await store.record_inbound(1, [(line_text("U1", "Omakase tonight?"), "k1")], nobody, 110.0)
    assert await said_by_members(store, conversation) == []  # not relayed before the webhook
    [pending] = await store.communities.held("sushi", "pending", 10)
    assert (pending.author.id, pending.author.display_name) == (kenji, "Kenji")

    [item] = await store.communities.claim_moderation(111.0, LEASE, 10)
    assert (item.id, item.community_id, item.author.id) == (pending.id, "sushi", kenji)
    assert item.settings is not None and item.content.model_dump()["text"] == "Omakase tonight?"
    assert await store.communities.claim_moderation(112.0, LEASE, 10) == []  # leased: once

    decided = await store.communities.decide(item.id, "allow", "webhook", None, 113.0)
    assert decided is not None and (decided.state, decided.decided_by) == ("relayed", "webhook")
    assert await said_by_members(store, conversation) == ["Omakase tonight?"]
    # Decided: neither offered again nor decided twice, even once the lease is over.
    assert await store.communities.claim_moderation(113.0 + 2 * LEASE, LEASE, 10) == []
    assert await store.communities.decide(item.id, "reject", "api", None, 114.0) is None


async def test_a_rejected_message_is_kept_as_rejected_and_not_relayed(store: Store) -> None:
    conversation, _ = await moderated_community(store)
    await store.record_inbound(1, [(line_text("U1", "buy followers"), "k1")], nobody, 110.0)
    [item] = await store.communities.claim_moderation(111.0, LEASE, 10)
    decided = await store.communities.decide(item.id, "reject", "webhook", "spam", 112.0)
    assert decided is not None and (decided.state, decided.reason) == ("rejected", "spam")
    assert await said_by_members(store, conversation) == []
    assert [m.id for m in await store.communities.held("sushi", "rejected", 10)] == [item.id]
    assert await store.communities.held("sushi", "pending", 10) == []


async def test_a_held_message_waits_for_a_release(store: Store) -> None:
    conversation, _ = await moderated_community(store)
    await store.record_inbound(1, [(line_text("U1", "spoiler ahead"), "k1")], nobody, 110.0)
    [item] = await store.communities.claim_moderation(111.0, LEASE, 10)
    await store.communities.decide(item.id, "hold", "webhook", "check it", 112.0)
    assert await store.communities.claim_moderation(112.0 + 2 * LEASE, LEASE, 10) == []
    released = await store.communities.decide(
        item.id, "allow", "api", None, 113.0, community_id="sushi", from_states=("pending", "held")
    )
    assert released is not None and (released.state, released.decided_by) == ("relayed", "api")
    assert await said_by_members(store, conversation) == ["spoiler ahead"]


async def test_a_claim_cut_short_is_offered_again_under_the_same_id(store: Store) -> None:
    await moderated_community(store)
    await store.record_inbound(1, [(line_text("U1", "Omakase tonight?"), "k1")], nobody, 110.0)
    [first] = await store.communities.claim_moderation(111.0, LEASE, 10)
    # The process asking died: another one is offered it once the lease is over (PostgreSQL)...
    assert await store.communities.claim_moderation(111.0 + LEASE - 1, LEASE, 10) == []
    [again] = await store.communities.claim_moderation(111.0 + LEASE + 1, LEASE, 10)
    assert again.id == first.id
    # ...or at once when the one process owning the store restarts (SQLite: release_claims).
    await store.release_claims()
    [restarted] = await store.communities.claim_moderation(111.0 + LEASE + 2, LEASE, 10)
    assert restarted.id == first.id


async def test_allowed_messages_are_relayed_in_the_order_they_were_written(store: Store) -> None:
    conversation, _ = await moderated_community(store)
    # One webhook call brought three messages: one batch, one `now`.
    written = [(line_text("U1", text), f"k{i}") for i, text in enumerate(["one", "two", "three"])]
    await store.record_inbound(1, written, nobody, 110.0)
    first, second, third = await store.communities.claim_moderation(111.0, LEASE, 10)
    assert [i.content.model_dump()["text"] for i in (first, second, third)] == [
        "one", "two", "three"]  # fmt: skip

    # The webhook answers about the later ones first: they wait for "one".
    waiting = await store.communities.decide(third.id, "allow", "webhook", None, 112.0)
    assert waiting is not None and waiting.state == "allowed"
    await store.communities.decide(second.id, "allow", "webhook", None, 113.0)
    assert await said_by_members(store, conversation) == []
    assert [m.id for m in await store.communities.held("sushi", "allowed", 10)] == [
        second.id, third.id]  # fmt: skip

    await store.communities.decide(first.id, "allow", "webhook", None, 114.0)
    assert await said_by_members(store, conversation) == ["one", "two", "three"]
    assert [m.state for m in await store.communities.held("sushi", None, 10)] == ["relayed"] * 3


async def test_a_held_or_rejected_message_does_not_keep_later_ones_waiting(store: Store) -> None:
    conversation, _ = await moderated_community(store)
    written = [(line_text("U1", text), f"k{i}") for i, text in enumerate(["a", "b", "c"])]
    await store.record_inbound(1, written, nobody, 110.0)
    a, b, c = await store.communities.claim_moderation(111.0, LEASE, 10)
    await store.communities.decide(c.id, "allow", "webhook", None, 112.0)
    await store.communities.decide(a.id, "hold", "webhook", "check it", 113.0)
    assert await said_by_members(store, conversation) == []  # "b" is still pending
    await store.communities.decide(b.id, "reject", "webhook", "spam", 114.0)
    assert await said_by_members(store, conversation) == ["c"]
    # A moderator releases the held one later: it is relayed then, after what followed it.
    await store.communities.decide(
        a.id, "allow", "api", None, 115.0, community_id="sushi", from_states=("held",)
    )
    assert await said_by_members(store, conversation) == ["c", "a"]


async def test_an_allowed_message_whose_author_left_meanwhile_is_rejected(store: Store) -> None:
    conversation, kenji = await moderated_community(store)
    written = [(line_text("U1", text), f"k{i}") for i, text in enumerate(["first", "second"])]
    await store.record_inbound(1, written, nobody, 110.0)
    first, second = await store.communities.claim_moderation(111.0, LEASE, 10)
    await store.communities.decide(second.id, "allow", "webhook", None, 112.0)
    assert await store.communities.act_on_member("sushi", kenji, "remove", nobody, 113.0)
    await store.communities.decide(first.id, "allow", "webhook", None, 114.0)
    assert await said_by_members(store, conversation) == []
    rejected = await store.communities.held("sushi", "rejected", 10)
    assert [(m.id, m.reason) for m in rejected] == [
        (first.id, "the author left the community"),
        (second.id, "the author left the community"),
    ]
