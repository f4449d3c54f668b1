"""Users and identities in the store: each function runs inside the caller's transaction.

The decisions (which user a sender joins by phone, what a merge keeps) are pure functions in
gateway/router/identities.py; these steps read what they need and persist what they decide,
with the events about it, in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.ids import new_id
from gateway.router.identities import (
    PhoneIdentity,
    UserFacts,
    merged_facts,
    user_to_link_by_phone,
    verified_phone,
)
from gateway.schema import Event, IdentityChange, UserEvent, UserMerge
from gateway.store import writes
from gateway.store.database import Tx
from gateway.store.records import TargetsFor


@dataclass(frozen=True)
class NewUser:
    id: str
    owner: str  # the API key's name
    external_id: str | None
    name: str | None
    locale: str | None
    metadata: str | None  # a JSON object
    country: str | None = None  # ISO 3166-1 alpha-2
    preferred_channel: str | None = None  # a channel instance id or type


@dataclass(frozen=True)
class IdentityRecord:
    channel_id: str
    provider_id: str
    channel_type: str
    phone: str | None
    linked_by: str
    linked_at: float


@dataclass(frozen=True)
class UserRecord:
    id: str
    owner: str
    external_id: str | None
    name: str | None
    locale: str | None
    metadata: str | None
    created_at: float
    updated_at: float
    identities: list[IdentityRecord]
    merged_ids: list[str]
    country: str | None = None
    preferred_channel: str | None = None


@dataclass(frozen=True)
class UserMessageRecord:
    id: str
    channel_id: str
    recipient_id: str
    state: str
    created_at: float


class UserConflict(Exception):
    """What a change to users would break: `code` for the API's answer, `field` it concerns."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


_USER = (
    "SELECT id, owner, external_id, name, locale, metadata, created_at, updated_at, merged_into,"
    " country, preferred_channel FROM users WHERE id = ?"
)


def load(tx: Tx, user_id: str) -> UserRecord | None:
    """The user, or the one it was merged into (merges keep pointers one hop long)."""
    row = tx.one(_USER, (user_id,))
    if row is not None and row[8] is not None:
        row = tx.one(_USER, (row[8],))
    if row is None:
        return None
    identities = tx.all(
        "SELECT i.channel_id, i.provider_id, i.channel_type, COALESCE(i.phone, c.phone),"
        " i.linked_by, i.linked_at FROM identities i LEFT JOIN contacts c"
        " ON c.channel_id = i.channel_id AND c.user_id = i.provider_id"
        " WHERE i.user_id = ? ORDER BY i.linked_at, i.channel_id, i.provider_id",
        (row[0],),
    )
    merged = tx.all("SELECT id FROM users WHERE merged_into = ? ORDER BY id", (row[0],))
    return UserRecord(
        id=row[0],
        owner=row[1],
        external_id=row[2],
        name=row[3],
        locale=row[4],
        metadata=row[5],
        created_at=float(row[6]),
        updated_at=float(row[7]),
        identities=[
            IdentityRecord(r[0], r[1], r[2], verified_phone(r[2], r[3]), r[4], float(r[5]))
            for r in identities
        ],
        merged_ids=[r[0] for r in merged],
        country=row[9],
        preferred_channel=row[10],
    )


def _external_id_taken(owner: str) -> UserConflict:
    return UserConflict(
        "external_id_taken",
        "external_id",
        f"another user of API key {owner!r} has this external_id",
    )


def create(tx: Tx, user: NewUser, now: float) -> UserRecord:
    # The unique index on (owner, external_id) decides, atomically: no check-then-insert race.
    inserted = tx.execute(
        "INSERT INTO users (id, owner, external_id, name, locale, metadata, country,"
        " preferred_channel, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (
            user.id,
            user.owner,
            user.external_id,
            user.name,
            user.locale,
            user.metadata,
            user.country,
            user.preferred_channel,
            now,
            now,
        ),
    )
    if inserted == 0:
        raise _external_id_taken(user.owner)
    created = load(tx, user.id)
    assert created is not None
    return created


