"""A backend gets its events in the order they were made, from one gateway or from several
sharing one PostgreSQL: one claim of a backend's rows is under way at a time, its lease is
kept alive while it is posted, and what a cut-short claim held goes back in line at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from aiohttp import web

from gateway.config import BackendConfig, DeliveryConfig
from gateway.pipeline.delivery import WebhookDelivery
from gateway.store import OutboxItem, Store

from .conftest import eventually

NOW = 1_760_000_000.0
POLICY = DeliveryConfig(
    base_backoff_seconds=0.05, max_backoff_seconds=0.2, poll_interval_seconds=0.05
)


def queue_events(store: Store, count: int, target: str = "orders") -> Any:
    """`count` events for `target`, made one after another (ids evt_000, evt_001, ...)."""

    def op(tx: Any) -> None:
        for n in range(count):
            event_id = f"evt_{n:03d}"
            tx.execute(
                "INSERT INTO events (id, channel_id, dedupe_key, type, created_at, body)"
                " VALUES (?, 'wa', ?, 'message', ?, ?)",
                (event_id, event_id, NOW, json.dumps({"id": event_id})),
            )
            tx.execute(
                "INSERT INTO outbox (kind, target, ref, status, next_attempt_at, created_at)"
                " VALUES ('webhook', ?, ?, 'pending', ?, ?)",
                (target, event_id, NOW + n * 1e-3, time.time()),  # made now: not dead-lettered
            )

    return store.db.run(op)


async def test_one_claim_of_a_target_at_a_time(store: Store) -> None:
    await queue_events(store, 6)
    first = await store.claim_outbox("webhook", 2, NOW + 1, 30, target="orders", one_at_a_time=True)
    assert [i.ref for i in first] == ["evt_000", "evt_001"]
    # Another claim of the same target waits while that one is under way ...
    assert (
        await store.claim_outbox("webhook", 2, NOW + 2, 30, target="orders", one_at_a_time=True)
        == []
    )
    # ... but not without `one_at_a_time` (sends), nor for another target.
    assert len(await store.claim_outbox("webhook", 1, NOW + 2, 30, target="orders")) == 1
    await store.complete_outbox([i.id for i in first], NOW + 3)
    await store.release_outbox([i.id for i in first])  # done rows stay done
    # Still one under way: the claim made without `one_at_a_time`.
    assert (
        await store.claim_outbox("webhook", 2, NOW + 4, 30, target="orders", one_at_a_time=True)
        == []
    )
    # A lease that ran out (its process died) holds nothing up.
    later = await store.claim_outbox(
        "webhook", 2, NOW + 40, 30, target="orders", one_at_a_time=True
    )
    assert [i.ref for i in later] == ["evt_002", "evt_003"]


async def test_a_lease_kept_alive_holds_and_a_release_puts_rows_back_in_place(
    store: Store,
) -> None:
    await queue_events(store, 3)
    claimed = await store.claim_outbox(
        "webhook", 2, NOW + 1, 30, target="orders", one_at_a_time=True
    )
    await store.extend_outbox_lease([i.id for i in claimed], NOW + 100)
    # Past the first lease, the claim is still under way.
    assert (
        await store.claim_outbox("webhook", 3, NOW + 50, 30, target="orders", one_at_a_time=True)
        == []
    )
    await store.release_outbox([i.id for i in claimed])
    again = await store.claim_outbox(
        "webhook", 3, NOW + 51, 30, target="orders", one_at_a_time=True
    )
    assert [(i.ref, i.attempts) for i in again] == [("evt_000", 0), ("evt_001", 0), ("evt_002", 0)]


async def test_claims_from_two_processes_never_overlap_for_one_target(
    make_store: Callable[[], Store],
) -> None:
    one, two = make_store(), make_store()
    await queue_events(one, 50)
    claims = await asyncio.gather(
        *(
            s.claim_outbox("webhook", 5, NOW + 1, 30, target="orders", one_at_a_time=True)
            for s in [one, two] * 15
        )
    )
    assert [len(c) for c in claims if c] == [5]


class OrderedBackend:
    """Records the event ids of each post in the order they arrive; each post takes a while, so
    two gateways posting side by side would interleave."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.url = ""
        self.down = False  # answer 503 with Retry-After: 2
        self.posts = 0
        self._runner: web.AppRunner | None = None

    async def receive(self, request: web.Request) -> web.Response:
        self.posts += 1
        if self.down:
            return web.Response(status=503, headers={"Retry-After": "2"})
        events = (await request.json())["events"]
        await asyncio.sleep(0.01)
        self.ids += [e["id"] for e in events]
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self.receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/events"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def received(self, count: int) -> None:
        async with asyncio.timeout(15):
            while len(self.ids) < count:
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def delivering(stores: list[Store], backend: BackendConfig) -> AsyncIterator[None]:
    """One gateway's backend delivery per store, all running: gateways sharing a database."""
    async with httpx.AsyncClient() as client:
        deliveries = [WebhookDelivery(s, [backend], client, POLICY) for s in stores]
        for delivery in deliveries:
            delivery.start()
        try:
            yield
        finally:
            for delivery in deliveries:
                await delivery.stop()


@pytest.fixture
async def ordered_backend() -> AsyncIterator[OrderedBackend]:
    backend = OrderedBackend()
    await backend.start()
    yield backend
    await backend.stop()


