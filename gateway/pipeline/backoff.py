"""One retry policy for everything that leaves through the outbox."""

from __future__ import annotations

import asyncio
import contextlib
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


async def retry_store_write(write: Callable[[], Awaitable[T]], within: float, what: str) -> T:
    """Run `write` again after store errors, for up to `within` seconds: a write recording
    work already done outside (a provider accepted a send, a backend took a batch), or putting
    claimed rows back in line. Given up at once, the rows stayed claimed for their lease (then
    the work was done twice, or a recipient's line waited minutes): a PostgreSQL restart takes
    seconds. Each such write is safe to repeat (finishing a finished row changes nothing)."""
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


async def claim_or_undo(
    claim: Callable[[], Awaitable[T]], undo: Callable[[], Awaitable[None]], within: float
) -> T:
    """`claim()`; when it fails with a store error, `undo()` (retried through store errors for
    up to `within` seconds) before the error goes on: see `Store.unclaim`."""
    try:
        return await claim()
    except Exception as exc:
        if is_store_error(exc):
            with contextlib.suppress(Exception):
                await retry_store_write(undo, within, "claim_undone")
        raise
