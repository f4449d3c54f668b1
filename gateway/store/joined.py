"""Operations of one kind that meet in a group commit run as one: a statement per table for all.

A group commit runs each operation in a savepoint of its own, statement by statement: on
PostgreSQL each statement is a round trip to the server. Thirty API sends accepted together
were thirty savepoints and a hundred and fifty statements, where one multi-row statement per
table does the same work. An operation that can run with others of its kind is a `Joinable`:
its `Kind` knows how to run many items at once (`Kind.many`) and answers for each, in order,
what running it alone would have answered. Run alone (a batch of one, or SQLite's reads on the
loop) it is a group of one.

The joined group takes the place of its first member in the batch. Operations of one batch
were all queued before any of them was answered, so none of their callers can depend on the
order among them. A group whose joint run fails (its savepoint undone) runs member by member,
as without joining: one item the store refuses fails alone.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from gateway.store.database import Result, Tx

Item = TypeVar("Item")
Value = TypeVar("Value")

# Members of one joint run at most: bounds a statement's parameters (a new message has 15).
JOIN_MOST = 128


class Kind(abc.ABC, Generic[Item, Value]):
    """A kind of operation that runs for several items at once."""

    @abc.abstractmethod
    def many(self, tx: Tx, items: Sequence[Item]) -> list[Result]:
        """Each item's (value, error), in order, as running each alone in turn would give; a
        raised error undoes the whole group, whose members then run alone."""

    def one(self, tx: Tx, item: Item) -> Value:
        value, error = self.many(tx, [item])[0]
        if error is not None:
            raise error
        return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Joinable(Generic[Item, Value]):
    """An operation (a function of a `Tx`) that a batch may run with others of its kind."""

    kind: Kind[Item, Value]
    item: Item

    def __call__(self, tx: Tx) -> Value:
        return self.kind.one(tx, self.item)


Op = Callable[["Tx"], Any]


def run_joined(ops: Sequence[tuple[Op, bool]], run: Callable[[Op, bool], Result]) -> list[Result]:
    """Run `ops` (each with its single-statement flag) with `run`, in order, but the joinable
    ops of one kind together, in the place of the first of them."""
    groups: dict[Kind[Any, Any], list[int]] = {}
    for index, (op, _single) in enumerate(ops):
        if type(op) is Joinable:
            groups.setdefault(op.kind, []).append(index)
    if all(len(members) == 1 for members in groups.values()):
        return [run(op, single) for op, single in ops]
    results: list[Result | None] = [None] * len(ops)
    for index, (op, single) in enumerate(ops):
        if results[index] is not None:
            continue  # ran with its group
        members = groups[op.kind] if type(op) is Joinable else [index]
        if len(members) == 1:
            results[index] = run(op, single)
            continue
        for start in range(0, len(members), JOIN_MOST):
            _run_group(ops, members[start : start + JOIN_MOST], run, results)
    return results  # type: ignore[return-value]  # every index was filled


def _run_group(
    ops: Sequence[tuple[Op, bool]],
    members: list[int],
    run: Callable[[Op, bool], Result],
    results: list[Result | None],
) -> None:
    first: Joinable[Any, Any] = ops[members[0]][0]  # type: ignore[assignment]
    items = [ops[index][0].item for index in members]  # type: ignore[attr-defined]
    single = all(ops[index][1] for index in members)
    values, error = run(lambda tx: first.kind.many(tx, items), single)
    if error is None:
        for index, result in zip(members, values, strict=True):
            results[index] = result
        return
    for index in members:  # each alone, as without joining
        results[index] = run(*ops[index])
