"""Audiences and broadcasts in the store: each function runs inside the caller's transaction.

Where a member's copy goes is decided in gateway/router/broadcasts.py; these steps read the
facts it needs (identities, opt-outs, windows) and persist its answers (docs/broadcasts.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.ids import conversation_id, new_id
from gateway.router.broadcasts import Candidate, ChannelRules, Reach, Skip, SkipReason, reach
from gateway.schema.broadcasts import BroadcastCounts, BroadcastEvent
from gateway.store import writes
from gateway.store.database import Tx
from gateway.store.records import TargetsFor


@dataclass(frozen=True)
class MemberRef:
    """A user, or a bare identity (channel id and provider id)."""

    user_id: str | None = None
    channel_id: str | None = None
    provider_id: str | None = None

    @property
    def key(self) -> str:
        if self.user_id is not None:
            return f"u:{self.user_id}"
        return f"i:{self.channel_id}:{self.provider_id}"


@dataclass(frozen=True)
class AudienceRecord:
    id: str
    owner: str
    name: str | None
    inline: bool
    created_at: float
    size: int


@dataclass(frozen=True)
class AudienceMember:
    seq: int
    member: MemberRef
    added_at: float


@dataclass(frozen=True)
class Added:
    added: int
    already: int
    unknown_users: list[int]  # positions in the list given, of users the owner has not


@dataclass(frozen=True)
class NewBroadcast:
    id: str
    owner: str
    audience_id: str
    content: str  # the content's JSON
    templates: str | None  # JSON {channel id: template}
    metadata: str | None
    schedule_at: float
    expires_at: float | None


@dataclass(frozen=True)
class BroadcastRecord:
    id: str
    owner: str
    audience_id: str
    inline: bool
    state: str  # accepted (being expanded), sending, completed, cancelled
    audience_size: int
    expanded: int
    counts: dict[str, int]
    schedule_at: float
    expires_at: float | None
    created_at: float
    finished_at: float | None


@dataclass(frozen=True)
class MemberOutcome:
    position: int
    user_id: str | None
    channel_id: str | None
    provider_id: str | None
    state: str
    reason: str | None
    message_id: str | None


@dataclass(frozen=True)
class Expanded:
    broadcast_id: str
    channels: set[str]  # lanes with new sends
    done: bool


class BroadcastConflict(Exception):
    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.code, self.field, self.message = code, field, message


# --- audiences -----------------------------------------------------------------------


def create_audience(
    tx: Tx, audience_id: str, owner: str, name: str | None, inline: bool, now: float
) -> None:
    tx.execute(
        "INSERT INTO audiences (id, owner, name, inline, created_at) VALUES (?, ?, ?, ?, ?)",
        (audience_id, owner, name, int(inline), now),
    )


def get_audience(tx: Tx, audience_id: str) -> AudienceRecord | None:
    row = tx.one(
        "SELECT id, owner, name, inline, created_at FROM audiences WHERE id = ?", (audience_id,)
    )
    if row is None:
        return None
    size = tx.one("SELECT COUNT(*) FROM audience_members WHERE audience_id = ?", (audience_id,))
    return AudienceRecord(row[0], row[1], row[2], bool(row[3]), float(row[4]), int(size[0]))


def add_members(
    tx: Tx, audience_id: str, owner: str, members: Sequence[MemberRef], now: float
) -> Added:
    """Add what is new; a user the owner did not create (or none at all) is not added."""
    user_ids = [m.user_id for m in members if m.user_id is not None]
    known = {
        r[0]
        for r in tx.all(
            "SELECT id FROM users WHERE owner = ? AND id IN " + writes.in_list(user_ids),
            (owner, *user_ids),
        )
    } if user_ids else set()  # fmt: skip
    added = already = 0
    unknown: list[int] = []
    for position, member in enumerate(members):
        if member.user_id is not None and member.user_id not in known:
            unknown.append(position)
            continue
        inserted = tx.execute(
            "INSERT INTO audience_members (audience_id, member_key, user_id, channel_id,"
            " provider_id, added_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (audience_id, member.key, member.user_id, member.channel_id, member.provider_id, now),
        )
        added, already = (added + 1, already) if inserted else (added, already + 1)
    return Added(added, already, unknown)


def strictly(added: Added) -> Added:
    """`added`, unless it left a user out: then BroadcastConflict naming the first."""
    if added.unknown_users:
        field = f"members[{added.unknown_users[0]}].user_id"
        raise BroadcastConflict("user_not_found", field, "no user of this API key has this id")
    return added


def remove_member(tx: Tx, audience_id: str, member: MemberRef) -> bool:
    removed = tx.execute(
        "DELETE FROM audience_members WHERE audience_id = ? AND member_key = ?",
        (audience_id, member.key),
    )
    return removed > 0


def members(
    tx: Tx, audience_id: str, after: int, limit: int, upto: int | None = None
) -> list[AudienceMember]:
    bound, params = ("", ()) if upto is None else (" AND seq <= ?", (upto,))
    rows = tx.all(
        "SELECT seq, user_id, channel_id, provider_id, added_at FROM audience_members"
        " WHERE audience_id = ? AND seq > ?" + bound + " ORDER BY seq LIMIT ?",
        (audience_id, after, *params, limit),
    )
    return [AudienceMember(int(r[0]), MemberRef(r[1], r[2], r[3]), float(r[4])) for r in rows]


# --- broadcasts ----------------------------------------------------------------------


def create_broadcast(tx: Tx, new: NewBroadcast, now: float) -> int:
    """Accept the broadcast to the audience's members as they are now; their count."""
    row = tx.one(
        "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM audience_members WHERE audience_id = ?",
        (new.audience_id,),
    )
    size, upto = int(row[0]), int(row[1])
    if size == 0:
        raise BroadcastConflict("empty_audience", "group_id", "the audience has no members")
    tx.execute(
        "INSERT INTO broadcasts (id, owner, audience_id, audience_upto, content, templates,"
        " metadata, state, schedule_at, expires_at, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?)",
        (
            new.id,
            new.owner,
            new.audience_id,
            upto,
            new.content,
            new.templates,
            new.metadata,
            new.schedule_at,
            new.expires_at,
            now,
        ),
    )
    return size


