"""Whether a community member's message is relayed: the gate (mute, rate limit, moderation
webhook) and the moderation queue. Each function runs inside the caller's transaction; the
decisions are gateway/router/communities.py's (docs/communities.md, "Moderation").

A message the webhook must see is kept in `community_moderation` as `pending`, in the
transaction of its event: the webhook is asked by a worker (gateway/pipeline/moderation.py),
never on the inbound path, so a slow webhook delays no one else. A process that dies while
asking leaves the row leased; once the lease ends, another asks again, under the same id.
An allowed message stays `allowed` until every message written before it in the community is
decided, then is `relayed`: the others read them in the order they were written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.ids import new_id
from gateway.router.communities import Bucket, Verdict, gate, minutes_left, should_tell
from gateway.router.conversations import Announcements, Membership
from gateway.schema import CONTENT_ADAPTER, Content, Event, ParticipantRef
from gateway.schema.communities import ModerationSettings
from gateway.store import communities, relay, writes
from gateway.store.database import Tx

_MEMBER = (
    "SELECT muted_until, mute_reason, tokens, tokens_at, told_at FROM community_members"
    " WHERE participant_id = ?"
)


def admits(tx: Tx, event: Event, membership: Membership, now: float) -> bool:
    """Whether a member's message is relayed now. One query for a conversation that is not a
    community's. Refused: the member is told why (at most once a minute); for the moderation
    webhook: kept pending, relayed once it allows it."""
    community = communities.of_conversation(tx, membership.seat.conversation_id)
    if community is None:
        return True
    author = membership.seat
    row = tx.one(_MEMBER + tx.dialect.for_update, (author.id,))
    if row is None:  # seated through the conversations API: a member with a full bucket
        per_minute = community.settings.rate_limit_per_minute or 0
        row = (None, None, float(per_minute), now, None)
        tx.execute(
            "INSERT INTO community_members (participant_id, community_id, tokens, tokens_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (author.id, community.id, row[2], now),
        )
    muted_until, mute_reason, tokens, tokens_at, told_at = row
    settings = community.settings
    decision, bucket = gate(
        muted_until=writes.optional_float(muted_until),
        bucket=Bucket(float(tokens), float(tokens_at)),
        per_minute=settings.rate_limit_per_minute,
        moderated=settings.moderation is not None,
        now=now,
    )
    told = writes.optional_float(told_at)
    if decision in ("muted", "rate_limited") and should_tell(told, now):
        values: dict[str, object] = {"limit": settings.rate_limit_per_minute or 0}
        if decision == "muted":
            values |= {"minutes": minutes_left(float(muted_until), now), "reason": mute_reason}
        communities.tell_seat(tx, community, author, decision, now, **values)
        told = now
    tx.execute(
        "UPDATE community_members SET tokens = ?, tokens_at = ?, told_at = ?"
        " WHERE participant_id = ?",
        (bucket.tokens, bucket.at, told, author.id),
    )
    if decision == "moderate" and event.message is not None:
        _keep_pending(tx, community.id, author.id, event, event.message.content, now)
    return decision == "relay"


def _keep_pending(
    tx: Tx, community_id: str, author_id: str, event: Event, content: Content, now: float
) -> None:
    # Strictly after the community's last message: messages are relayed in this order, and
    # two that one batch stores at the same `now` would otherwise be ordered by their ids,
    # which are random within a millisecond.
    last = tx.one(
        "SELECT MAX(created_at) FROM community_moderation WHERE community_id = ?",
        (community_id,),
    )
    written = max(now, float(last[0]) + 1e-6) if last and last[0] is not None else now
    tx.execute(
        "INSERT INTO community_moderation (id, community_id, participant_id, event_id,"
        " source_channel, content, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        (
            new_id("mod"),
            community_id,
            author_id,
            event.id,
            event.channel.id,
            content.model_dump_json(exclude_none=True),
            written,
        ),
    )


@dataclass(frozen=True)
class ModerationItem:
    """A pending message to ask a community's moderation webhook about."""

    id: str
    community_id: str
    community_name: str
    settings: ModerationSettings | None  # None: the community dropped its webhook meanwhile
    author: ParticipantRef
    content: Content
    created_at: float


@dataclass(frozen=True)
class HeldRecord:
    id: str
    author: ParticipantRef
    content: Content
    state: str
    reason: str | None
    decided_by: str | None
    created_at: float
    decided_at: float | None


def claim(tx: Tx, now: float, lease: float, limit: int) -> list[ModerationItem]:
    """Lease up to `limit` pending messages, oldest first, to ask the webhook about."""
    rows = tx.all(
        "UPDATE community_moderation SET claimed_until = ?, attempts = attempts + 1"
        " WHERE id IN (SELECT id FROM community_moderation WHERE state = 'pending'"
        " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY created_at, id LIMIT ?"
        + tx.dialect.skip_locked
        + ") RETURNING id, community_id, participant_id, content, created_at",
        (now + lease, now, limit),
    )
    items = []
    for moderation_id, community_id, participant_id, content, created_at in rows:
        community = communities.load(tx, community_id)
        author = relay.copy_participant(tx, participant_id)
        if community is None or author is None:
            continue
        items.append(
            ModerationItem(
                moderation_id,
                community_id,
                community.settings.name,
                community.settings.moderation,
                author,
                CONTENT_ADAPTER.validate_json(content),
                float(created_at),
            )
        )
    return sorted(items, key=lambda i: (i.created_at, i.id))


