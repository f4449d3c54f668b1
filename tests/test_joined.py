"""Joinable operations of one kind run together in a batch (gateway/store/joined.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from gateway.store.database import Result, Tx
from gateway.store.joined import JOIN_MOST, Joinable, Kind, Op, run_joined


class Doubling(Kind[int, int]):
    def __init__(self, fail_jointly: bool = False) -> None:
        self.fail_jointly = fail_jointly
        self.groups: list[list[int]] = []

    def many(self, tx: Tx, items: Sequence[int]) -> list[Result]:
        self.groups.append(list(items))
        if self.fail_jointly and len(items) > 1:
            raise RuntimeError("one of them is refused")
        return [(None, ValueError(i)) if i < 0 else (i * 2, None) for i in items]


def running(log: list[str]) -> Any:
    def run(op: Op, single: bool) -> Result:
        log.append("op" if type(op) is not Joinable else f"alone {op.item}")
        try:
            return op(None), None  # type: ignore[arg-type]
        except Exception as exc:
            return None, exc

    return run


def plain(value: str) -> Op:
    return lambda tx: value


def test_a_kinds_ops_run_once_together_in_place_of_the_first() -> None:
    kind = Doubling()
    log: list[str] = []
    ops: list[tuple[Op, bool]] = [
        (plain("a"), False),
        (Joinable(kind, 1), False),
        (plain("b"), False),
        (Joinable(kind, 2), False),
        (Joinable(kind, -3), False),
    ]
    results = run_joined(ops, running(log))
    assert kind.groups == [[1, 2, -3]]
    assert log == ["op", "op", "op"]  # a, the group, b
    assert [r[0] for r in results] == ["a", 2, "b", 4, None]
    assert isinstance(results[4][1], ValueError)


def test_a_group_that_fails_runs_member_by_member() -> None:
    kind = Doubling(fail_jointly=True)
    log: list[str] = []
    ops: list[tuple[Op, bool]] = [(Joinable(kind, i), False) for i in (1, 2, 3)]
    results = run_joined(ops, running(log))
    assert log == ["op", "alone 1", "alone 2", "alone 3"]
    assert results == [(2, None), (4, None), (6, None)]


def test_one_of_a_kind_runs_as_it_is() -> None:
    kind = Doubling()
    log: list[str] = []
    assert run_joined([(Joinable(kind, 5), True)], running(log)) == [(10, None)]
    assert log == ["alone 5"]


@pytest.mark.parametrize("count", [JOIN_MOST + 1, 2 * JOIN_MOST])
def test_large_groups_run_in_parts(count: int) -> None:
    kind = Doubling()
    ops: list[tuple[Op, bool]] = [(Joinable(kind, i), False) for i in range(count)]
    results = run_joined(ops, running([]))
    assert [len(g) for g in kind.groups] == [JOIN_MOST, count - JOIN_MOST]
    assert [r[0] for r in results] == [i * 2 for i in range(count)]
