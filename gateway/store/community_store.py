"""The store contract's community operations, one transaction each (docs/communities.md):
`Store.communities`. The steps are in store/communities.py and store/moderation.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from gateway.router.communities import Verdict
from gateway.schema.communities import CommunitySettings
from gateway.store import communities, conversations, moderation
from gateway.store.communities import CommunityRecord, Joining
from gateway.store.database import Tx
from gateway.store.records import TargetsFor

if TYPE_CHECKING:
    from gateway.router.conversations import Seat
    from gateway.store.store import Store

T = TypeVar("T")


@dataclass(frozen=True)
class MemberRecord:
    seat: Seat
    language: str | None
    joined_at: float
    left_at: float | None
    muted_until: float | None


class CommunityStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def _run(self, op: Callable[[Tx], T]) -> T:
        return await self.store.db.run(op)

    async def save(
        self,
        community_id: str,
        owner: str,
        settings: CommunitySettings,
        targets_for: TargetsFor,
        now: float,
        *,
        configured: bool = False,
    ) -> CommunityRecord:
        """Create or replace; raises ConversationConflict for a keyword already taken."""
        return await self._run(
            lambda tx: communities.save(
                tx, community_id, owner, settings, targets_for, now, configured=configured
            )
        )

    async def get(self, community_id: str) -> CommunityRecord | None:
        return await self._run(lambda tx: communities.load(tx, community_id))

    async def page(
        self, owner: str | None, limit: int, after: str | None = None
    ) -> list[CommunityRecord]:
        return await self._run(lambda tx: communities.page(tx, owner, limit, after))

    async def join(
        self, community_id: str, joining: Joining, targets_for: TargetsFor, now: float
    ) -> Seat | None:
        """The new member; None when there is no such community. Raises ConversationConflict
        (banned, present already, name taken, unknown user)."""

        def op(tx: Tx) -> Seat | None:
            community = communities.load(tx, community_id)
            if community is None:
                return None
            announcements = self.store.announcements
            return communities.join(tx, community, joining, targets_for, announcements, now)

        return await self._run(op)

    async def act_on_member(
        self,
        community_id: str,
        participant_id: str,
        action: str,
        targets_for: TargetsFor,
        now: float,
        *,
        reason: str | None = None,
        until: float | None = None,
    ) -> bool | None:
        """`remove`, `ban` or `mute` (until `until`) a present member. None: no such community;
        False: no such member present."""

        def op(tx: Tx) -> bool | None:
            community = communities.load(tx, community_id)
            if community is None:
                return None
            seat = communities.seat(tx, community, participant_id)
            if seat is None:
                return False
            announcements = self.store.announcements
            if action == "ban":
                communities.ban(tx, community, seat, reason, targets_for, announcements, now)
            elif action == "remove":
                communities.leave(
                    tx, community, seat, "removed", targets_for, announcements, now, reason
                )
            else:
                communities.mute(tx, seat, until, reason)
            return True

        return await self._run(op)

    async def members(self, community_id: str, limit: int) -> list[MemberRecord]:
        """Members present, by when they joined."""

        def op(tx: Tx) -> list[MemberRecord]:
            rows = tx.all(
                "SELECT p.id, p.conversation_id, p.channel_id, p.provider_id, p.role,"
                " p.display_name, p.user_id, p.joined_at, p.left_at, p.observer, p.via_group,"
                " m.language, m.muted_until FROM communities c JOIN participants p"
                " ON p.conversation_id = c.conversation_id LEFT JOIN community_members m"
                " ON m.participant_id = p.id WHERE c.id = ? AND p.left_at IS NULL"
                " ORDER BY p.joined_at, p.id LIMIT ?",
                (community_id, limit),
            )
            return [_member(r) for r in rows]

        return await self._run(op)

    async def held(
        self, community_id: str, state: str | None, limit: int
    ) -> list[moderation.HeldRecord]:
        return await self._run(lambda tx: moderation.held(tx, community_id, state, limit))

    async def claim_moderation(
        self, now: float, lease: float, limit: int
    ) -> list[moderation.ModerationItem]:
        return await self._run(lambda tx: moderation.claim(tx, now, lease, limit))

    async def release_claims(self) -> None:
        await self._run(moderation.release_claims)

    async def decide(
        self,
        moderation_id: str,
        verdict: Verdict,
        decided_by: str,
        reason: str | None,
        now: float,
        *,
        community_id: str | None = None,
        from_states: tuple[str, ...] = ("pending",),
    ) -> moderation.HeldRecord | None:
        """Apply a verdict (see store/moderation.decide); None when it is decided already."""
        return await self._run(
            lambda tx: moderation.decide(
                tx,
                moderation_id,
                verdict,
                decided_by,
                reason,
                self.store.announcements,
                now,
                community_id=community_id,
                from_states=from_states,
            )
        )


def _member(row: tuple[object, ...]) -> MemberRecord:
    record = conversations._participant(row[:11])
    muted = row[12]
    return MemberRecord(
        record.seat,
        row[11] if isinstance(row[11], str) else None,
        record.joined_at,
        record.left_at,
        float(muted) if isinstance(muted, int | float) else None,
    )
