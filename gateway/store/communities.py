"""Communities in the store: their settings and keywords, and members joining, leaving, being
renamed, removed, banned and muted. Each function runs inside the caller's transaction; the
decisions are gateway/router/communities.py's (docs/communities.md).

A community is a relay conversation (store/conversations.py): a member is a participant of it
with role `member`, their presence is the participant's, and what they say is relayed by
store/relay.py, through the gate of store/moderation.py.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.ids import new_id
from gateway.logs import get_logger
from gateway.router.communities import (
    KeywordHit,
    KeywordRow,
    candidate_phrases,
    given_name,
    in_language,
    keyword_hits,
    name_taken,
    notice,
    phrase,
)
from gateway.router.conversations import Announcements, Seat, provider_group
from gateway.schema import Event
from gateway.schema.communities import CommunitySettings
from gateway.schema.content import TextContent
from gateway.store import conversations, relay, writes
from gateway.store.database import Tx
from gateway.store.records import NewMessage, PreparedEvent, TargetsFor

log = get_logger("gateway.communities")

ROLE = "member"
# The owner of nothing: notices are the community owner's messages, marked by this hash.
NOTICE_HASH = "community"


@dataclass(frozen=True)
class CommunityRecord:
    id: str
    owner: str
    conversation_id: str
    settings: CommunitySettings
    configured: bool
    created_at: float
    updated_at: float
    members: int = 0

    def keyword(self, action: str, language: str | None) -> str:
        """The first `action` keyword in `language` (else any language): what notices name."""
        sets = self.settings.keywords
        ordered = [sets[language]] if language in sets else []
        for found in [*ordered, *sets.values()]:
            texts = getattr(found, action)
            if texts:
                return str(texts[0])
        return ""


_COMMUNITY = (
    "SELECT c.id, c.owner, c.conversation_id, c.settings, c.configured, c.created_at,"
    " c.updated_at, (SELECT COUNT(*) FROM participants p WHERE p.conversation_id ="
    " c.conversation_id AND p.left_at IS NULL) FROM communities c"
)


def _record(row: Sequence[Any]) -> CommunityRecord:
    return CommunityRecord(
        row[0],
        row[1],
        row[2],
        CommunitySettings.model_validate(json.loads(row[3])),
        bool(row[4]),
        float(row[5]),
        float(row[6]),
        int(row[7]),
    )


def load(tx: Tx, community_id: str) -> CommunityRecord | None:
    row = tx.one(_COMMUNITY + " WHERE c.id = ?", (community_id,))
    return _record(row) if row is not None else None


def of_conversation(tx: Tx, conversation_id: str) -> CommunityRecord | None:
    """The community whose conversation this is; None for any other conversation."""
    row = tx.one(_COMMUNITY + " WHERE c.conversation_id = ?", (conversation_id,))
    return _record(row) if row is not None else None


def page(tx: Tx, owner: str | None, limit: int, after: str | None = None) -> list[CommunityRecord]:
    """Up to `limit` communities of `owner` (every owner's when None), by id."""
    where, params = ["1 = 1"], []
    if owner is not None:
        where.append("c.owner = ?")
        params.append(owner)
    if after is not None:
        where.append("c.id > ?")
        params.append(after)
    rows = tx.all(
        _COMMUNITY + " WHERE " + " AND ".join(where) + " ORDER BY c.id LIMIT ?",
        (*params, limit),
    )
    return [_record(r) for r in rows]


def _keyword_rows(settings: CommunitySettings) -> list[tuple[str, KeywordRow]]:
    """(field path, row) per keyword, each phrase once. The same phrase given twice for one
    action (in two languages) is kept once; for two actions, it is refused."""
    seen: dict[str, tuple[str, KeywordRow]] = {}
    for language, keyword_set in settings.keywords.items():
        for action in ("join", "leave", "name"):
            for index, text in enumerate(getattr(keyword_set, action)):
                path = f"keywords.{language}.{action}[{index}]"
                row = KeywordRow(phrase(text), "", action, language)
                first = seen.get(row.phrase)
                if first is not None and first[1].action != action:
                    raise conversations.ConversationConflict(
                        422,
                        "keyword_repeated",
                        path,
                        f"{row.phrase!r} is also the {first[1].action} keyword {first[0]}",
                    )
                seen.setdefault(row.phrase, (path, row))
    return list(seen.values())


def save(
    tx: Tx,
    community_id: str,
    owner: str,
    settings: CommunitySettings,
    targets_for: TargetsFor,
    now: float,
    *,
    configured: bool = False,
) -> CommunityRecord:
    """Create the community (and its relay conversation) or replace its settings and keywords.
    Raises ConversationConflict naming the keyword another community holds."""
    rows = _keyword_rows(settings)
    stored = json.dumps(settings.stored())
    existing = load(tx, community_id)
    if existing is None:
        conversation = conversations.create(
            tx,
            new_id("conv"),
            owner,
            "relay",
            json.dumps({"community": {"id": community_id, "name": settings.name}}),
            [],
            targets_for,
            now,
        )
        tx.execute(
            "INSERT INTO communities (id, owner, conversation_id, settings, configured,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (community_id, owner, conversation.id, stored, int(configured), now, now),
        )
    else:
        tx.execute(
            "UPDATE communities SET owner = ?, settings = ?, configured = ?, updated_at = ?"
            " WHERE id = ?",
            (owner, stored, int(configured), now, community_id),
        )
    tx.execute("DELETE FROM community_keywords WHERE community_id = ?", (community_id,))
    for path, row in rows:
        inserted = tx.execute(
            "INSERT INTO community_keywords (phrase, community_id, action, language)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (row.phrase, community_id, row.action, row.language),
        )
        if inserted == 0:  # the unique index decides, atomically
            raise conversations.ConversationConflict(
                409, "keyword_taken", path, f"{row.phrase!r} is another community's keyword"
            )
    saved = load(tx, community_id)
    assert saved is not None
    return saved


_BY_PHRASE = (
    "SELECT phrase, community_id, action, language FROM community_keywords WHERE phrase = ?"
)


def hits(tx: Tx, event: Event) -> list[KeywordHit]:
    """The community keywords an inbound text is: one query (an indexed lookup a candidate
    phrase), and none for a text too long to be one, for anything but text, or for what is
    said in a provider group."""
    if event.type != "message" or event.message is None or event.sender is None:
        return []
    content = event.message.content
    if not isinstance(content, TextContent) or provider_group(event.channel_data) is not None:
        return []
    candidates = candidate_phrases(content.text)
    if not candidates:
        return []
    # A lookup a candidate joined by UNION ALL, not `phrase IN (?,?,?)`: SQLite builds a
    # temporary index of an IN list's values first, which doubled what every text costs
    # (49k against 23k instructions). Sorted, the rows come in the IN query's order.
    rows = tx.all(" UNION ALL ".join([_BY_PHRASE] * len(candidates)), candidates)
    return keyword_hits(content.text, [KeywordRow(*r) for r in sorted(rows)])


# --- members ----------------------------------------------------------------------------
_PRESENT = " WHERE conversation_id = ? AND left_at IS NULL"


def member(tx: Tx, community: CommunityRecord, channel_id: str, provider_id: str) -> Seat | None:
    """The present member reached on this identity."""
    row = tx.one(
        conversations._PARTICIPANT + _PRESENT + " AND channel_id = ? AND provider_id = ?",
        (community.conversation_id, channel_id, provider_id),
    )
    return conversations._participant(row).seat if row is not None else None


def seat(tx: Tx, community: CommunityRecord, participant_id: str) -> Seat | None:
    """A present member by their participant id."""
    row = tx.one(
        conversations._PARTICIPANT + _PRESENT + " AND id = ?",
        (community.conversation_id, participant_id),
    )
    return conversations._participant(row).seat if row is not None else None


def _names(tx: Tx, community: CommunityRecord) -> set[str]:
    rows = tx.all("SELECT display_name FROM participants" + _PRESENT, (community.conversation_id,))
    return {r[0].casefold() for r in rows}


def banned(
    tx: Tx, community_id: str, channel_id: str, provider_id: str, user_id: str | None
) -> bool:
    """The identity was banned from the community, or, for a user's identity, the user was
    (on any of their identities, linked then or since)."""
    sql = "SELECT 1 FROM community_bans b WHERE b.community_id = ? AND ((b.channel_id = ? AND b.provider_id = ?)"
    params: list[Any] = [community_id, channel_id, provider_id]
    if user_id is not None:
        sql += (
            " OR b.user_id = ? OR EXISTS (SELECT 1 FROM identities i WHERE i.user_id = ?"
            " AND i.channel_id = b.channel_id AND i.provider_id = b.provider_id)"
        )
        params += [user_id, user_id]
    return tx.one(sql + ") LIMIT 1", params) is not None


def user_of(tx: Tx, channel_id: str, provider_id: str) -> str | None:
    row = tx.one(
        "SELECT user_id FROM identities WHERE channel_id = ? AND provider_id = ?",
        (channel_id, provider_id),
    )
    return row[0] if row is not None else None


def tell(
    tx: Tx,
    community: CommunityRecord,
    channel_id: str,
    provider_id: str,
    kind: str,
    text: str,
    now: float,
) -> None:
    """Queue a line to one person from the business's own identity, in their 1:1 chat; its
    metadata says which community and notice it is."""
    if not text:
        return
    writes.insert_message(
        tx,
        NewMessage(
            new_id("msg"),
            channel_id,
            provider_id,
            TextContent(text=text).model_dump_json(exclude_none=True),
            json.dumps({"community_id": community.id, "notice": kind}),
            community.owner,
            None,
            NOTICE_HASH,
        ),
        now,
    )


def tell_seat(
    tx: Tx, community: CommunityRecord, member_seat: Seat, kind: str, now: float, **values: object
) -> None:
    """Tell a member `kind` (gateway/router/communities.py NOTICES); `name` is theirs unless
    `values` gives one."""
    values.setdefault("name", member_seat.display_name)
    line = notice(kind, community=community.settings.name, **values)
    tell(tx, community, member_seat.channel_id, member_seat.provider_id, kind, line, now)


@dataclass(frozen=True)
class Joining:
    """Who joins: an identity (the user it belongs to, if any), the name they chose."""

    channel_id: str | None
    provider_id: str | None
    user_id: str | None
    display_name: str | None
    language: str | None
    field: str = ""  # where the API body named them, for errors


def join(
    tx: Tx,
    community: CommunityRecord,
    joining: Joining,
    targets_for: TargetsFor,
    announcements: Announcements,
    now: float,
) -> Seat:
    """They join under the name they chose, else a given one, are announced to the members
    present, and are sent the welcome and the rules. Raises ConversationConflict: banned,
    present already, the name taken."""
    taken = _names(tx, community)
    name = joining.display_name
    if name is not None and name_taken(name, taken):
        raise conversations.ConversationConflict(
            409, "name_taken", "display_name", f"a member is called {name!r} already"
        )
    request = conversations.SeatRequest(
        joining.field,
        ROLE,
        name or given_name(taken, secrets.randbelow),
        user_id=joining.user_id,
        channel_id=joining.channel_id,
        provider_id=joining.provider_id,
    )
    conversation = conversations.load(tx, community.conversation_id, lock=True)
    assert conversation is not None
    joined = conversations.add(tx, conversation, request, targets_for, now).seat
    if banned(tx, community.id, joined.channel_id, joined.provider_id, joined.user_id):
        raise conversations.ConversationConflict(
            409, "banned", "identity", "this person was banned from the community"
        )
    per_minute = community.settings.rate_limit_per_minute
    tx.execute(
        "INSERT INTO community_members (participant_id, community_id, language, tokens,"
        " tokens_at) VALUES (?, ?, ?, ?, ?)",
        (joined.id, community.id, joining.language, float(per_minute or 0), now),
    )
    current = conversations.load(tx, community.conversation_id)
    assert current is not None
    relay.announce(tx, current, joined, announcements.joined, now)
    settings = community.settings
    for kind, text in (
        ("welcome", in_language(settings.welcome, joining.language)),
        ("rules", in_language(settings.rules, joining.language)),
    ):
        tell(tx, community, joined.channel_id, joined.provider_id, kind, text, now)
    tell_seat(
        tx,
        community,
        joined,
        "joined",
        now,
        rename=community.keyword("name", joining.language) or "a name keyword",
        leave=community.keyword("leave", joining.language) or "nothing",
    )
    return joined


def leave(
    tx: Tx,
    community: CommunityRecord,
    member_seat: Seat,
    kind: str,
    targets_for: TargetsFor,
    announcements: Announcements,
    now: float,
    reason: str | None = None,
    language: str | None = None,
) -> None:
    """They leave (`kind`: left, removed, banned, opted_out): nothing more is relayed to or
    from them; the others are told, and they are, unless they opted out (nothing may reach
    them then)."""
    conversation = conversations.load(tx, community.conversation_id, lock=True)
    assert conversation is not None
    relay.leave(tx, conversation, member_seat.id, targets_for, announcements, now)
    if kind != "opted_out":
        join_word = community.keyword("join", language)
        tell_seat(tx, community, member_seat, kind, now, reason=reason, join=join_word)


def ban(
    tx: Tx,
    community: CommunityRecord,
    member_seat: Seat,
    reason: str | None,
    targets_for: TargetsFor,
    announcements: Announcements,
    now: float,
) -> None:
    """They leave and may not join again, on this identity or any of their user's."""
    tx.execute(
        "INSERT INTO community_bans (community_id, channel_id, provider_id, user_id, reason,"
        " banned_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            community.id,
            member_seat.channel_id,
            member_seat.provider_id,
            member_seat.user_id,
            reason,
            now,
        ),
    )
    leave(tx, community, member_seat, "banned", targets_for, announcements, now, reason)