async def test_two_gateways_on_one_store_deliver_a_backends_events_in_order(
    make_store: Callable[[], Store], ordered_backend: OrderedBackend, monkeypatch: Any
) -> None:
    monkeypatch.setattr(WebhookDelivery, "claim_limit", 4)
    stores = [make_store(), make_store()]
    await queue_events(stores[0], 40)
    backend = BackendConfig(
        id="orders", url=ordered_backend.url, secret="backend-secret-0123", batch_size=2
    )
    async with delivering(stores, backend):
        await ordered_backend.received(40)
    assert ordered_backend.ids == [f"evt_{n:03d}" for n in range(40)]


async def test_a_backend_that_is_down_is_waited_for_by_every_gateway_on_the_store(
    make_store: Callable[[], Store], ordered_backend: OrderedBackend
) -> None:
    """The events that failed stay claimed for the wait: a second gateway does not knock on
    the door the first found shut, and the Retry-After holds for both."""
    ordered_backend.down = True
    stores = [make_store(), make_store()]
    await queue_events(stores[0], 5)
    backend = BackendConfig(id="orders", url=ordered_backend.url, secret="backend-secret-0123")
    async with delivering(stores, backend):
        # The first knock, whenever a loaded machine gets to it (a fixed 0.7 s could pass
        # before it); then 14 polls each, well inside the backend's 2 s, for a second one.
        await eventually(lambda: ordered_backend.posts)
        await asyncio.sleep(0.7)
        assert ordered_backend.posts == 1
        ordered_backend.down = False
        await ordered_backend.received(5)
    assert ordered_backend.ids == [f"evt_{n:03d}" for n in range(5)]


class LeaseRecordingStore:
    def __init__(self) -> None:
        self.extended: list[list[int]] = []
        self.released: list[list[int]] = []
        self.completed: list[int] = []

    async def extend_outbox_lease(self, ids: list[int], until: float) -> None:
        self.extended.append(list(ids))

    async def release_outbox(self, ids: list[int]) -> None:
        self.released.append(list(ids))

    async def complete_outbox(self, ids: list[int], now: float) -> None:
        self.completed += ids


def items(count: int) -> list[OutboxItem]:
    return [
        OutboxItem(n, "webhook", "orders", f"evt_{n}", 0, time.time(), f'{{"id":"evt_{n}"}}')
        for n in range(count)
    ]


@respx.mock
async def test_a_claim_worked_longer_than_half_its_lease_renews_it() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.06)
        return httpx.Response(200)

    respx.post("http://backend.test/events").mock(side_effect=slow)
    store = LeaseRecordingStore()
    backend = BackendConfig(
        id="orders", url="http://backend.test/events", secret="backend-secret-0123", batch_size=1
    )
    async with httpx.AsyncClient() as client:
        delivery = WebhookDelivery(store, [backend], client, POLICY)  # type: ignore[arg-type]
        delivery.lease_seconds = 0.1  # renewed every 0.05 s: before the 2nd post and the 3rd
        assert await delivery.work("orders", items(3)) == 0.0
    assert store.completed == [0, 1, 2]
    assert store.extended == [[0, 1, 2], [0, 1, 2]]
    assert store.released == []


@respx.mock
async def test_a_claim_cut_short_goes_back_in_line_at_once() -> None:
    posted = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        posted.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    respx.post("http://backend.test/events").mock(side_effect=hang)
    store = LeaseRecordingStore()
    backend = BackendConfig(
        id="orders", url="http://backend.test/events", secret="backend-secret-0123"
    )
    async with httpx.AsyncClient() as client:
        delivery = WebhookDelivery(store, [backend], client, POLICY)  # type: ignore[arg-type]
        work = asyncio.create_task(delivery.work("orders", items(3)))
        await posted.wait()
        work.cancel()
        with pytest.raises(asyncio.CancelledError):
            await work
    assert store.released == [[0, 1, 2]]


def test_the_lease_outlasts_two_posts_at_the_slowest_backends_timeout() -> None:
    backends = [
        BackendConfig(id="quick", url="http://a.test/", secret="backend-secret-0123"),
        BackendConfig(
            id="slow", url="http://b.test/", secret="backend-secret-0123", timeout_seconds=45
        ),
    ]
    delivery = WebhookDelivery(None, backends, None, POLICY)  # type: ignore[arg-type]
    assert delivery.lease_seconds == 2 * (45 + 5)  # two posts, with the store's writes
    quick = WebhookDelivery(None, backends[:1], None, POLICY)  # type: ignore[arg-type]
    assert quick.lease_seconds == 30  # the floor: 2 * (10 + 5)


async def test_a_claims_lock_holds_its_own_schema_only(pg_schema: str) -> None:
    """Gateways in two schemas of one database keep separate lines: a claim under way in one
    holds nothing up in the other (advisory locks are per database, tables per schema)."""
    import uuid

    import psycopg

    from gateway.store import postgres_database
    from gateway.store.postgres import DIALECT
    from tests.conftest import PG_DSN

    assert DIALECT.try_lock is not None
    other = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {other}")
    other_dsn = pg_schema.rsplit("%3D", 1)[0] + "%3D" + other
    stores = [Store(postgres_database(dsn)) for dsn in (pg_schema, other_dsn)]
    try:
        for store in stores:
            store.start()
            await queue_events(store, 2)
        with psycopg.connect(pg_schema) as claiming:  # another process of the first gateway
            lock = DIALECT.try_lock.replace("?", "%s")
            assert claiming.execute(lock, ("outbox:webhook:orders",)).fetchone() == (True,)
            mine, theirs = [
                await store.claim_outbox(
                    "webhook", 2, NOW + 1, 30, target="orders", one_at_a_time=True
                )
                for store in stores
            ]
        assert mine == []
        assert [i.ref for i in theirs] == ["evt_000", "evt_001"]
    finally:
        for store in stores:
            store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {other} CASCADE")
