"""Outbox → backends: batched, signed webhooks, at least once, backing off while a backend is down."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import defaultdict

import httpx

from adapters.base import retry_after_seconds
from gateway.config import BackendConfig, DeliveryConfig
from gateway.ids import new_id
from gateway.logs import get_logger
from gateway.metrics import BACKEND_DELIVERIES
from gateway.pipeline.worker import Worker
from gateway.retry import backoff_seconds
from gateway.store import OutboxItem, Store

log = get_logger("gateway.delivery")

SIGNATURE_HEADER = "X-Gateway-Signature"
DELIVERY_HEADER = "X-Gateway-Delivery"
CLAIM = 1000
LEASE_SECONDS = 60.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


def batch_body(items: list[OutboxItem]) -> bytes:
    # Events are stored as JSON already: splice them rather than parse and re-serialise.
    return b'{"events":[' + b",".join((i.body or "{}").encode() for i in items) + b"]}"


class WebhookDelivery(Worker):
    name = "webhook-delivery"

    def __init__(
        self,
        store: Store,
        backends: list[BackendConfig],
        client: httpx.AsyncClient,
        policy: DeliveryConfig,
    ) -> None:
        super().__init__(policy.poll_interval_seconds)
        self.store = store
        self.backends = {b.id: b for b in backends}
        self.client = client
        self.policy = policy

    async def run_once(self) -> bool:
        now = time.time()
        items = await self.store.claim_outbox("webhook", CLAIM, now, LEASE_SECONDS)
        if not items:
            return False
        by_backend: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_backend[item.target].append(item)
        await asyncio.gather(
            *(self._deliver(target, batch) for target, batch in by_backend.items())
        )
        return len(items) == CLAIM

    async def _deliver(self, target: str, items: list[OutboxItem]) -> None:
        backend = self.backends.get(target)
        if backend is None:
            await self.store.retry_outbox(
                [i.id for i in items],
                time.time(),
                f"backend {target!r} is not configured",
                True,
                time.time(),
            )
            return
        for start in range(0, len(items), backend.batch_size):
            await self._post(backend, items[start : start + backend.batch_size])

    async def _post(self, backend: BackendConfig, items: list[OutboxItem]) -> None:
        body = batch_body(items)
        delivery_id = new_id("dlv")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(backend.secret.get_secret_value(), body),
            DELIVERY_HEADER: delivery_id,
        }
        error: str | None = None
        retry_after: float | None = None
        try:
            response = await self.client.post(
                backend.url, content=body, headers=headers, timeout=backend.timeout_seconds
            )
            if 200 <= response.status_code < 300:
                await self.store.complete_outbox([i.id for i in items], time.time())
                BACKEND_DELIVERIES.labels(backend.id, "ok").inc()
                log.info(
                    "backend_delivered",
                    backend=backend.id,
                    delivery_id=delivery_id,
                    events=[i.ref for i in items],
                )
                return
            error = f"HTTP {response.status_code}"
            retry_after = retry_after_seconds(response.headers)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await self._retry(backend, items, error, retry_after)

    async def _retry(
        self, backend: BackendConfig, items: list[OutboxItem], error: str, retry_after: float | None
    ) -> None:
        now = time.time()
        attempts = max(i.attempts for i in items)
        dead = now - min(i.created_at for i in items) > self.policy.dead_letter_after_seconds
        delay = backoff_seconds(attempts, self.policy, retry_after)
        BACKEND_DELIVERIES.labels(backend.id, "dead" if dead else "retry").inc()
        log.warning(
            "backend_delivery_failed",
            backend=backend.id,
            error=error,
            events=len(items),
            attempt=attempts + 1,
            retry_in=None if dead else round(delay, 2),
            dead_lettered=dead,
        )
        await self.store.retry_outbox([i.id for i in items], now + delay, error, dead, now)
