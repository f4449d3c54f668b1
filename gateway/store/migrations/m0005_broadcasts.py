"""Migration 2: audiences (named groups of users or bare identities), broadcasts to them,
and a priority on outbox rows so that bulk sends yield to conversation (docs/broadcasts.md).

Self-contained: the DDL is written here, not shared with gateway/store/schema.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store.schema import statements

if TYPE_CHECKING:
    from gateway.store.migrations import Step

DDL = """
-- Named groups of people (`grp_<ULID>`), each created by one API key (`owner`), which alone
-- sees it. `inline`: made for one broadcast's inline member list, not listed as a group.
CREATE TABLE IF NOT EXISTS audiences (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT,
    inline INTEGER NOT NULL DEFAULT 0,
    created_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS audiences_by_owner ON audiences (owner, created_at, id);

-- An audience's members, in the order they were added (`seq`: pages and broadcasts read them
-- in that order). `member_key` names the person once: `u:<user id>` or
-- `i:<channel id>:<provider id>` for a bare identity.
CREATE TABLE IF NOT EXISTS audience_members (
    seq {serial} PRIMARY KEY,
    audience_id TEXT NOT NULL,
    member_key TEXT NOT NULL,
    user_id TEXT,
    channel_id TEXT,
    provider_id TEXT,
    added_at {real} NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS audience_members_once ON audience_members (audience_id, member_key);
CREATE INDEX IF NOT EXISTS audience_members_in_order ON audience_members (audience_id, seq);

-- A broadcast (`bc_<ULID>`): accepted at once, expanded in the background in batches, each
-- batch's messages and `expanded_upto` (the last audience seq done) in one transaction, so a
-- crash neither loses nor repeats a member. Members added to the group after acceptance
-- (`audience_upto`) are not part of it.
CREATE TABLE IF NOT EXISTS broadcasts (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    audience_id TEXT NOT NULL,
    audience_upto BIGINT NOT NULL,
    content TEXT NOT NULL,
    templates TEXT,
    metadata TEXT,
    state TEXT NOT NULL,
    expanded_upto BIGINT NOT NULL DEFAULT 0,
    schedule_at {real} NOT NULL,
    expires_at {real},
    created_at {real} NOT NULL,
    expanded_at {real},
    finished_at {real}
);
CREATE INDEX IF NOT EXISTS broadcasts_by_state ON broadcasts (state, schedule_at);
CREATE INDEX IF NOT EXISTS broadcasts_by_owner ON broadcasts (owner, created_at, id);

-- Each member's outcome: the message queued for them, or why they were skipped.
CREATE TABLE IF NOT EXISTS broadcast_members (
    broadcast_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    member_key TEXT NOT NULL,
    user_id TEXT,
    channel_id TEXT,
    provider_id TEXT,
    message_id TEXT,
    skip_reason TEXT,
    PRIMARY KEY (broadcast_id, member_key)
);
CREATE INDEX IF NOT EXISTS broadcast_members_in_order ON broadcast_members (broadcast_id, position);
CREATE INDEX IF NOT EXISTS broadcast_members_by_message ON broadcast_members (message_id)
    WHERE message_id IS NOT NULL;
"""

# Claims take a lane's normal rows (0) before its bulk ones (1): gateway/store/writes.py. The
# index replaces outbox_lane_order (same prefix, which the backlog counts use): with both,
# SQLite took the old one for its range on next_attempt_at and sorted every due row.
LATE_DDL = """
CREATE INDEX IF NOT EXISTS outbox_lane_priority
    ON outbox (kind, status, target, priority, next_attempt_at, id);
DROP INDEX IF EXISTS outbox_lane_order;
"""


def apply(step: Step) -> None:
    for statement in statements(DDL.format(**step.types)):
        step.execute(statement)
    step.add_column("outbox", "priority", "INTEGER NOT NULL DEFAULT 0")
    for statement in statements(LATE_DDL):
        step.execute(statement)
