"""Migration 2: sending to users (docs/sending-to-users.md).

- `users.country` (ISO 3166-1 alpha-2) and `users.preferred_channel` (a channel instance id
  or type): what the choice of a user's identity reads.
- `message_routes`: for each message sent to a user (the first, and each failover), the
  identities still to try, whether to fail over, and when a `delivered` status is due. The
  due time is kept here, so a restart keeps every pending timer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.store.migrations import Step


def apply(step: Step) -> None:
    step.add_column("users", "country", "TEXT")
    step.add_column("users", "preferred_channel", "TEXT")
    real = step.types["real"]
    step.execute(
        "CREATE TABLE IF NOT EXISTS message_routes ("
        " message_id TEXT PRIMARY KEY,"  # a message sent to a user: the first, or a failover
        " root_id TEXT NOT NULL,"  # the first message of its chain (what the backend holds)
        " user_id TEXT NOT NULL,"
        " remaining TEXT NOT NULL,"  # JSON: the identities still to try, in order
        " failover INTEGER NOT NULL,"
        f" timeout_seconds {real},"  # a `delivered` status is awaited this long, when set
        f" deliver_by {real},"  # when it is due; NULL once delivered, failed over or done
        " settled INTEGER NOT NULL DEFAULT 0)"  # 1: delivered, or failed over: nothing more
    )
    step.execute("CREATE INDEX IF NOT EXISTS message_routes_by_root ON message_routes (root_id)")
    step.execute(
        "CREATE INDEX IF NOT EXISTS message_routes_due ON message_routes (deliver_by)"
        " WHERE deliver_by IS NOT NULL"
    )
