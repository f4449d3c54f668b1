"""Migration: communities (docs/communities.md). Each community is a relay conversation; these
tables hold what it adds: its settings and keywords, its members' language, mute and rate-limit
tokens, its bans, and members' messages awaiting or after moderation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store.schema import statements

if TYPE_CHECKING:
    from gateway.store.migrations import Step

DDL = """
CREATE TABLE IF NOT EXISTS communities (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    conversation_id TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    configured INTEGER NOT NULL DEFAULT 0,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS communities_by_owner ON communities (owner, created_at);
-- One row per keyword phrase (upper case, spaces collapsed). A join or leave phrase belongs to
-- one community, while a name prefix (`NAME`) may be every community's.
CREATE TABLE IF NOT EXISTS community_keywords (
    phrase TEXT NOT NULL,
    community_id TEXT NOT NULL,
    action TEXT NOT NULL,
    language TEXT NOT NULL,
    PRIMARY KEY (phrase, community_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS community_keywords_once
    ON community_keywords (phrase) WHERE action <> 'name';
CREATE INDEX IF NOT EXISTS community_keywords_by_community ON community_keywords (community_id);
-- A member: a participant of the community's conversation (their presence is the participant's).
CREATE TABLE IF NOT EXISTS community_members (
    participant_id TEXT PRIMARY KEY,
    community_id TEXT NOT NULL,
    language TEXT,
    muted_until {real},
    mute_reason TEXT,
    tokens {real} NOT NULL,
    tokens_at {real} NOT NULL,
    told_at {real}
);
CREATE INDEX IF NOT EXISTS community_members_by_community ON community_members (community_id);
CREATE TABLE IF NOT EXISTS community_bans (
    community_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    user_id TEXT,
    reason TEXT,
    banned_at {real} NOT NULL,
    PRIMARY KEY (community_id, channel_id, provider_id)
);
CREATE INDEX IF NOT EXISTS community_bans_by_user ON community_bans (community_id, user_id)
    WHERE user_id IS NOT NULL;
-- A member's message the moderation webhook is asked about: pending (not asked yet, or the
-- answer lost with a process), held (for the API), relayed or rejected.
CREATE TABLE IF NOT EXISTS community_moderation (
    id TEXT PRIMARY KEY,
    community_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    source_channel TEXT NOT NULL,
    content TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at {real} NOT NULL,
    claimed_until {real},
    attempts INTEGER NOT NULL DEFAULT 0,
    decided_at {real},
    decided_by TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS community_moderation_pending ON community_moderation (created_at)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS community_moderation_by_community
    ON community_moderation (community_id, state, created_at);
"""


def apply(step: Step) -> None:
    for statement in statements(DDL.format(**step.types)):
        step.execute(statement)