_UPDATABLE = ("external_id", "name", "locale", "metadata", "country", "preferred_channel")


def update(tx: Tx, user: UserRecord, changes: dict[str, Any], now: float) -> UserRecord:
    """Set the fields in `changes` (a None clears one); the others stay."""
    if "external_id" in changes and changes["external_id"] not in (None, user.external_id):
        taken = tx.one(
            "SELECT 1 FROM users WHERE owner = ? AND external_id = ? AND merged_into IS NULL",
            (user.owner, changes["external_id"]),
        )
        if taken is not None:
            raise _external_id_taken(user.owner)
    values = {
        field: json.dumps(value) if field == "metadata" and value is not None else value
        for field, value in changes.items()
        if field in _UPDATABLE
    }
    assignments = "".join(f"{field} = ?, " for field in values)
    tx.execute(
        f"UPDATE users SET {assignments}updated_at = ? WHERE id = ?",
        (*values.values(), now, user.id),
    )
    updated = load(tx, user.id)
    assert updated is not None
    return updated


def _contact_phone(tx: Tx, channel_id: str, provider_id: str) -> str | None:
    row = tx.one(
        "SELECT phone FROM contacts WHERE channel_id = ? AND user_id = ?", (channel_id, provider_id)
    )
    return row[0] if row else None


def link(
    tx: Tx,
    user: UserRecord,
    channel_id: str,
    channel_type: str,
    provider_id: str,
    linked_by: str,
    targets_for: TargetsFor,
    now: float,
) -> bool:
    """Link the identity to `user`: True when it is new, False when it was theirs already.
    Its phone is the one the provider sent with this identity's messages, if any came."""
    phone = verified_phone(channel_type, _contact_phone(tx, channel_id, provider_id))
    inserted = tx.execute(
        "INSERT INTO identities (channel_id, provider_id, channel_type, user_id, phone,"
        " linked_by, linked_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (channel_id, provider_id, channel_type, user.id, phone, linked_by, now),
    )
    if inserted == 0:
        row = tx.one(
            "SELECT user_id FROM identities WHERE channel_id = ? AND provider_id = ?",
            (channel_id, provider_id),
        )
        if row is not None and row[0] == user.id:
            return False
        # Which user holds it is not said: it may belong to another API key's users.
        raise UserConflict(
            "identity_taken", "id", "this identity is already linked to another user"
        )
    change = IdentityChange(channel=channel_id, id=provider_id, phone=phone, linked_by=linked_by)
    _emit(tx, "identity.linked", user, now, targets_for, identity=change)
    return True


def unlink(
    tx: Tx, user: UserRecord, channel_id: str, provider_id: str, targets_for: TargetsFor, now: float
) -> None:
    found = next(
        (i for i in user.identities if (i.channel_id, i.provider_id) == (channel_id, provider_id)),
        None,
    )
    if found is None:
        raise UserConflict("not_linked", "id", "this identity is not linked to this user")
    tx.execute(
        "DELETE FROM identities WHERE channel_id = ? AND provider_id = ? AND user_id = ?",
        (channel_id, provider_id, user.id),
    )
    tx.execute("UPDATE users SET updated_at = ? WHERE id = ?", (now, user.id))
    change = IdentityChange(channel=channel_id, id=provider_id, phone=found.phone)
    _emit(tx, "identity.unlinked", user, now, targets_for, identity=change)