_BROADCAST = (
    "SELECT b.id, b.owner, b.audience_id, a.inline, b.state, b.audience_upto, b.schedule_at,"
    " b.expires_at, b.created_at, b.finished_at FROM broadcasts b"
    " JOIN audiences a ON a.id = b.audience_id WHERE b.id = ?"
)


def get_broadcast(tx: Tx, broadcast_id: str) -> BroadcastRecord | None:
    row = tx.one(_BROADCAST, (broadcast_id,))
    if row is None:
        return None
    size = tx.one(
        "SELECT COUNT(*) FROM audience_members WHERE audience_id = ? AND seq <= ?",
        (row[2], row[5]),
    )
    counts = count_states(tx, broadcast_id)
    return BroadcastRecord(
        id=row[0],
        owner=row[1],
        audience_id=row[2],
        inline=bool(row[3]),
        state=row[4],
        audience_size=int(size[0]),
        expanded=sum(counts.values()),
        counts=counts,
        schedule_at=float(row[6]),
        expires_at=writes.optional_float(row[7]),
        created_at=float(row[8]),
        finished_at=writes.optional_float(row[9]),
    )


_MEMBER_STATE = (
    "CASE WHEN bm.skip_reason IN ('cancelled', 'expired') THEN bm.skip_reason"
    " WHEN bm.skip_reason IS NOT NULL THEN 'skipped' ELSE COALESCE(m.state, 'failed') END"
)


def count_states(tx: Tx, broadcast_id: str) -> dict[str, int]:
    rows = tx.all(
        f"SELECT {_MEMBER_STATE}, COUNT(*) FROM broadcast_members bm"
        " LEFT JOIN messages m ON m.id = bm.message_id WHERE bm.broadcast_id = ? GROUP BY 1",
        (broadcast_id,),
    )
    return {r[0]: int(r[1]) for r in rows}


