"""Tables shared by the SQLite and PostgreSQL stores (times are epoch seconds, as REAL).

Frozen: this is migration 1 (gateway/store/migrations/m0001_baseline.py). Change the schema
with a new numbered migration there, not here, so that stores already at version 1 get it.
"""

from __future__ import annotations

DDL = """
CREATE TABLE IF NOT EXISTS inbox (
    id {serial} PRIMARY KEY,
    channel_id TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    received_at {real} NOT NULL,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    body {blob} NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until {real},
    processed_at {real},
    error TEXT,
    UNIQUE (channel_id, dedupe_key)
);
CREATE INDEX IF NOT EXISTS inbox_by_status ON inbox (status, id);

CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    type TEXT NOT NULL,
    external_id TEXT,
    message_id TEXT,
    raw_id BIGINT,
    created_at {real} NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (channel_id, dedupe_key)
);
-- Only statuses that arrived before their send was recorded are ever looked up this way.
CREATE INDEX IF NOT EXISTS events_orphan_status ON events (channel_id, external_id)
    WHERE type = 'status' AND message_id IS NULL;
-- Retention (store/pruning.py) finds old events and messages through these.
CREATE INDEX IF NOT EXISTS events_by_age ON events (created_at);
-- The raw requests behind payloads the gateway could not represent, which retention keeps.
CREATE INDEX IF NOT EXISTS events_unsupported ON events (raw_id) WHERE type = 'unsupported';

CREATE TABLE IF NOT EXISTS contacts (
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT,
    phone TEXT,
    conversation_id TEXT NOT NULL,
    last_inbound_at {real},
    unsubscribed_at {real},
    unsubscribe_reason TEXT,
    reply_token TEXT,
    reply_token_at {real},
    created_at {real} NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    conversation_id TEXT,
    content TEXT NOT NULL,
    metadata TEXT,
    options TEXT,
    state TEXT NOT NULL,
    error TEXT,
    api_key TEXT NOT NULL,
    idempotency_key TEXT,
    request_hash TEXT NOT NULL,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    relay_of TEXT,
    participant_id TEXT,
    UNIQUE (api_key, idempotency_key)
);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (created_at);
-- A recipient's messages still to send, which wait behind one of theirs that is retried.
CREATE INDEX IF NOT EXISTS messages_queued_by_recipient ON messages (channel_id, recipient_id)
    WHERE state = 'queued';

CREATE TABLE IF NOT EXISTS message_parts (
    channel_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (channel_id, external_id)
);
CREATE INDEX IF NOT EXISTS message_parts_by_message ON message_parts (message_id, position);

CREATE TABLE IF NOT EXISTS message_history (
    id {serial} PRIMARY KEY,
    message_id TEXT NOT NULL,
    at {real} NOT NULL,
    state TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS message_history_by_message ON message_history (message_id, id);

-- Choices last sent to a user as numbered text: their answer becomes the choice's postback.
CREATE TABLE IF NOT EXISTS reply_choices (
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    choices TEXT NOT NULL,
    expires_at {real} NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

-- A form being filled in, one field at a time. Survives restarts, expires when abandoned.
CREATE TABLE IF NOT EXISTS form_sessions (
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    form TEXT NOT NULL,
    position INTEGER NOT NULL,
    answers TEXT NOT NULL,
    ttl {real} NOT NULL,
    expires_at {real} NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

-- People the platform knows (docs/users.md), each created by one API key (`owner`), which
-- alone sees it. A user merged into another keeps its row, pointing at the survivor.
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    external_id TEXT,
    name TEXT,
    locale TEXT,
    metadata TEXT,
    merged_into TEXT,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
-- A backend's own id names one live user of its key (409 otherwise): inserts rely on it.
CREATE UNIQUE INDEX IF NOT EXISTS users_by_external_id ON users (owner, external_id)
    WHERE external_id IS NOT NULL AND merged_into IS NULL;
CREATE INDEX IF NOT EXISTS users_merged ON users (merged_into) WHERE merged_into IS NOT NULL;

-- How a provider names a user on one channel instance: what it gave, never a phone derived
-- from it. An identity belongs to one user at most. `phone` only as the provider sent it.
CREATE TABLE IF NOT EXISTS identities (
    channel_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    phone TEXT,
    linked_by TEXT NOT NULL,
    linked_at {real} NOT NULL,
    PRIMARY KEY (channel_id, provider_id)
);
CREATE INDEX IF NOT EXISTS identities_by_user ON identities (user_id);
CREATE INDEX IF NOT EXISTS identities_by_phone ON identities (phone) WHERE phone IS NOT NULL;
-- A user's messages, through their identities (GET /v1/users/<id>/messages).
CREATE INDEX IF NOT EXISTS messages_by_recipient ON messages (channel_id, recipient_id, created_at);

-- Group conversations (docs/conversations.md), each created by one API key (`owner`), which
-- alone sees it. `last_active_at`: its last message, which routes a person present in several.
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    mode TEXT NOT NULL,
    metadata TEXT,
    state TEXT NOT NULL,
    created_at {real} NOT NULL,
    closed_at {real},
    last_active_at {real} NOT NULL,
    controller TEXT
);
-- A key's conversations, newest first (GET /v1/conversations).
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, created_at, id);
-- Closed conversations by age, which retention prunes (store/pruning.py).
CREATE INDEX IF NOT EXISTS conversations_closed ON conversations (closed_at)
    WHERE state = 'closed';

-- Who is in a conversation (`position`: in the order they joined), and the identity each is
-- reached on. A participant who left keeps the row (history names them), with `left_at`.
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    user_id TEXT,
    role TEXT NOT NULL,
    display_name TEXT NOT NULL,
    position INTEGER NOT NULL,
    joined_at {real} NOT NULL,
    left_at {real},
    observer INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS participants_by_conversation ON participants (conversation_id);
-- An identity is present in a conversation once: inserts rely on it (409 otherwise).
CREATE UNIQUE INDEX IF NOT EXISTS participants_once
    ON participants (conversation_id, channel_id, provider_id) WHERE left_at IS NULL;
-- The conversations an inbound sender is present in: by their identity, or their user's.
CREATE INDEX IF NOT EXISTS participants_present ON participants (channel_id, provider_id)
    WHERE left_at IS NULL;
CREATE INDEX IF NOT EXISTS participants_present_by_user ON participants (user_id)
    WHERE left_at IS NULL AND user_id IS NOT NULL;

-- What was said in a conversation, once per message (each recipient's copy is a `messages`
-- row whose `relay_of` names it). `seq` orders the history and is its pages' cursor.
CREATE TABLE IF NOT EXISTS conversation_messages (
    seq {serial} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    author TEXT,
    event_id TEXT,
    content TEXT NOT NULL,
    created_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS conversation_messages_by_conversation
    ON conversation_messages (conversation_id, seq);
-- A participant's own last message in each conversation: routes their next one (recency).
CREATE INDEX IF NOT EXISTS conversation_messages_by_author
    ON conversation_messages (author, created_at) WHERE author IS NOT NULL;

-- "Which chat is this for?": asked of a person present in several open conversations when
-- no rule decided (gateway/router/conversations.py). `options`: JSON [[conversation id,
-- participant id, label], ...] in the order numbered. The events kept back
-- (`events.held_since`, listed in route_held) until the answer, or `expires_at`, routes them.
CREATE TABLE IF NOT EXISTS route_questions (
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    options TEXT NOT NULL,
    asked_at {real} NOT NULL,
    expires_at {real} NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX IF NOT EXISTS route_questions_by_expiry ON route_questions (expires_at);
-- The events held for a person's question, a row each: two processes holding messages of
-- one person at once each insert their own, so neither overwrites the other's.
CREATE TABLE IF NOT EXISTS route_held (
    id {serial} PRIMARY KEY,
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS route_held_by_person ON route_held (channel_id, user_id, id);

CREATE TABLE IF NOT EXISTS outbox (
    id {serial} PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    ref TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {real} NOT NULL,
    claimed_until {real},
    last_error TEXT,
    created_at {real} NOT NULL,
    done_at {real},
    recipient TEXT
);
-- The due rows of each target, oldest first (gateway/pipeline/lanes.py), and by its prefix
-- the backlog counts. It ends with id, the claims' tie-break, so that a claim reads the rows in
-- order and stops at its limit, rather than sort every due row first (PostgreSQL did, for a
-- table without statistics yet, running the first-in-line test on each: seconds a claim).
DROP INDEX IF EXISTS outbox_due;
DROP INDEX IF EXISTS outbox_lane;
CREATE INDEX IF NOT EXISTS outbox_lane_order ON outbox (kind, status, target, next_attempt_at, id);
-- The deliveries of an event or message, so retention keeps what they still need.
CREATE INDEX IF NOT EXISTS outbox_by_ref ON outbox (ref);
-- Rows under way (claimed, not yet done or put back): whether a target's claim is in flight.
CREATE INDEX IF NOT EXISTS outbox_in_flight ON outbox (kind, target, claimed_until)
    WHERE status = 'pending' AND claimed_until IS NOT NULL;
"""

