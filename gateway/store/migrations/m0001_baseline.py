"""Migration 1: the schema when versions began (gateway/store/schema.py, frozen from now on).

Idempotent (CREATE ... IF NOT EXISTS, columns added only when missing), so a store made by a
release before versions, which has some of these tables and columns, is brought up to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store.schema import ADDED_COLUMNS, DDL, LATE_DDL, LATE_LINE_COLUMNS, statements

if TYPE_CHECKING:
    from gateway.store.migrations import Step


def apply(step: Step) -> None:
    for statement in statements(DDL.format(**step.types)):
        step.execute(statement)
    for table, column, kind in ADDED_COLUMNS:
        step.add_column(table, column, kind)
    late = LATE_DDL.format(line_columns=LATE_LINE_COLUMNS[step.dialect])
    for statement in statements(late):
        step.execute(statement)
