"""One retry policy for everything that leaves through the outbox."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.config import DeliveryConfig
from gateway.logs import get_logger
from gateway.store import is_store_error

T = TypeVar("T")
log = get_logger("gateway.retry")


def backoff_seconds(
    attempts: int,
    policy: DeliveryConfig,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Capped exponential backoff with jitter; a provider's Retry-After is a floor."""
    ceiling = min(policy.max_backoff_seconds, policy.base_backoff_seconds * 2 ** min(attempts, 30))
    # "Equal jitter": at least half the ceiling, so retries spread out but never bunch at zero.
    delay: float = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


async def record_done(write: Callable[[], Awaitable[T]], within: float, what: str) -> T:
    """Run `write`, which records something already done outside (a provider accepted a send,
    a backend took a batch), again after store errors for up to `within` seconds. Given up at
    once, the row's lease would lapse and the work be done twice: a PostgreSQL restart takes
    a few seconds, and each write is safe to repeat (finishing a finished row changes nothing).
    """
    deadline = time.monotonic() + within
    delay = 0.05
    while True:
        try:
            return await write()
        except Exception as exc:
            if not is_store_error(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("store_write_retried", what=what, error=type(exc).__name__)
        await asyncio.sleep(delay)
        delay = min(2 * delay, 1.0)