def merge(
    tx: Tx, survivor: UserRecord, merged: UserRecord, targets_for: TargetsFor, now: float
) -> UserRecord:
    """Move `merged`'s identities to `survivor`, fill what `survivor` lacks from it, and leave
    `merged` pointing at `survivor` (so do the users merged into it before)."""
    if survivor.id == merged.id:  # given twice, or merged into it already
        raise UserConflict("same_user", "user_id", "both ids name the same user")
    kept = merged_facts(_facts(survivor), _facts(merged))
    # Retire the merged user first: its external_id then no longer counts as taken.
    tx.execute(
        "UPDATE users SET merged_into = ?, updated_at = ? WHERE id = ? OR merged_into = ?",
        (survivor.id, now, merged.id, merged.id),
    )
    tx.execute("UPDATE identities SET user_id = ? WHERE user_id = ?", (survivor.id, merged.id))
    tx.execute(
        "UPDATE users SET external_id = ?, name = ?, locale = ?, metadata = ?, country = ?,"
        " preferred_channel = ?, updated_at = ? WHERE id = ?",
        (
            kept.external_id,
            kept.name,
            kept.locale,
            json.dumps(kept.metadata) if kept.metadata is not None else None,
            kept.country,
            kept.preferred_channel,
            now,
            survivor.id,
        ),
    )
    result = load(tx, survivor.id)
    assert result is not None
    change = UserMerge(merged_id=merged.id, merged_external_id=merged.external_id)
    _emit(tx, "user.merged", result, now, targets_for, merge=change)
    return result


def _facts(user: UserRecord) -> UserFacts:
    metadata = json.loads(user.metadata) if user.metadata else None
    return UserFacts(
        user.external_id, user.name, user.locale, metadata, user.country, user.preferred_channel
    )


def messages(tx: Tx, user_id: str, api_key: str | None, limit: int) -> list[UserMessageRecord]:
    """Messages to any of the user's identities now, newest first (only `api_key`'s unless
    None): a merged user's messages are the survivor's, since its identities are."""
    where, params = ("", ()) if api_key is None else (" AND m.api_key = ?", (api_key,))
    rows = tx.all(
        "SELECT m.id, m.channel_id, m.recipient_id, m.state, m.created_at FROM identities i"
        " CROSS JOIN messages m WHERE i.user_id = ? AND m.channel_id = i.channel_id"
        " AND m.recipient_id = i.provider_id" + where + " ORDER BY m.created_at DESC, m.id DESC"
        " LIMIT ?",
        (user_id, *params, limit),
    )
    return [UserMessageRecord(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def link_by_phone(tx: Tx, event: Event, targets_for: TargetsFor, now: float) -> None:
    """A new inbound event's sender, not linked yet, joins the user whose WhatsApp or SMS
    identities share the phone the provider sent (gateway/router/identities.py decides).
    A linked sender's identity learns that phone if it had none."""
    sender = event.sender
    phone = verified_phone(event.channel.type, sender.phone if sender else None)
    if sender is None or phone is None:
        return
    row = tx.one(
        "SELECT phone FROM identities WHERE channel_id = ? AND provider_id = ?",
        (event.channel.id, sender.id),
    )
    if row is not None:
        if row[0] is None:
            tx.execute(
                "UPDATE identities SET phone = ? WHERE channel_id = ? AND provider_id = ?",
                (phone, event.channel.id, sender.id),
            )
        return
    same_phone = [
        PhoneIdentity(channel_type, user_id)
        for channel_type, user_id in tx.all(
            "SELECT channel_type, user_id FROM identities WHERE phone = ?", (phone,)
        )
    ]
    user_id = user_to_link_by_phone(event.channel.type, phone, same_phone)
    user = load(tx, user_id) if user_id is not None else None
    if user is not None:
        link(tx, user, event.channel.id, event.channel.type, sender.id, "phone", targets_for, now)


def _emit(
    tx: Tx,
    event_type: str,
    user: UserRecord,
    now: float,
    targets_for: TargetsFor,
    identity: IdentityChange | None = None,
    merge: UserMerge | None = None,
) -> None:
    """Store an event about `user` and queue it for the backends that asked for its type."""
    event = UserEvent(
        id=new_id("evt"),
        type=event_type,
        timestamp=datetime.fromtimestamp(now, UTC),
        user_id=user.id,
        external_id=user.external_id,
        identity=identity,
        merge=merge,
    )
    writes.emit_channelless(
        tx, event, identity.channel if identity else "", "user", targets_for, now
    )
