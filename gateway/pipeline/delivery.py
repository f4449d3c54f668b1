"""Outbox → backends: batched, signed webhooks, at least once, backing off while a backend is down.

Each backend has a lane of its own (gateway/pipeline/lanes.py): one that is down, or slow to
answer, delays only its own events. While it fails, its lane pauses as a whole, so new events
do not each knock on a door that is known to be shut; the events that failed keep their place
in line, so a backlog reaches the backend in the order it was made. One claim of a backend's
events is under way at a time, across every gateway process on the store, and the events of a
failed claim stay claimed for the wait: the order and the wait hold for all of them.

A batch the backend refuses as a request (400, 413, 422) may be refused for one event in it:
one its parser trips on, or the sheer size. Such a batch is split in halves, each posted on
its own, so the others get through and only what is refused waits (and in time is
dead-lettered) rather than dragging its batch-mates along at every retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import NamedTuple

import httpx

from adapters.base import retry_after_seconds
from gateway.config import BackendConfig, DeliveryConfig
from gateway.ids import new_id
from gateway.live import LiveMap, get_or_removed
from gateway.logs import get_logger
from gateway.metrics import BACKEND_DELIVERIES
from gateway.outbound.http_client import direct
from gateway.pipeline.backoff import backoff_seconds, retry_store_write
from gateway.pipeline.lanes import Lane, LaneWorker
from gateway.signing import delivery_headers
from gateway.store import OutboxItem, Store

log = get_logger("gateway.delivery")

DELIVERY_HEADER = "X-Gateway-Delivery"
CLAIM = 1000
# A claim's lease. It is renewed while the claim is posted (Claim.keep), so it need only outlast
# two posts at a backend's timeout plus the store's writes around them; short, because a
# process that dies mid-claim holds its backend's deliveries, from every process, until then.
LEASE_SECONDS = 30.0
STORE_MARGIN_SECONDS = 5.0
# Refusals of the request itself, which may come from one event in the batch: split on them.
# Not 401/403 (our signature or the backend's access rules refuse every batch alike).
SPLIT_ON = frozenset({400, 413, 422})


class Failure(NamedTuple):
    error: str
    retry_after: float | None = None
    status: int | None = None  # the backend's HTTP status, when it answered


def lease_seconds(backends: list[BackendConfig]) -> float:
    """A claim's lease: outlasting two posts at the slowest backend's timeout."""
    return max([LEASE_SECONDS] + [2 * (b.timeout_seconds + STORE_MARGIN_SECONDS) for b in backends])


def batch_body(items: list[OutboxItem]) -> bytes:
    # Events are stored as JSON already: splice them rather than parse and re-serialise.
    return b'{"events":[' + b",".join((i.body or "{}").encode() for i in items) + b"]}"


class Claim:
    """The rows a lane claimed, while it works them: their lease kept alive, so that no other
    process takes them (and so no other claim of the backend's starts) while they are posted;
    put back in line when the work is cut short, rather than held till the lease runs out."""

    def __init__(self, store: Store, items: list[OutboxItem], lease_seconds: float) -> None:
        self.store = store
        self.ids = [i.id for i in items]
        self.lease_seconds = lease_seconds
        self.renew_at = time.monotonic() + lease_seconds / 2

    async def keep(self) -> None:
        """Before each post: renew the lease once half of it is spent (a post and the store's
        writes after it take at most half a lease, so it never lapses). Rows already done or
        put back are left alone."""
        if time.monotonic() >= self.renew_at:
            await self.store.extend_outbox_lease(self.ids, time.time() + self.lease_seconds)
            self.renew_at = time.monotonic() + self.lease_seconds / 2

    async def release(self) -> None:
        await retry_store_write(
            lambda: self.store.release_outbox(self.ids), STORE_MARGIN_SECONDS, "claim_released"
        )


class WebhookDelivery(LaneWorker):
    name = "webhook-delivery"
    kind = "webhook"
    claim_limit = CLAIM
    one_claim_at_a_time = True  # a backend gets its events in order from any number of gateways
    linger = 0.02  # events of the next 20 ms go in the same post

    def __init__(
        self,
        store: Store,
        backends: list[BackendConfig],
        client: httpx.AsyncClient,
        policy: DeliveryConfig,
    ) -> None:
        super().__init__(store, [b.id for b in backends], policy.poll_interval_seconds)
        self.lease_seconds = lease_seconds(backends)
        self.backends: LiveMap[BackendConfig] = LiveMap({b.id: b for b in backends})
        self.client = client
        # The gateway's own client: posts go straight to its pool, as provider sends do
        # (gateway/outbound/http_client.py); any other client (tests' mocks) gets them as written.
        self._direct = direct(client)
        self.policy = policy
        self._failures: dict[str, int] = {}  # failed posts in a row, per backend

    def reconfigure(self, backends: list[BackendConfig]) -> list[Lane]:
        """A reload's backends, swapped in; the lanes of those removed, to be stopped."""
        self.backends.replace({b.id: b for b in backends})
        self.lease_seconds = lease_seconds(backends)
        return self.retarget([b.id for b in backends])

    async def work(self, target: str, items: list[OutboxItem]) -> float:
        claim = Claim(self.store, items, self.lease_seconds)
        try:
            return await self._deliver(target, items, claim)
        except BaseException:  # shutdown's cancel, a store error: the rest goes back in line
            with contextlib.suppress(Exception):
                await asyncio.shield(claim.release())
            raise

    async def _deliver(self, target: str, items: list[OutboxItem], claim: Claim) -> float:
        """Post `items` in batches; how long the backend's lane pauses (0 when all went)."""
        # Claimed before a reload removed the backend, the claim is still posted.
        backend = get_or_removed(self.backends, target)
        if backend is None:
            await self.store.retry_outbox(
                [i.id for i in items],
                time.time(),
                f"backend {target!r} is not configured",
                True,
                time.time(),
            )
            return 0.0
        for start in range(0, len(items), backend.batch_size):
            batch = items[start : start + backend.batch_size]
            refused, failure = await self._post_splitting(backend, batch, claim)
            if failure is None:
                continue
            if len(refused) < len(batch):  # the backend took the rest: it is up, go on
                await self._retry(backend, refused, failure, lane_failed=False)
                continue
            # The backend is down or refuses everything: the rest of the claim waits too.
            return await self._retry(backend, items[start:], failure)
        self._failures.pop(backend.id, None)
        return 0.0

    async def _post_splitting(
        self, backend: BackendConfig, items: list[OutboxItem], claim: Claim
    ) -> tuple[list[OutboxItem], Failure | None]:
        """POST `items`, in halves when refused as a request: what is still refused, and why."""
        await claim.keep()
        failure = await self._post(backend, items)
        if failure is None:
            return [], None
        if failure.status not in SPLIT_ON or len(items) == 1:
            return items, failure
        log.info("backend_batch_split", backend=backend.id, error=failure.error, events=len(items))
        half = len(items) // 2
        first, first_failure = await self._post_splitting(backend, items[:half], claim)
        second, second_failure = await self._post_splitting(backend, items[half:], claim)
        return first + second, first_failure or second_failure

    async def _post(self, backend: BackendConfig, items: list[OutboxItem]) -> Failure | None:
        """POST one batch: None once the backend took it, else why not."""
        body = batch_body(items)
        delivery_id = new_id("dlv")
        headers = {
            "Content-Type": "application/json",
            # Signed as it leaves, not when queued: the timestamp is when this post was made.
            **delivery_headers(backend.secret.get_secret_value(), body, int(time.time())),
            DELIVERY_HEADER: delivery_id,
        }
        try:
            # httpx's timeout bounds each read, so an answer trickling in would never end it.
            async with asyncio.timeout(backend.timeout_seconds):
                status, answer_headers = await self._exchange(backend.url, headers, body)
        except TimeoutError:
            return Failure(f"no answer within {backend.timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return Failure(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if not 200 <= status < 300:
            return Failure(f"HTTP {status}", retry_after_seconds(answer_headers), status)
        # Within the lease left after a post (STORE_MARGIN_SECONDS): past it, a redelivery.
        ids = [i.id for i in items]
        await retry_store_write(
            lambda: self.store.complete_outbox(ids, time.time()),
            STORE_MARGIN_SECONDS,
            "backend_delivered",
        )
        BACKEND_DELIVERIES.labels(backend.id, "ok").inc()
        log.info(
            "backend_delivered",
            backend=backend.id,
            delivery_id=delivery_id,
            events=[i.ref for i in items],
        )
        return None

    async def _exchange(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str]]:
        """POST `body`: the answer's status and headers (its body says nothing to us)."""
        if self._direct is not None:
            answer = await self._direct.exchange("POST", url, headers, body, self.client.timeout)
            return answer.status, answer.headers
        response = await self.client.post(url, content=body, headers=headers)
        return response.status_code, response.headers

    async def _retry(
        self,
        backend: BackendConfig,
        items: list[OutboxItem],
        failure: Failure,
        *,
        lane_failed: bool = True,
    ) -> float:
        """Retry `items` later (dead-letter those past their time); the delay."""
        now = time.time()
        attempts = max(i.attempts for i in items)
        if lane_failed:
            failures = self._failures[backend.id] = self._failures.get(backend.id, 0) + 1
            # Events queued while the backend was down have no attempts of their own yet.
            attempts = max(attempts, failures - 1)
        delay = backoff_seconds(attempts, self.policy, failure.retry_after)
        expired = now - self.policy.dead_letter_after_seconds
        dead = [i.id for i in items if i.created_at < expired]
        waiting = [i.id for i in items if i.created_at >= expired]
        BACKEND_DELIVERIES.labels(backend.id, "dead" if dead else "retry").inc()
        log.warning(
            "backend_delivery_failed",
            backend=backend.id,
            error=failure.error,
            events=len(items),
            attempt=attempts + 1,
            retry_in=round(delay, 2),
            dead_lettered=len(dead),
        )
        if waiting and lane_failed:
            # The rows keep their place, ahead of the events queued while the lane waits (given
            # a later time, they would come after those: a backlog out of order), and stay
            # claimed for the wait, so no gateway sharing the store knocks meanwhile either.
            await self.store.hold_outbox(waiting, now + delay, failure.error)
        elif waiting:  # one refused event goes to the back alone, as its lane goes on
            await self.store.retry_outbox(waiting, now + delay, failure.error, False, now)
        if dead:
            await self.store.retry_outbox(dead, now + delay, failure.error, True, now)
        return delay