SQLITE_DDL = DDL.format(serial="INTEGER", real="REAL", blob="BLOB")

# Columns added after their table first shipped: databases created by an older release gain
# them in migration 1 (the CREATE TABLE statements above already include them for new ones).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("contacts", "unsubscribe_reason", "TEXT"),
    ("contacts", "reply_token", "TEXT"),
    ("contacts", "reply_token_at", "{real}"),
    ("messages", "options", "TEXT"),
    ("outbox", "recipient", "TEXT"),  # a send's recipient: whose line it stands in
    # When a status matching none of our sends was held back from the backends (store/held.py).
    ("events", "held_since", "{real}"),
    # A relayed copy: the conversation message it copies, and the participant it goes to.
    ("messages", "relay_of", "TEXT"),
    ("messages", "participant_id", "TEXT"),
    # The backend in control of a group conversation (docs/conversations.md, "Control").
    ("conversations", "controller", "TEXT"),
    # A silent observer, until they speak; channel_id '' marks one reached through the API
    # only (gateway/router/conversations.py, API_ONLY).
    ("participants", "observer", "INTEGER NOT NULL DEFAULT 0"),
    # A provider group's conversation (LINE group or room, WhatsApp group): its channel and
    # the group's id there; a participant reached through that group, not on their own.
    ("conversations", "group_channel_id", "TEXT"),
    ("conversations", "group_id", "TEXT"),
    ("participants", "via_group", "TEXT"),
)

