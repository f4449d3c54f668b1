"""Backend delivery: a backend's Retry-After is a floor on the next attempt, never a way to
park events for ever (a backend, or a proxy in front of it, may send anything); events keep
their place in line while their backend's lane waits."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import respx

from adapters.base import MAX_RETRY_AFTER_SECONDS
from gateway.config import BackendConfig, DeliveryConfig
from gateway.pipeline.delivery import WebhookDelivery
from gateway.store import OutboxItem

BACKEND_URL = "http://backend.test/events"
POLICY = DeliveryConfig(base_backoff_seconds=1.0, max_backoff_seconds=60.0)


class RecordingStore:
    """The two outbox calls a delivery makes, recorded."""

    def __init__(self) -> None:
        self.retried: list[dict[str, Any]] = []
        self.held: list[dict[str, Any]] = []
        self.completed: list[int] = []

    async def retry_outbox(
        self, ids: list[int], next_at: float, error: str, dead: bool, now: float
    ) -> None:
        self.retried.append({"ids": ids, "wait": next_at - now, "error": error, "dead": dead})

    async def hold_outbox(self, ids: list[int], until: float, error: str) -> None:
        self.held.append({"ids": ids, "until": until, "error": error})

    async def complete_outbox(self, ids: list[int], now: float) -> None:
        self.completed += ids


def queued(count: int) -> list[OutboxItem]:
    return [
        OutboxItem(n, "webhook", "orders", f"evt_{n}", 0, time.time(), f'{{"id":"evt_{n}"}}')
        for n in range(count)
    ]


@pytest.mark.parametrize(
    ("retry_after", "least", "most"),
    [
        (None, 0.5, 1.0),  # first attempt: half to all of the base backoff
        ("30", 30.0, 30.0),  # the backend's wait is a floor
        ("-5", 0.5, 1.0),  # in the past: our own backoff
        ("1e309", 0.5, 1.0),  # not a finite number: ignored (it once parked events for ever)
        ("99999999", MAX_RETRY_AFTER_SECONDS, MAX_RETRY_AFTER_SECONDS),  # capped at an hour
    ],
)
@respx.mock
async def test_retry_after_from_a_backend_is_a_bounded_floor(
    retry_after: str | None, least: float, most: float
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    respx.post(BACKEND_URL).mock(return_value=httpx.Response(503, headers=headers))
    store = RecordingStore()
    backend = BackendConfig(id="orders", url=BACKEND_URL, secret="backend-secret-0123")
    async with httpx.AsyncClient() as client:
        delivery = WebhookDelivery(store, [backend], client, POLICY)  # type: ignore[arg-type]
        item = OutboxItem(7, "webhook", "orders", "evt_1", 0, time.time(), '{"id":"evt_1"}')
        before = time.time()
        pause = await delivery.work("orders", [item])
        after = time.time()
    # The backend is down: its lane waits, and the event keeps its place in line, held for
    # the wait (so no other gateway on the store knocks meanwhile): until the pause from a
    # moment within the call (not "within 0.1 s of now", which a loaded machine can miss).
    assert least <= pause <= most
    [held] = store.held
    assert held["ids"] == [7] and held["error"] == "HTTP 503"
    assert before + pause <= held["until"] <= after + pause
    assert store.retried == store.completed == []


@respx.mock
async def test_an_event_refused_alone_goes_to_the_back_and_its_lane_goes_on() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422 if b"evt_2" in request.content else 200)

    respx.post(BACKEND_URL).mock(side_effect=answer)
    store = RecordingStore()
    backend = BackendConfig(id="orders", url=BACKEND_URL, secret="backend-secret-0123")
    items = queued(4)
    async with httpx.AsyncClient() as client:
        delivery = WebhookDelivery(store, [backend], client, POLICY)  # type: ignore[arg-type]
        pause = await delivery.work("orders", items)
    assert pause == 0.0
    assert sorted(store.completed) == [0, 1, 3]
    [retried] = store.retried
    assert retried["ids"] == [2] and retried["error"] == "HTTP 422"
    assert 0.5 <= retried["wait"] <= 1.0


@pytest.mark.parametrize(
    ("status", "posts"),
    [
        (413, 7),  # refused as a request: 4 → 2 + 2 → 1 + 1 + 1 + 1
        (422, 7),
        (401, 1),  # our signature or the backend's rules: every half would be refused alike
        (503, 1),  # down: halves would only knock on the same shut door
    ],
)
@respx.mock
async def test_only_a_batch_refused_as_a_request_is_split(status: int, posts: int) -> None:
    route = respx.post(BACKEND_URL).mock(return_value=httpx.Response(status))
    store = RecordingStore()
    backend = BackendConfig(id="orders", url=BACKEND_URL, secret="backend-secret-0123")
    items = queued(4)
    async with httpx.AsyncClient() as client:
        delivery = WebhookDelivery(store, [backend], client, POLICY)  # type: ignore[arg-type]
        await delivery.work("orders", items)
    assert route.call_count == posts
    # Every event refused: the lane waits as a whole, the events in their place.
    assert [r["ids"] for r in store.held] == [[0, 1, 2, 3]]
    assert store.held[0]["error"] == f"HTTP {status}"
    assert store.retried == []
