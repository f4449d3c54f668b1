"""First sends' plans that are made together are recorded together (store/plans.py).

The sends a lane claims together start together, and each that the engine changed (a
broadcast's buttons as numbered choices on SMS, its template outside WhatsApp's window)
records its plan before it goes: one store operation for the plans of one turn of the loop
(turn_batch.py), each alone should that fail.
"""

from __future__ import annotations

import time

from gateway.pipeline.turn_batch import TurnBatch
from gateway.store import Store
from gateway.store.plans import Plan


class PlanRecorder(TurnBatch[Plan]):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    async def write_together(self, items: list[Plan]) -> None:
        await self.store.record_plans_together(items, time.time())

    async def write_alone(self, item: Plan) -> None:
        await self.store.record_plan(*item, time.time())
