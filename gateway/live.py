"""What a config reload swaps: maps every request and worker reads through, replaced whole.

A reload builds the new channels and backends in full, then `replace`s each map in one
synchronous step: no coroutine runs between the swaps, so none sees half a reload. A request
holds the adapter it looked up, so one in flight finishes with the channel it started with.

Work that began before a reload removed its target (a send claimed, a delivery posting, a
webhook stored a moment before its channel went) still needs the removed value to finish:
`get_or_removed` keeps it for that, and for nothing else (new requests see only `current`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

V = TypeVar("V")


class LiveMap(Mapping[str, V]):
    def __init__(self, values: Mapping[str, V]) -> None:
        self._current: dict[str, V] = dict(values)
        self._removed: dict[str, V] = {}

    def replace(self, values: Mapping[str, V]) -> None:
        new = dict(values)
        for key, value in self._current.items():
            if key not in new:
                self._removed[key] = value
        for key in new:
            self._removed.pop(key, None)
        self._current = new

    def get_or_removed(self, key: str) -> V | None:
        """The value, or the one a reload removed, for work that began before the reload."""
        value = self._current.get(key)
        return value if value is not None else self._removed.get(key)

    def __getitem__(self, key: str) -> V:
        return self._current[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)


def get_or_removed(values: Mapping[str, V], key: str) -> V | None:
    """`values[key]`, or what a reload removed from a `LiveMap` (see `LiveMap.get_or_removed`)."""
    if isinstance(values, LiveMap):
        return values.get_or_removed(key)
    return values.get(key)
