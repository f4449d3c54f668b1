"""Store writes made in the same turn of the event loop (or the next few), done as one
operation.

Sends a lane claims together start together and their answers come in bunches, so their
writes (a first send's plan, a finished send's record) arrive within a few turns of the loop.
A `TurnBatch` gathers them and writes each group with a few statements. Should the group's
operation fail, each item is written alone, as it always was: one the store refuses holds up
no other, and none is reported written unless it was.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Generic, TypeVar

Item = TypeVar("Item")

# Items in one group at most: bounds a statement's parameters.
GROUP_MOST = 64
# Answers to sends under way arrive over several turns of the loop, not all in one: a group
# waits while new items keep coming, for at most this many turns (as the store's group commit
# does, sqlite.FLUSH_WAITS). Closed at the end of its first turn, a group held 4.7 sends on
# average and a quarter of them one (bench/send.py, WhatsApp on SQLite): seven statements and
# an operation of the store for each.
GATHER_TURNS = 3


class TurnBatch(abc.ABC, Generic[Item]):
    def __init__(self) -> None:
        self._waiting: list[tuple[Item, asyncio.Future[None]]] = []
        self._writing: set[asyncio.Task[None]] = set()
        self._seen = 0  # items waiting at the last turn that kept the group open
        self._turns = 0  # turns the group was kept open

    @abc.abstractmethod
    async def write_together(self, items: list[Item]) -> None:
        """Write the group in one store operation."""

    @abc.abstractmethod
    async def write_alone(self, item: Item) -> None:
        """Write one item as it would be without the others."""

    async def record(self, item: Item) -> None:
        """Write `item` with the others of this turn of the loop and the next few (while more
        keep coming); returns once it is durable (or raises the store's error, as writing it
        alone would)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._waiting) == 1:
            self._seen = self._turns = 0
            loop.call_soon(self._write_waiting)
        await future

    def _write_waiting(self) -> None:
        waiting = len(self._waiting)
        if self._seen < waiting < GROUP_MOST and self._turns < GATHER_TURNS:
            self._seen, self._turns = waiting, self._turns + 1
            asyncio.get_running_loop().call_soon(self._write_waiting)
            return
        while self._waiting:
            group, self._waiting = self._waiting[:GROUP_MOST], self._waiting[GROUP_MOST:]
            task = asyncio.create_task(self._write(group))
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    async def _write(self, group: list[tuple[Item, asyncio.Future[None]]]) -> None:
        try:
            await self.write_together([item for item, _future in group])
        except Exception:  # each alone, below, as one always was
            await asyncio.gather(*(self._write_one(item, future) for item, future in group))
            return
        for _item, future in group:
            if not future.done():  # its send was cancelled meanwhile (shutdown)
                future.set_result(None)

    async def _write_one(self, item: Item, future: asyncio.Future[None]) -> None:
        try:
            await self.write_alone(item)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(None)
