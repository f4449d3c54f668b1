"""What the store forgets once it is old enough, and what it never forgets.

Every table that grows with traffic is pruned here, in small batches (each one transaction, so
the SQLite store's event loop is never held for long), oldest first, found by their age without
scanning the table, so a pass that finds nothing to do costs a few index lookups:

- inbox: rows received before the cutoff and normalised (`done`). A row's dedupe key goes
  with it, so a redelivery after that is taken as new: the cutoff must stay beyond the
  providers' redelivery windows (Meta retries for up to 7 days, providers.md §1.2). Rows that
  failed to parse stay until they are replayed: they are the only copy of a request we
  acknowledged. So do rows that held a payload the gateway could not represent (an
  `unsupported` event), with that event.
- outbox: deliveries and sends finished (`done` or `failed`) before the cutoff. Dead-lettered
  ones stay until `gateway replay --dead-letters` (an operator's decision, not the clock's).
- events: created before the cutoff, unless a delivery of theirs is still pending or dead
  (the delivery reads the event's body when it goes out).
- messages, with their parts and history: created before the message cutoff, unless their send
  is still pending. `GET /v1/messages/{id}` then answers 404, and the idempotency key is free.

Several gateway processes on one PostgreSQL store prune side by side: each batch skips the
rows another one has locked (`FOR UPDATE SKIP LOCKED`), as the workers' claims do.

- group conversations, with their participants and history: closed before the message
  cutoff (`message_days`, counted from the close). An open conversation is never pruned,
  however old; its relayed copies are messages, and go by the rule above.

Contacts (opt-outs, windows, conversation ids) are never pruned; reply choices and form
sessions hold one row per user at most, overwritten by the next one.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.store.database import Tx
from gateway.store.writes import in_list

# Raw requests that held a payload the gateway could not represent: kept, like failed ones.
_UNSUPPORTED = "SELECT 1 FROM events WHERE events.raw_id = inbox.id AND events.type = 'unsupported'"
# Deliveries that still need the row they point at.
_UNFINISHED = (
    "SELECT 1 FROM outbox WHERE outbox.ref = {table}.id AND outbox.status IN ('pending', 'dead')"
)


def prune_inbox(tx: Tx, cutoff: float, limit: int) -> int:
    finished = (
        f"status IN ('done', 'discarded') AND received_at < ? AND NOT EXISTS ({_UNSUPPORTED})"
    )
    return _prune_by_id(tx, "inbox", "received_at", finished, cutoff, limit)


def prune_outbox(tx: Tx, cutoff: float, limit: int) -> int:
    finished = "status IN ('done', 'failed', 'discarded') AND done_at < ?"
    return _prune_by_id(tx, "outbox", "created_at", finished, cutoff, limit)


def _prune_by_id(tx: Tx, table: str, created: str, finished: str, cutoff: float, limit: int) -> int:
    """Delete the oldest `limit` rows created before `cutoff` that are `finished` before it."""
    last = last_id_before(tx, table, created, cutoff)
    if last is None:
        return 0
    return tx.execute(
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE id <= ? AND {finished}"
        f" ORDER BY id LIMIT ?{tx.dialect.skip_locked})",
        (last, cutoff, limit),
    )


def last_id_before(tx: Tx, table: str, clock: str, cutoff: float) -> int | None:
    """The last id of `table` whose `clock` is before `cutoff`, or None.

    Inbox and outbox ids grow with time, so the rows older than the cutoff are the ids up to
    some bound, found by bisecting the primary key (about log2(rows) lookups). That spares an
    index on time, which the inbox would pay for on every acknowledgement and the normaliser on
    every row it closes (measured: 10% of the drain rate). Where a clock went backwards the
    bound is only approximate; each row's own time is checked again when it is deleted.
    """
    # A lone MIN or MAX reads one end of the index; both in one SELECT would scan the table
    # (https://www.sqlite.org/optoverview.html#minmax).
    oldest = tx.one(f"SELECT id, {clock} FROM {table} WHERE id = (SELECT MIN(id) FROM {table})")
    if oldest is None or oldest[1] >= cutoff:
        return None
    low: int = oldest[0]
    (high,) = tx.one(f"SELECT MAX(id) FROM {table}")
    if high is None:  # another process pruned every row since (each statement sees anew)
        return None
    while low < high:  # invariant: row `low` is older than the cutoff
        middle = (low + high + 1) // 2
        row = tx.one(
            f"SELECT id, {clock} FROM {table} WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
        )
        if row is not None and row[1] < cutoff:
            low = row[0]
        else:  # newer from `middle` on, or (another process pruning) nothing there any more
            high = middle - 1
    return int(low)


def _old_and_unneeded(tx: Tx, table: str, also: str = "") -> str:
    """The ids of `table`'s oldest rows created before the cutoff (`?`, then the limit `?`)
    that no pending or dead delivery still needs."""
    return (
        f"SELECT id FROM {table} WHERE created_at < ?{also}"
        f" AND NOT EXISTS ({_UNFINISHED.format(table=table)})"
        f" ORDER BY created_at LIMIT ?{tx.dialect.skip_locked}"
    )


def prune_events(tx: Tx, cutoff: float, limit: int) -> int:
    chosen = _old_and_unneeded(tx, "events", also=" AND type <> 'unsupported'")
    return tx.execute(f"DELETE FROM events WHERE id IN ({chosen})", (cutoff, limit))


def prune_messages(tx: Tx, cutoff: float, limit: int) -> int:
    ids = [row[0] for row in tx.all(_old_and_unneeded(tx, "messages"), (cutoff, limit))]
    if not ids:
        return 0
    # Parts and history with their message: nothing is left pointing nowhere.
    owned = ("message_parts", "message_history", "message_routes")
    return _delete_with(tx, "messages", ids, owned, "message_id")


def prune_conversations(tx: Tx, cutoff: float, limit: int) -> int:
    ids = [
        row[0]
        for row in tx.all(
            "SELECT id FROM conversations WHERE state = 'closed' AND closed_at < ?"
            f" ORDER BY closed_at LIMIT ?{tx.dialect.skip_locked}",
            (cutoff, limit),
        )
    ]
    if not ids:
        return 0
    owned = ("conversation_messages", "participants")
    return _delete_with(tx, "conversations", ids, owned, "conversation_id")


def _delete_with(tx: Tx, table: str, ids: list[str], owned: tuple[str, ...], key: str) -> int:
    """Delete `table`'s rows `ids` and the rows of each `owned` table whose `key` names one."""
    chosen = in_list(ids)
    for child in owned:
        tx.execute(f"DELETE FROM {child} WHERE {key} IN " + chosen, ids)
    return tx.execute(f"DELETE FROM {table} WHERE id IN " + chosen, ids)


# In pass order: finished deliveries go first, so that they no longer hold their events.
PRUNERS: dict[str, Callable[[Tx, float, int], int]] = {
    "inbox": prune_inbox,
    "outbox": prune_outbox,
    "events": prune_events,
    "messages": prune_messages,
    "conversations": prune_conversations,
}
