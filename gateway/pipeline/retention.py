"""Retention: every `interval_seconds`, a pass deletes what the store no longer needs.

What goes and what stays is the store's business (gateway/store/pruning.py); this worker
only decides when: a pass walks the tables in small batches, oldest rows first. While webhooks
arrive faster than `server.busy_webhooks_per_second`, acknowledging comes first: before each
batch the pass pauses and goes on only if the event loop sat idle for a good share of the
pause (gateway/pipeline/cpu_pacing.py), else it gives way. Giving way whenever the rate was high meant a
steady load above it was never pruned: the store would grow until the disk filled. A pass that
gave way picks up where it stopped at the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.config import RetentionConfig
from gateway.logs import get_logger
from gateway.metrics import PRUNED
from gateway.pipeline.cpu_pacing import SPARE, IdleClock, SpareMeter
from gateway.pipeline.worker import Worker
from gateway.store import Store
from gateway.store.pruning import PRUNERS

log = get_logger("gateway.retention")

DAY = 86400.0
# While ingress is busy: the pause before each batch, over which the idle share is read.
BUSY_PAUSE = 0.0125


class Retention(Worker):
    name = "retention"

    def __init__(
        self,
        store: Store,
        policy: RetentionConfig,
        *,
        keep_keys_seconds: float | None = None,
        busy: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
        idle_clocks: Sequence[IdleClock] = (),
    ) -> None:
        super().__init__(policy.interval_seconds)
        self.store = store
        self.policy = policy
        # `ingress.acceptance_window_seconds`: an inbox row holds its request's dedupe key, and
        # a replay younger than the window is refused only while the key is there.
        self.keep_keys_seconds = keep_keys_seconds
        self.busy = busy
        self.clock = clock
        # The loop's and the store writer's idle time (gateway/pipeline/cpu_pacing.py); with none, a pass
        # gives way whenever ingress is busy.
        self.spare = SpareMeter(idle_clocks) if idle_clocks else None

    def cutoffs(self, now: float) -> dict[str, float]:
        """Per table, the time before which its rows may go (tables kept for ever: absent)."""
        days = {
            "inbox": self.policy.days,
            "outbox": self.policy.days,
            "events": self.policy.days,
            "messages": self.policy.message_days,
            # Closed ones, counted from the close: what was said goes with the copies of it.
            "conversations": self.policy.message_days,
        }
        cutoffs = {table: now - d * DAY for table, d in days.items() if d is not None}
        if "inbox" in cutoffs and self.keep_keys_seconds is not None:
            cutoffs["inbox"] = min(cutoffs["inbox"], now - self.keep_keys_seconds)
        return cutoffs

    async def prune(self) -> dict[str, int]:
        """One pass; rows deleted per table. Stops early (the counts so far) when it gives way."""
        deleted = dict.fromkeys(PRUNERS, 0)
        for table, cutoff in self.cutoffs(self.clock()).items():
            while True:
                if self.stopping:  # a batch is short; the pass is not
                    return deleted
                if await self._gives_way():
                    log.info("retention_paused", reason="ingress busy", deleted=deleted)
                    return deleted
                count = await self.store.prune(table, cutoff, self.policy.batch_size)
                deleted[table] += count
                PRUNED.labels(table).inc(count)
                if count < self.policy.batch_size:
                    break
        return deleted

    async def _gives_way(self) -> bool:
        """True while ingress is busy, unless a pause shows the CPU to spare for a batch."""
        if not self.busy():
            return False
        return self.spare is None or await self.spare.pause(BUSY_PAUSE) < SPARE

    async def run_once(self) -> bool:
        deleted = await self.prune()
        if any(deleted.values()):
            log.info("retention_pruned", **deleted)
        return False  # next pass after the interval
