"""The store's community operations, on SQLite and PostgreSQL (docs/communities.md)."""

from __future__ import annotations

import pytest

from gateway.schema.communities import CommunitySettings
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
