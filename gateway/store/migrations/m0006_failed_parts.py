"""Migration 2: the parts of a webhook that failed alone (adapters/webhook_parts.py).

A webhook batches several messages; one the adapter cannot read is kept here, by its inbox
row and its JSON path, while the other parts' events are stored. The row is marked failed
until `gateway replay` reads its failed parts again (and only those).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.store.migrations import Step


def apply(step: Step) -> None:
    step.execute(
        "CREATE TABLE IF NOT EXISTS inbox_failed_parts ("
        " inbox_id BIGINT NOT NULL,"
        " path TEXT NOT NULL,"
        " reason TEXT NOT NULL,"
        " part TEXT NOT NULL,"
        " failed_at {real} NOT NULL,"
        " PRIMARY KEY (inbox_id, path))".format(**step.types)
    )
