"""Broadcasts in the background: the API accepts one at once, this worker expands it.

Each run queues one batch of a due broadcast's members (bulk sends, or skips with their
reason), committed with the broadcast's progress: a crash after the API answered loses no
member and queues none twice. Between batches the loop yields, so webhooks and API calls on
an SQLite store (whose writer is the event loop) wait for one batch at most. Once nothing of
a broadcast is queued any more, it is finished and `broadcast.completed` goes to the backends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from adapters.base import Adapter
from gateway.logs import get_logger
from gateway.pipeline.worker import Worker
from gateway.router.broadcasts import ChannelRules
from gateway.store import Store
from gateway.store.records import TargetsFor

log = get_logger("gateway.broadcasts")

# Members per transaction: 10,000 are queued in about as many batches as a second has
# tenths, each short enough not to hold other writers up noticeably.
BATCH = 250
# How often broadcasts under way are checked for their end (and scheduled ones for their time).
POLL_SECONDS = 1.0


def channel_rules(adapters: Mapping[str, Adapter]) -> dict[str, ChannelRules]:
    return {
        channel: ChannelRules(adapter.profile.window_hours, adapter.profile.templates)
        for channel, adapter in adapters.items()
    }


class BroadcastWorker(Worker):
    name = "broadcasts"

    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        targets_for: TargetsFor,
        wake_lane: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(POLL_SECONDS)
        self.store = store
        self.adapters = adapters
        self.targets_for = targets_for
        self.wake_lane = wake_lane
        self.clock = clock

    async def run_once(self) -> bool:
        expanded = await self.store.expand_broadcast(
            self.clock(), BATCH, channel_rules(self.adapters)
        )
        if expanded is not None:
            for channel in expanded.channels:
                self.wake_lane(channel)
            if expanded.done:
                log.info("broadcast_expanded", broadcast_id=expanded.broadcast_id)
            return True
        ended = await self.store.finish_broadcasts(self.targets_for, self.clock())
        for broadcast_id in ended:
            log.info("broadcast_finished", broadcast_id=broadcast_id)
        if ended:
            self.wake_listeners()
        return False