def mute(tx: Tx, member_seat: Seat, until: float | None, reason: str | None) -> None:
    """Their messages are not relayed until `until` (None: unmuted)."""
    tx.execute(
        "UPDATE community_members SET muted_until = ?, mute_reason = ?, told_at = NULL"
        " WHERE participant_id = ?",
        (until, reason if until is not None else None, member_seat.id),
    )


def rename(tx: Tx, community: CommunityRecord, member_seat: Seat, name: str, now: float) -> bool:
    """They are shown as `name` from now on; False (and they are told) when a present member
    has it already."""
    others = _names(tx, community) - {member_seat.display_name.casefold()}
    if name_taken(name, others):
        tell_seat(tx, community, member_seat, "name_taken", now, name=name)
        return False
    tx.execute("UPDATE participants SET display_name = ? WHERE id = ?", (name, member_seat.id))
    tell_seat(tx, community, member_seat, "renamed", now, name=name)
    return True


def language_of(tx: Tx, member_seat: Seat) -> str | None:
    row = tx.one(
        "SELECT language FROM community_members WHERE participant_id = ?", (member_seat.id,)
    )
    return row[0] if row is not None else None


# --- what people send --------------------------------------------------------------------
def on_keyword(
    tx: Tx,
    prepared: PreparedEvent,
    found: Sequence[KeywordHit],
    targets_for: TargetsFor,
    announcements: Announcements,
    now: float,
) -> list[Event]:
    """A keyword message: kept and sent to the backends like any message of the person's 1:1
    chat, then acted on, once (a redelivery does nothing). Someone who opted out on this
    channel joins nothing: opt-outs win (docs/communities.md)."""
    kept = writes.store_inbound(tx, prepared, targets_for, now)
    if not kept:
        return []
    event = kept[0]
    writes.note_contact_facts(tx, event, now)
    assert event.sender is not None
    channel_id, sender = event.channel.id, event.sender.id
    if _opted_out(tx, channel_id, sender):
        log.info("community_keyword_ignored", reason="opted_out", channel=channel_id)
        return kept
    for hit in found:
        community = load(tx, hit.community_id)
        if community is not None:
            _act(tx, community, hit, channel_id, sender, targets_for, announcements, now)
    return kept


