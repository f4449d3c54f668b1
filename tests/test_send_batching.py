"""Sending at the speed of the wire: a claim carries a round of sends, the store is read once a
claim, and provider requests in flight stay within delivery.send_concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from gateway.app import build_adapters
from gateway.outbound.transport import Transport
from gateway.pipeline.dispatcher import Dispatcher

from .conftest import API_KEY, base_config, config_from

AUTH = {"Authorization": f"Bearer {API_KEY}"}
TEMPLATE = {"type": "template", "template": {"name": "order_update", "language": "en_US"}}
MESSAGES = 40
CONCURRENCY = 4


async def test_a_claim_carries_a_round_of_sends_within_the_send_concurrency(
    tmp_path: Path, start_gateway: Any
) -> None:
    in_flight = most = 0

    async def graph(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.03)
        in_flight -= 1
        return httpx.Response(200, json={"messages": [{"id": f"wamid.{request.content!r}"}]})

    data = base_config(tmp_path)
    data["delivery"]["send_concurrency"] = CONCURRENCY
    data["channels"][0]["rate_limit_per_second"] = 10_000
    client = httpx.AsyncClient(transport=httpx.MockTransport(graph))
    gw = await start_gateway(config_from(data), http_client=client)
    store = gw.gateway.store
    claims: list[int] = []
    reads: list[str] = []
    claim, read = store.claim_outbox, store.get_message
    # The sends' claims wait until all MESSAGES are queued: otherwise how many each claim finds
    # depends on how fast the API queues them beside the dispatcher (on a loaded machine, one
    # at a time), and the counts below would measure the machine instead of the claiming.
    all_queued = asyncio.Event()

    async def counted_claim(kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind == "send":
            await all_queued.wait()
        items = await claim(kind, *args, **kwargs)
        if kind == "send" and items:
            claims.append(len(items))
        return items

    async def counted_read(message_id: str, **kwargs: Any) -> Any:
        reads.append(message_id)
        return await read(message_id, **kwargs)

    store.claim_outbox = counted_claim
    store.get_message = counted_read
    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as api:

        async def send(n: int) -> str:
            to = {"channel": "wa-main", "id": f"1650555{n:04d}"}
            accepted = await api.post("/v1/messages", json={"to": to, "content": TEMPLATE})
            assert accepted.status_code == 202
            return str(accepted.json()["id"])

        ids = await asyncio.gather(*(send(n) for n in range(MESSAGES)))
        all_queued.set()
        async with asyncio.timeout(60):
            while [(await read(i)).state for i in ids] != ["sent"] * MESSAGES:  # type: ignore[union-attr]
                await asyncio.sleep(0.05)
    await client.aclose()
    assert sum(claims) == MESSAGES
    # Claimed a round ahead: one claim per send's end would make MESSAGES - CONCURRENCY or so.
    assert len(claims) <= MESSAGES // 2, claims
    assert max(claims) > CONCURRENCY  # more than a round in hand: rendering and recording
    assert most <= CONCURRENCY  # ... while the provider sees at most send_concurrency at once
    assert reads == []  # a claim's messages are read in one go, not one by one


async def test_a_slow_channel_keeps_one_round_in_hand(tmp_path: Path) -> None:
    """Claimed rows wait their turn under their lease: a channel at one message a second must
    not claim a minute's worth ahead."""
    data = base_config(tmp_path)
    data["delivery"]["send_concurrency"] = 16
    fast = data["channels"][0]
    data["channels"] = [
        {**fast, "rate_limit_per_second": 1_000},
        {**fast, "id": "wa-slow", "phone_number_id": "2", "rate_limit_per_second": 1},
    ]
    config = config_from(data)
    store = SimpleNamespace(defer_outbox=None)
    dispatcher = Dispatcher(
        store,  # type: ignore[arg-type]
        build_adapters(config),
        Transport(httpx.AsyncClient()),
        lambda _event: [],
        config.delivery,
    )
    in_flight: dict[str, int] = {}
    dispatcher.turns.in_flight = lambda channel: in_flight.get(channel, 0)  # type: ignore[method-assign]
    # The fast channel: four rounds in hand, claimed a round at a time.
    assert dispatcher.capacity("wa-main") == 64
    in_flight["wa-main"] = 60
    assert dispatcher.capacity("wa-main") == 0
    in_flight["wa-main"] = 48
    assert dispatcher.capacity("wa-main") == 16
    # The slow one: one round, topped up as each send ends.
    assert dispatcher.capacity("wa-slow") == 16
    in_flight["wa-slow"] = 15
    assert dispatcher.capacity("wa-slow") == 1
    in_flight["wa-slow"] = 16
    assert dispatcher.capacity("wa-slow") == 0
