"""Messages held for "Which chat is this for?" (gateway/store/questions.py): every few
seconds, those whose question went unanswered for `conversations.route_question_seconds` go
to the most recently active of the conversations offered, so none waits for ever."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.logs import get_logger
from gateway.pipeline.worker import Worker
from gateway.store import Store
from gateway.store.records import TargetsFor

log = get_logger("gateway.route_questions")

# A question's time is minutes: a few seconds more before its messages go changes nothing.
SWEEP_SECONDS = 5.0
BATCH = 100


class UnansweredQuestions(Worker):
    name = "route_questions"

    def __init__(
        self, store: Store, targets_for: TargetsFor, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(SWEEP_SECONDS)
        self.store = store
        self.targets_for = targets_for
        self.clock = clock

    async def run_once(self) -> bool:
        settled = await self.store.expire_route_questions(self.targets_for, self.clock(), BATCH)
        if settled:
            log.info("route_questions_expired", count=settled)
            self.wake_listeners()
        return settled >= BATCH