def release_claims(tx: Tx) -> None:
    """Forget every lease (one process owns an SQLite store: none is under way at start)."""
    tx.execute("UPDATE community_moderation SET claimed_until = NULL WHERE state = 'pending'")


def decide(
    tx: Tx,
    moderation_id: str,
    verdict: Verdict,
    decided_by: str,
    reason: str | None,
    announcements: Announcements,
    now: float,
    *,
    community_id: str | None = None,
    from_states: Sequence[str] = ("pending",),
) -> HeldRecord | None:
    """Apply a verdict: allow relays the message (if its author is still present) once every
    message written before it in the community is decided, hold keeps it for the API, reject
    drops it and tells the author. None when there is no such message (in `community_id`,
    when given) or it is no longer in one of `from_states` (an agent decided first, or the
    webhook did)."""
    found = tx.one("SELECT community_id FROM community_moderation WHERE id = ?", (moderation_id,))
    if found is None or (community_id is not None and found[0] != community_id):
        return None
    # One decision at a time per community (its row locked on PostgreSQL till commit): whoever
    # decides the last message written before an allowed one sees it, and relays it.
    tx.one("SELECT id FROM communities WHERE id = ?" + tx.dialect.for_update, (found[0],))
    community = communities.load(tx, found[0])
    assert community is not None
    row = tx.one(
        "SELECT participant_id, state FROM community_moderation WHERE id = ?"
        + tx.dialect.for_update,
        (moderation_id,),
    )
    if row is None or row[1] not in from_states:
        return None
    outcome = {"allow": "allowed", "hold": "held", "reject": "rejected"}[verdict]
    author = communities.seat(tx, community, row[0])
    if outcome != "allowed" and author is not None:
        communities.tell_seat(tx, community, author, outcome, now, reason=reason)
    tx.execute(
        "UPDATE community_moderation SET state = ?, decided_at = ?, decided_by = ?, reason = ?,"
        " claimed_until = NULL WHERE id = ?",
        (outcome, now, decided_by, reason, moderation_id),
    )
    _relay_in_order(tx, community, announcements, now)
    return held(tx, community.id, None, 1, moderation_id)[0]


def _relay_in_order(
    tx: Tx, community: communities.CommunityRecord, announcements: Announcements, now: float
) -> None:
    """Relay the allowed messages, oldest first, up to the first one still pending: the
    others read them in the order they were written, however the webhook's answers arrive."""
    rows = tx.all(
        "SELECT id, participant_id, event_id, source_channel, content, state"
        " FROM community_moderation WHERE community_id = ? AND state IN ('pending', 'allowed')"
        " ORDER BY created_at, id",
        (community.id,),
    )
    for moderation_id, participant_id, event_id, source_channel, content, state in rows:
        if state == "pending":
            return
        author = communities.seat(tx, community, participant_id)
        if author is None:
            tx.execute(
                "UPDATE community_moderation SET state = 'rejected',"
                " reason = COALESCE(reason, 'the author left the community') WHERE id = ?",
                (moderation_id,),
            )
            continue
        message = CONTENT_ADAPTER.validate_json(content)
        relay.relay_message(tx, author, message, event_id, source_channel, now, announcements)
        tx.execute(
            "UPDATE community_moderation SET state = 'relayed' WHERE id = ?", (moderation_id,)
        )


def held(
    tx: Tx,
    community_id: str,
    state: str | None,
    limit: int,
    moderation_id: str | None = None,
) -> list[HeldRecord]:
    """A community's moderated messages, oldest first: in `state` when given."""
    where, params = "m.community_id = ?", [community_id]
    if state is not None:
        where, params = where + " AND m.state = ?", [*params, state]
    if moderation_id is not None:
        where, params = where + " AND m.id = ?", [*params, moderation_id]
    rows = tx.all(
        "SELECT m.id, p.id, p.role, p.display_name, p.user_id, m.content, m.state, m.reason,"
        " m.decided_by, m.created_at, m.decided_at FROM community_moderation m"
        " JOIN participants p ON p.id = m.participant_id WHERE "
        + where
        + " ORDER BY m.created_at, m.id LIMIT ?",
        (*params, limit),
    )
    return [_held(r) for r in rows]


def _held(r: Sequence[Any]) -> HeldRecord:
    return HeldRecord(
        r[0],
        relay.participant_ref(r[1:5]),
        CONTENT_ADAPTER.validate_json(r[5]),
        r[6],
        r[7],
        r[8],
        float(r[9]),
        writes.optional_float(r[10]),
    )


def request_body(item: ModerationItem, timestamp: str) -> bytes:
    """What the webhook is posted: the message and its author's display name, no address."""
    return json.dumps(
        {
            "type": "community.moderation",
            "id": item.id,
            "community": {"id": item.community_id, "name": item.community_name},
            "author": item.author.model_dump(exclude_none=True),
            "content": item.content.model_dump(mode="json", exclude_none=True),
            "timestamp": timestamp,
        },
        separators=(",", ":"),
    ).encode()