def _act(
    tx: Tx,
    community: CommunityRecord,
    hit: KeywordHit,
    channel_id: str,
    sender: str,
    targets_for: TargetsFor,
    announcements: Announcements,
    now: float,
) -> None:
    present = member(tx, community, channel_id, sender)
    if hit.action == "leave":
        if present is not None:
            leave(
                tx,
                community,
                present,
                "left",
                targets_for,
                announcements,
                now,
                language=hit.language,
            )
        return
    if hit.action == "name":
        if present is not None:
            rename(tx, community, present, hit.argument, now)
        return
    if present is not None:
        tell_seat(tx, community, present, "already", now)
        return
    user_id = user_of(tx, channel_id, sender)
    if banned(tx, community.id, channel_id, sender, user_id):
        line = notice("refused", community=community.settings.name)
        tell(tx, community, channel_id, sender, "refused", line, now)
        return
    joining = Joining(channel_id, sender, user_id, None, hit.language)
    join(tx, community, joining, targets_for, announcements, now)


def _opted_out(tx: Tx, channel_id: str, user_id: str) -> bool:
    row = tx.one(
        "SELECT unsubscribed_at FROM contacts WHERE channel_id = ? AND user_id = ?",
        (channel_id, user_id),
    )
    return row is not None and row[0] is not None


def on_opt_out(
    tx: Tx, event: Event, targets_for: TargetsFor, announcements: Announcements, now: float
) -> None:
    """An opt-out (STOP, unfollow, unsubscribed) ends every community membership of that
    identity: nothing more is relayed to it. It wins over any community keyword."""
    assert event.sender is not None
    rows = tx.all(
        "SELECT m.community_id, p.id FROM community_members m JOIN participants p"
        " ON p.id = m.participant_id WHERE p.channel_id = ? AND p.provider_id = ?"
        " AND p.left_at IS NULL",
        (event.channel.id, event.sender.id),
    )
    for community_id, participant_id in rows:
        community = load(tx, community_id)
        present = seat(tx, community, participant_id) if community is not None else None
        if community is not None and present is not None:
            leave(tx, community, present, "opted_out", targets_for, announcements, now)
