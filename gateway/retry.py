"""One retry policy for everything that leaves through the outbox."""

from __future__ import annotations

import random

from gateway.config import DeliveryConfig


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