def outcomes(tx: Tx, broadcast_id: str, after: int, limit: int) -> list[MemberOutcome]:
    rows = tx.all(
        f"SELECT bm.position, bm.user_id, bm.channel_id, bm.provider_id, {_MEMBER_STATE},"
        " bm.skip_reason, bm.message_id FROM broadcast_members bm"
        " LEFT JOIN messages m ON m.id = bm.message_id"
        " WHERE bm.broadcast_id = ? AND bm.position > ? ORDER BY bm.position LIMIT ?",
        (broadcast_id, after, limit),
    )
    return [MemberOutcome(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


def _candidates(
    tx: Tx, batch: Sequence[AudienceMember]
) -> dict[int, tuple[str, str | None, list[tuple[str, str]]]]:
    """Per audience seq: the member's key (a user's, for an identity a user holds), their
    user id, and their identities (channel id, provider id) in link order."""
    user_ids = [m.member.user_id for m in batch if m.member.user_id]
    survivors: dict[str, str] = {}
    if user_ids:
        for uid, merged_into in tx.all(
            "SELECT id, merged_into FROM users WHERE id IN " + writes.in_list(user_ids), user_ids
        ):
            survivors[uid] = merged_into or uid
    bare = [m.member.provider_id for m in batch if m.member.user_id is None]
    holders: dict[tuple[str, str], str] = {}
    if bare:
        for channel_id, provider_id, uid in tx.all(
            "SELECT channel_id, provider_id, user_id FROM identities WHERE provider_id IN "
            + writes.in_list(bare),
            bare,
        ):
            holders[(channel_id, provider_id)] = uid
    linked: dict[str, list[tuple[str, str]]] = {}
    wanted = sorted(set(survivors.values()))
    if wanted:
        for uid, channel_id, provider_id in tx.all(
            "SELECT user_id, channel_id, provider_id FROM identities WHERE user_id IN "
            + writes.in_list(wanted)
            + " ORDER BY linked_at, channel_id, provider_id",
            wanted,
        ):
            linked.setdefault(uid, []).append((channel_id, provider_id))
    found: dict[int, tuple[str, str | None, list[tuple[str, str]]]] = {}
    for m in batch:
        ref = m.member
        if ref.user_id is not None:
            uid = survivors.get(ref.user_id)
            found[m.seq] = (f"u:{uid or ref.user_id}", uid, linked.get(uid or "", []))
        else:
            identity = (ref.channel_id or "", ref.provider_id or "")
            holder = holders.get(identity)
            found[m.seq] = (f"u:{holder}" if holder else ref.key, holder, [identity])
    return found


def _contacts(
    tx: Tx, identities: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[float | None, bool]]:
    ids = sorted({p for _c, p in identities})
    if not ids:
        return {}
    return {
        (r[0], r[1]): (writes.optional_float(r[2]), r[3] is not None)
        for r in tx.all(
            "SELECT channel_id, user_id, last_inbound_at, unsubscribed_at FROM contacts"
            " WHERE user_id IN " + writes.in_list(ids),
            ids,
        )
        if (r[0], r[1]) in identities
    }


def expand(
    tx: Tx,
    now: float,
    batch_size: int,
    channels: Mapping[str, ChannelRules],
) -> Expanded | None:
    """Queue the next batch of members of the oldest broadcast due: each a bulk send, or a
    recorded skip; the batch and the broadcast's progress commit together."""
    row = tx.one(
        "SELECT id, owner, audience_id, audience_upto, content, templates, metadata,"
        " expanded_upto, expires_at FROM broadcasts WHERE state = 'accepted'"
        " AND schedule_at <= ? ORDER BY schedule_at, id LIMIT 1",
        (now,),
    )
    if row is None:
        return None
    bid, owner, audience_id, upto, content, templates_json, metadata = row[:7]
    if not _locked(tx, bid):
        return None
    batch = members(tx, audience_id, int(row[7]), batch_size, int(upto))
    templates = json.loads(templates_json) if templates_json else {}
    expired = row[8] is not None and now > float(row[8])
    found = _candidates(tx, batch)
    facts = _contacts(tx, {i for _k, _u, ids in found.values() for i in ids})
    digest = hashlib.sha256(content.encode()).hexdigest()
    rows = [
        _member_row(member.seq, *found[member.seq], facts, channels, templates, expired, now)
        for member in batch
    ]
    kept = _record_members(tx, bid, rows)
    sends = [r for r in kept if r.message_id is not None]
    _queue(tx, sends, content, metadata, owner, digest, templates, now)
    touched = {r.identity[0] for r in sends if r.identity[0] is not None}
    done = _record_progress(tx, bid, batch, batch_size, int(row[7]), now)
    return Expanded(bid, touched, done)


def _locked(tx: Tx, broadcast_id: str) -> bool:
    """Whether this transaction may expand the broadcast: two processes would expand one
    batch twice. A store without advisory locks (SQLite) has one writer."""
    if tx.dialect.try_lock is None:
        return True
    locked = tx.one(tx.dialect.try_lock, (f"broadcast:{broadcast_id}",))
    return bool(locked and locked[0])


def _member_row(
    position: int,
    key: str,
    user_id: str | None,
    identities: list[tuple[str, str]],
    facts: Mapping[tuple[str, str], tuple[float | None, bool]],
    channels: Mapping[str, ChannelRules],
    templates: Mapping[str, object],
    expired: bool,
    now: float,
) -> _MemberRow:
    """A member's outcome: the identity a send to them goes to, or why they are skipped."""
    decision: Reach | Skip = Skip("expired") if expired else reach(
        [Candidate(c, p, *facts.get((c, p), (None, False))) for c, p in identities],
        channels,
        frozenset(templates),
        now,
    )  # fmt: skip
    if isinstance(decision, Skip):
        first = identities[0] if identities else (None, None)
        return _MemberRow(position, key, user_id, first, None, decision.reason)
    target = (decision.channel_id, decision.provider_id)
    return _MemberRow(position, key, user_id, target, new_id("msg"), None)


def _record_progress(
    tx: Tx,
    broadcast_id: str,
    batch: Sequence[AudienceMember],
    batch_size: int,
    expanded_upto: int,
    now: float,
) -> bool:
    """Move the broadcast past the batch; True when it was the last (a short batch), and
    the broadcast is then sending."""
    done = len(batch) < batch_size
    last = batch[-1].seq if batch else expanded_upto
    tx.execute(
        "UPDATE broadcasts SET expanded_upto = ?, state = ?, expanded_at = ? WHERE id = ?",
        (last, "sending" if done else "accepted", now if done else None, broadcast_id),
    )
    return done


@dataclass(frozen=True)
class _MemberRow:
    position: int
    key: str
    user_id: str | None
    identity: tuple[str | None, str | None]
    message_id: str | None
    reason: SkipReason | None


def _record_members(tx: Tx, broadcast_id: str, rows: list[_MemberRow]) -> list[_MemberRow]:
    """Insert the members' outcomes in one statement; those new to the broadcast (a person
    listed twice, or already expanded before a crash, is kept once), in order."""
    unique = list({r.key: r for r in reversed(rows)}.values())[::-1]  # the first of each key
    if not unique:
        return []
    params = [
        value
        for r in unique
        for value in (
            broadcast_id,
            r.position,
            r.key,
            r.user_id,
            *r.identity,
            r.message_id,
            r.reason,
        )
    ]
    inserted = {
        row[0]
        for row in tx.all(
            "INSERT INTO broadcast_members (broadcast_id, position, member_key, user_id,"
            " channel_id, provider_id, message_id, skip_reason) VALUES "
            + writes.values(len(unique), 8)
            + " ON CONFLICT DO NOTHING RETURNING member_key",
            params,
        )
    }
    return [r for r in unique if r.key in inserted]


def _queue(
    tx: Tx,
    sends: list[_MemberRow],
    content: str,
    metadata: str | None,
    owner: str,
    digest: str,
    templates: Mapping[str, object],
    now: float,
) -> None:
    """A bulk message per member, as writes.insert_message makes one, in a statement per table
    rather than five per member (PostgreSQL pays a round trip for each). Each recipient's
    line of sends keeps its order by id in the claim (writes.FIRST_IN_LINE)."""
    if not sends:
        return
    people = [(r.identity[0] or "", r.identity[1] or "") for r in sends]
    tx.execute(
        "INSERT INTO contacts (channel_id, user_id, conversation_id, created_at) VALUES "
        + writes.values(len(people), 4)
        + " ON CONFLICT (channel_id, user_id) DO NOTHING",
        [v for c, p in people for v in (c, p, conversation_id(c, p), now)],
    )
    messages = []
    for r, (channel, recipient) in zip(sends, people, strict=True):
        template = templates.get(channel)
        options = json.dumps({"template": template}) if template else None
        messages += [r.message_id, channel, recipient, conversation_id(channel, recipient),
                     content, metadata, options, owner, digest, now, now]  # fmt: skip
    tx.execute(
        "INSERT INTO messages (id, channel_id, recipient_id, conversation_id, content, metadata,"
        " options, state, api_key, request_hash, created_at, updated_at) VALUES "
        + ",".join(["(?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)"] * len(sends)),
        messages,
    )
    tx.execute(
        "INSERT INTO message_history (message_id, at, state) VALUES "
        + ",".join(["(?, ?, 'queued')"] * len(sends)),
        [v for r in sends for v in (r.message_id, now)],
    )
    tx.execute(
        "INSERT INTO outbox (kind, target, ref, status, next_attempt_at, created_at, recipient,"
        " priority) VALUES " + ",".join(["('send', ?, ?, 'pending', ?, ?, ?, ?)"] * len(sends)),
        [v for r, (c, p) in zip(sends, people, strict=True)
         for v in (c, r.message_id, now, now, p, writes.BULK)],
    )  # fmt: skip


def _stop_sends(tx: Tx, where: str, params: Sequence[object], reason: str, now: float) -> int:
    """Take the queued, unclaimed sends of the members `where` selects (rows `bm`) out of the
    outbox: their messages fail with `reason`, and their members say so."""
    found = tx.all(
        "SELECT bm.broadcast_id, bm.member_key, o.id, m.id FROM broadcast_members bm"
        " JOIN messages m ON m.id = bm.message_id JOIN outbox o ON o.ref = m.id"
        " WHERE m.state = 'queued' AND o.kind = 'send' AND o.status = 'pending'"
        " AND (o.claimed_until IS NULL OR o.claimed_until < ?) AND " + where,
        (now, *params),
    )
    error = json.dumps({"code": reason, "title": f"broadcast {reason}", "retryable": False})
    for broadcast_id, member_key, outbox_id, message_id in found:
        writes.finish_outbox(tx, [outbox_id], "done", now)
        tx.execute(
            "UPDATE messages SET state = 'failed', error = ?, updated_at = ? WHERE id = ?",
            (error, now, message_id),
        )
        writes.history(tx, message_id, now, "failed", f"{reason}: broadcast {reason}")
        tx.execute(
            "UPDATE broadcast_members SET skip_reason = ? WHERE broadcast_id = ? AND member_key = ?",
            (reason, broadcast_id, member_key),
        )
    return len(found)


def cancel(tx: Tx, broadcast_id: str, now: float) -> bool:
    """Stop what has not left: members not expanded yet are never queued, queued sends not
    claimed are taken out. Those claimed right now are checked just before they go (`why_not_send`).
    False when it had ended already."""
    changed = tx.execute(
        "UPDATE broadcasts SET state = 'cancelled', finished_at = NULL"
        " WHERE id = ? AND state IN ('accepted', 'sending')",
        (broadcast_id,),
    )
    if changed:
        _stop_sends(tx, "bm.broadcast_id = ?", (broadcast_id,), "cancelled", now)
    return changed > 0


def why_not_send(tx: Tx, message_id: str, now: float) -> tuple[str, str, str] | None:
    """Why a bulk send may not go any more (its broadcast cancelled, or past its ttl), with
    the broadcast and the member: None when it may go. One read."""
    row = tx.one(
        "SELECT b.state, b.expires_at, bm.member_key, b.id FROM broadcast_members bm"
        " JOIN broadcasts b ON b.id = bm.broadcast_id WHERE bm.message_id = ?",
        (message_id,),
    )
    if row is None:
        return None
    if row[0] == "cancelled":
        return "cancelled", row[3], row[2]
    if row[1] is not None and now > float(row[1]):
        return "expired", row[3], row[2]
    return None


def withdraw(tx: Tx, outbox_id: int, why: tuple[str, str, str], now: float) -> None:
    """Take a claimed bulk send out, as `_stop_sends` does (its claimer releases it here)."""
    reason, broadcast_id, member_key = why
    writes.set_lease(tx, [outbox_id], None)
    where = "bm.broadcast_id = ? AND bm.member_key = ?"
    _stop_sends(tx, where, (broadcast_id, member_key), reason, now)


def finish(tx: Tx, targets_for: TargetsFor, now: float, limit: int = 20) -> list[str]:
    """Broadcasts with nothing left queued: marked finished, `broadcast.completed` emitted."""
    rows = tx.all(
        "SELECT id, state FROM broadcasts WHERE finished_at IS NULL"
        " AND (state IN ('sending', 'cancelled')) ORDER BY created_at LIMIT ?",
        (limit,),
    )
    ended = []
    for bid, state in rows:
        waiting = tx.one(
            "SELECT 1 FROM broadcast_members bm JOIN messages m ON m.id = bm.message_id"
            " WHERE bm.broadcast_id = ? AND m.state = 'queued' LIMIT 1",
            (bid,),
        )
        if waiting is not None:
            continue
        tx.execute(
            "UPDATE broadcasts SET state = ?, finished_at = ? WHERE id = ?",
            ("cancelled" if state == "cancelled" else "completed", now, bid),
        )
        event = BroadcastEvent(
            id=new_id("evt"),
            type="broadcast.completed",
            timestamp=datetime.fromtimestamp(now, UTC),
            broadcast_id=bid,
            cancelled=state == "cancelled",
            counts=BroadcastCounts(**count_states(tx, bid)),
        )
        writes.emit_channelless(tx, event, "", "broadcast", targets_for, now)
        ended.append(bid)
    return ended
