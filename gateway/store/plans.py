"""What the engine changed in first sends, recorded together: a few statements for a group.

A first send whose content the engine changed (a template outside the window, buttons as
numbered choices on SMS) records its downgrades and choices before it goes (`Store.record_plan`),
so that a user's "2" finds its choices. One at a time that is a store operation a send, with
its commit, on top of its sent record: in a broadcast, a round trip for each SMS and WhatsApp
member (docs/benchmarks.md). The plans made in the same turn of the event loop
(pipeline/plan_recorder.py) are written here with one statement of each kind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from gateway.downgrade.choices import Choice
from gateway.store import writes
from gateway.store.database import Tx


class Plan(NamedTuple):
    """A first send's downgrades and numbered choices, to record before it goes."""

    message_id: str
    channel_id: str
    recipient_id: str
    downgrades: Sequence[str]
    choices: Sequence[Choice]
    expires_at: float  # its choices'


def record(tx: Tx, plans: Sequence[Plan], now: float) -> None:
    """`Store.record_plan` for each of `plans`, in order: a later plan's choices for the same
    recipient replace an earlier one's, as they would one after the other."""
    history = [(p.message_id, now, "downgraded", d) for p in plans for d in p.downgrades]
    if history:
        tx.write(
            "INSERT INTO message_history (message_id, at, state, detail) VALUES "
            + writes.values(len(history), 4),
            [value for row in history for value in row],
        )
    # One row per recipient: PostgreSQL refuses an upsert that changes a row twice.
    latest = {(p.channel_id, p.recipient_id): p for p in plans if p.choices}
    if latest:
        tx.write(
            "INSERT INTO reply_choices (channel_id, user_id, message_id, choices, expires_at)"
            " VALUES "
            + writes.values(len(latest), 5)
            + " ON CONFLICT (channel_id, user_id) DO UPDATE"
            " SET message_id = excluded.message_id, choices = excluded.choices,"
            " expires_at = excluded.expires_at",
            [
                value
                for p in latest.values()
                for value in (
                    p.channel_id,
                    p.recipient_id,
                    p.message_id,
                    json.dumps([c._asdict() for c in p.choices]),
                    p.expires_at,
                )
            ],
        )
