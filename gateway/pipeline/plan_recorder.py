"""First sends' plans that are made together are recorded together (store/plans.py).

The sends a lane claims together start together, and each that the engine changed (a
broadcast's buttons as numbered choices on SMS, its template outside WhatsApp's window)
records its plan before it goes. The recorder gathers the plans made in the same turn of the
event loop into one store operation. Should it fail, each plan is recorded alone, as before,
so that one plan the store refuses fails only its own send.
"""

from __future__ import annotations

import asyncio
import time

from gateway.store import Store
from gateway.store.plans import Plan

# Plans in one group at most: bounds a statement's parameters (five a plan's choices).
GROUP_MOST = 64


class PlanRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[tuple[Plan, asyncio.Future[None]]] = []
        self._writing: set[asyncio.Task[None]] = set()

    async def record(self, plan: Plan) -> None:
        """Record `plan` with the others made in this turn of the loop; returns once it is
        durable (or raises the store's error, as recording it alone would)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((plan, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._write_waiting)
        await future

    def _write_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:GROUP_MOST], self._waiting[GROUP_MOST:]
            task = asyncio.create_task(self._write(group))
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    async def _write(self, group: list[tuple[Plan, asyncio.Future[None]]]) -> None:
        try:
            await self.store.record_plans_together([plan for plan, _ in group], time.time())
        except Exception:  # each alone, below, as one always was
            await asyncio.gather(*(self._write_alone(plan, future) for plan, future in group))
            return
        for _plan, future in group:
            if not future.done():  # its send was cancelled meanwhile (shutdown)
                future.set_result(None)

    async def _write_alone(self, plan: Plan, future: asyncio.Future[None]) -> None:
        try:
            await self.store.record_plan(*plan, time.time())
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(None)
