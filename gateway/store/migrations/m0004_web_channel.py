"""Migration: the web channel's durable per-user log (gateway/store/web_log.py).

Each row is one part of a message to one web user. `event_id` counts up per (channel, user):
a device that reconnects with the last one it saw gets what follows, nothing twice. `part`
makes a retried send find the row it wrote. A row waits for a device's ack until
`expires_at`; then it is `failed_at` (the message fails, so failover can act).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.store.migrations import Step

DDL = """
CREATE TABLE IF NOT EXISTS web_log (
    id {serial} PRIMARY KEY,
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    external_id TEXT NOT NULL,
    frame TEXT NOT NULL,
    created_at {real} NOT NULL,
    expires_at {real} NOT NULL,
    delivered_at {real},
    read_at {real},
    failed_at {real},
    UNIQUE (channel_id, user_id, event_id),
    UNIQUE (channel_id, message_id, part),
    UNIQUE (channel_id, external_id)
);
CREATE INDEX IF NOT EXISTS web_log_waiting ON web_log (expires_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX IF NOT EXISTS web_log_recent ON web_log (created_at);
"""


def apply(step: Step) -> None:
    for statement in DDL.format(**step.types).split(";"):
        if statement.strip():
            step.execute(statement)
