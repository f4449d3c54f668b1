"""Outbox work in one lane per target: each backend and each channel waits only for itself.

One loop used to claim the due rows of every target and wait for the whole batch before the
next claim, so the slowest target set everyone's pace. A backend that did not answer held every
other backend's events for its timeout, again and again as new events came. A broadcast on a
one-message-a-second SMS number held the WhatsApp replies queued behind it for as many seconds
as it had messages. Now each target claims and works its own rows, oldest first, and pauses
alone when it fails or its provider asks it to wait.

Rows whose target is no longer configured (a backend or channel removed since they were queued)
have no lane: they are claimed once at start, so the owner can fail them with the reason.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections import defaultdict

from gateway.logs import get_logger
from gateway.metrics import LANE_PAUSED
from gateway.pipeline.backoff import claim_or_undo
from gateway.pipeline.worker import Wakeable, Worker
from gateway.store import OutboxItem, Store

log = get_logger("gateway.lanes")


class Lane(Worker):
    """Claims and works one target's rows; woken by new work, polling as a safety net."""

    def __init__(self, owner: LaneWorker, target: str) -> None:
        super().__init__(owner.poll_interval)
        self.owner = owner
        self.target = target
        self.name = f"{owner.name}:{target}"
        self.linger = owner.linger
        self._paused = LANE_PAUSED.labels(owner.kind, target)
        self._paused.set(0)

    async def run_once(self) -> bool:
        limit = self.owner.capacity(self.target)
        if limit <= 0:
            return False  # its owner wakes it when there is room again
        items = await self.owner.claim(limit, target=self.target)
        if not items:
            return False
        pause = await self.owner.work(self.target, items)
        if pause > 0:  # new work must not cut it short: that is what the pause is for
            self._paused.set(1)
            try:
                await self.nap(pause)
            finally:
                self._paused.set(0)
            return True
        return len(items) == limit


class LaneWorker(abc.ABC):
    """One kind of outbox row, worked in a lane per configured target."""

    name = "outbox"
    kind = ""  # the outbox kind this worker owns
    claim_limit = 100
    lease_seconds = 60.0
    linger = 0.0  # each lane's (worker.Worker.linger)
    # Whether a target's rows are claimed one claim at a time across processes, so that they
    # are worked in order even when several gateways share one PostgreSQL.
    one_claim_at_a_time = False
    # Whether only the first row of each recipient's line is claimed, so that one recipient's
    # rows go one at a time, in order, even when several gateways share one PostgreSQL.
    first_in_line = False

    def __init__(self, store: Store, targets: list[str], poll_interval: float) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.lanes = {target: Lane(self, target) for target in targets}
        self.listeners: list[Wakeable] = []  # woken when this produced work for them
        self._unconfigured: asyncio.Task[None] | None = None
        self._started = False

    def capacity(self, target: str) -> int:
        """How many rows `target`'s lane may claim now."""
        return self.claim_limit

    def bulk_window(self, target: str) -> int | None:
        """Bulk rows `target`'s lane may hold at once (None: no priorities in this outbox)."""
        return None

    @abc.abstractmethod
    async def work(self, target: str, items: list[OutboxItem]) -> float:
        """Work `items` of `target` (claimed, oldest first); how long its lane should pause."""

    async def claim(
        self, limit: int, *, target: str | None = None, besides: list[str] | None = None
    ) -> list[OutboxItem]:
        now, lease = time.time(), self.lease_seconds
        return await claim_or_undo(
            lambda: self.store.claim_outbox(
                self.kind,
                limit,
                now,
                lease,
                target=target,
                besides=besides,
                one_at_a_time=self.one_claim_at_a_time,
                first_in_line=self.first_in_line,
                bulk_window=self.bulk_window(target) if target is not None else None,
            ),
            lambda: self.store.unclaim("outbox", now + lease),
            lease / 2,
        )

    def start(self) -> None:
        self._started = True
        for lane in self.lanes.values():
            lane.start()
        self._unconfigured = asyncio.create_task(self._claim_unconfigured())

    def retarget(self, targets: list[str]) -> list[Lane]:
        """A reload's new targets: a lane started for each new one; the lanes of the targets
        gone are taken out and returned, for the caller to stop (`stop_lanes`). Their rows stay
        queued, untouched, and are worked again if their target comes back."""
        gone = [self.lanes.pop(t) for t in list(self.lanes) if t not in targets]
        for target in targets:
            if target not in self.lanes:
                lane = self.lanes[target] = Lane(self, target)
                if self._started:
                    lane.start()
        return gone

    @staticmethod
    async def stop_lanes(lanes: list[Lane], grace: float) -> None:
        """Stop claiming for `lanes`; the claim each is working finishes, for at most `grace`."""
        await asyncio.gather(*(lane.stop(grace) for lane in lanes))

    async def stop(self, grace: float = 0.0) -> None:
        if self._unconfigured is not None:
            self._unconfigured.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._unconfigured
        await asyncio.gather(*(lane.stop(grace) for lane in self.lanes.values()))

    def wake(self, target: str | None = None) -> None:
        """Wake `target`'s lane, or every lane when the target is not known."""
        lanes = self.lanes.values() if target is None else [self.lanes.get(target)]
        for lane in lanes:
            if lane is not None:
                lane.wake()

    def wake_listeners(self) -> None:
        for listener in self.listeners:
            listener.wake()

    async def _claim_unconfigured(self) -> None:
        configured = list(self.lanes)
        try:
            while items := await self.claim(self.claim_limit, besides=configured):
                by_target: dict[str, list[OutboxItem]] = defaultdict(list)
                for item in items:
                    by_target[item.target].append(item)
                for target, batch in by_target.items():
                    await self.work(target, batch)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lanes go on; the rows stay claimable for the next start
            log.exception("unconfigured_targets_failed", worker=self.name)
