"""The parts of webhooks that failed alone (table `inbox_failed_parts`, migration 2).

A part's inbox row is marked failed with a summary of its failed parts while the events of
its other parts are stored; `gateway replay` queues the row again, and the normaliser then
reads only the parts recorded here (`InboxRow.failed_parts`). Once none fails, they are gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.store.database import Tx
from gateway.store.records import FailedPartRecord


def summary(reasons: Sequence[str]) -> str:
    """The failed row's reason, from its failed parts': the first, and how many more there are."""
    more = f" (and {len(reasons) - 1} more unreadable part(s))" if len(reasons) > 1 else ""
    return f"invalid payload: {reasons[0]}{more}"


def keep(tx: Tx, raw_id: int, parts: Sequence[FailedPartRecord], now: float) -> None:
    """Replace the row's failed parts with `parts`; with any, the row is failed again."""
    tx.execute("DELETE FROM inbox_failed_parts WHERE inbox_id = ?", (raw_id,))
    if not parts:
        return
    for part in parts:
        tx.execute(
            "INSERT INTO inbox_failed_parts (inbox_id, path, reason, part, failed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (raw_id, part.path, part.reason, part.part, now),
        )
    tx.execute(
        "UPDATE inbox SET status = 'failed', error = ? WHERE id = ?",
        (summary([p.reason for p in parts]), raw_id),
    )


def paths(tx: Tx, raw_ids: Sequence[int]) -> Mapping[int, frozenset[str]]:
    """The failed parts' paths of each of these rows that has any."""
    marks = ", ".join("?" * len(raw_ids))
    found: dict[int, set[str]] = {}
    for raw_id, path in tx.all(
        f"SELECT inbox_id, path FROM inbox_failed_parts WHERE inbox_id IN ({marks})",
        tuple(raw_ids),
    ):
        found.setdefault(int(raw_id), set()).add(path)
    return {raw_id: frozenset(p) for raw_id, p in found.items()}


def listed(tx: Tx, raw_ids: Sequence[int]) -> Mapping[int, list[tuple[str, str]]]:
    """(path, reason) of each failed part of these rows, in path order."""
    if not raw_ids:
        return {}
    marks = ", ".join("?" * len(raw_ids))
    found: dict[int, list[tuple[str, str]]] = {}
    for raw_id, path, reason in tx.all(
        "SELECT inbox_id, path, reason FROM inbox_failed_parts"
        f" WHERE inbox_id IN ({marks}) ORDER BY inbox_id, path",
        tuple(raw_ids),
    ):
        found.setdefault(int(raw_id), []).append((path, reason))
    return found
