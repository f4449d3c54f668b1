"""Held statuses (gateway/store/held.py): every few seconds, deliver those whose send another
gateway process recorded, and those still matching no message of ours after the hold."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.logs import get_logger
from gateway.metrics import UNMATCHED_STATUSES
from gateway.pipeline.worker import Worker
from gateway.store import Store
from gateway.store.records import TargetsFor

log = get_logger("gateway.held")

# Sends are recorded with their held statuses in one transaction; the sweep only catches the
# rare race across processes and the hold's end, so a few seconds' wait is plenty.
SWEEP_SECONDS = 5.0
BATCH = 200


class HeldStatuses(Worker):
    name = "held_statuses"

    def __init__(
        self,
        store: Store,
        targets_for: TargetsFor,
        hold_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(min(SWEEP_SECONDS, hold_seconds / 4))
        self.store = store
        self.targets_for = targets_for
        self.hold_seconds = hold_seconds
        self.clock = clock

    async def run_once(self) -> bool:
        now = self.clock()
        settled = await self.store.settle_held_statuses(
            now - self.hold_seconds, BATCH, self.targets_for, now
        )
        for event in settled.resolved:
            log.info(
                "held_status_resolved",
                event_id=event.id,
                channel=event.channel.id,
                external_id=event.external_id,
                message_id=event.status.message_id if event.status else None,
            )
        for event in settled.released:
            UNMATCHED_STATUSES.labels(event.channel.id).inc()
            log.warning(
                "status_unmatched",
                event_id=event.id,
                channel=event.channel.id,
                external_id=event.external_id,
                reason=f"no message of this gateway has this provider id after"
                f" {self.hold_seconds:g} s: sent by another tool on the number, or its send"
                " was lost before it was recorded; delivered without a message_id",
            )
        count = len(settled.resolved) + len(settled.released)
        if count:
            self.wake_listeners()
        return count >= BATCH