# Indexes on added columns: created once the migrations have added them.
LATE_DDL = """
-- Each recipient's line of sends, in the order queued: only its first row is claimed, so
-- their messages go one at a time, in order, whichever process claims (writes.FIRST_IN_LINE).
CREATE INDEX IF NOT EXISTS outbox_recipient_line
    ON outbox ({line_columns}target, recipient, id, next_attempt_at)
    WHERE kind = 'send' AND status = 'pending';
-- Statuses held until their send is recorded (a handful, for seconds): the sweep's way in.
CREATE INDEX IF NOT EXISTS events_held ON events (held_since) WHERE held_since IS NOT NULL;
-- The copies of a conversation message (its history shows each one's state).
CREATE INDEX IF NOT EXISTS messages_by_relay ON messages (relay_of) WHERE relay_of IS NOT NULL;
-- When each conversation last addressed a participant: routes their next message (recency).
CREATE INDEX IF NOT EXISTS messages_by_participant ON messages (participant_id, created_at)
    WHERE participant_id IS NOT NULL;
-- One conversation per provider group: the first messages of a group, in two batches at
-- once, cannot make two.
CREATE UNIQUE INDEX IF NOT EXISTS conversations_by_group ON conversations (group_channel_id, group_id)
    WHERE group_id IS NOT NULL;
"""
# The WHERE fixes kind and status; each planner wants them told differently. SQLite, which has
# no statistics here (no ANALYZE), counts equal columns, and without these two preferred
# outbox_lane_order, sorting a channel's whole backlog per row. PostgreSQL drops conditions its
# WHERE implies from the index search, and with these two leading could no longer seek.
LATE_LINE_COLUMNS = {"sqlite": "kind, status, ", "postgres": ""}


def statements(ddl: str) -> list[str]:
    return [s.strip() for s in ddl.split(";") if s.strip()]
