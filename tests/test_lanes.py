"""Each backend and each channel waits only for itself (gateway/pipeline/lanes.py).

One loop used to claim every target's due rows and wait for the whole batch: a backend that
did not answer held the other backends' events, and a slow SMS broadcast held WhatsApp sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from gateway.app import Gateway
from gateway.pipeline import recipient_order
from gateway.simulator.backend import BackendRecorder
from gateway.simulator.sms import TwilioSimulator
from gateway.simulator.whatsapp import WhatsAppSimulator
from gateway.store import writes

from .conftest import (
    API_KEY,
    BACKEND_SECRET,
    WA,
    base_config,
    config_from,
    eventually,
    post_whatsapp,
    webhook,
    with_backend,
)
from .test_e2e_whatsapp import ORDER_TEMPLATE
from .test_sms_e2e import ACCOUNT_SID, AUTH_TOKEN, NUMBER, sms_channel

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def trickle(request: web.Request) -> web.StreamResponse:
    """An answer that comes a byte every 100 ms, until the client gives up."""
    response = web.StreamResponse(status=200)
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        while True:
            await response.write(b" ")
            await asyncio.sleep(0.1)
    return response


class StuckBackend:
    """A backend that takes each request and then never answers, or answers a byte at a time."""

    def __init__(self, drip: bool = False, status: int | None = None) -> None:
        self.drip = drip
        self.status = status  # answer at once with this status instead
        self.posts = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        self.posts += 1
        await request.read()
        if self.status is not None:
            return web.Response(status=self.status)
        if not self.drip:
            await asyncio.Event().wait()
        return await trickle(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self._receive)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/events"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def stuck() -> AsyncIterator[StuckBackend]:
    backend = StuckBackend()
    await backend.start()
    yield backend
    await backend.stop()


def backends(*entries: tuple[str, str, float]) -> list[dict[str, Any]]:
    return [
        {"id": name, "url": url, "secret": BACKEND_SECRET, "timeout_seconds": timeout}
        for name, url, timeout in entries
    ]


async def test_a_backend_that_does_not_answer_holds_up_only_its_own_events(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder, stuck: StuckBackend
) -> None:
    data = base_config(tmp_path)
    data["backends"] = backends(("stuck", stuck.url, 60), ("orders", backend.url, 60))
    gw = await start_gateway(config_from(data))
    await post_whatsapp(gw.url, webhook("wamid.LANES1", "first"))
    await backend.wait_for(lambda events: len(events) == 1, timeout=30)
    await post_whatsapp(gw.url, webhook("wamid.LANES2", "second"))
    # The stuck backend holds the first event's post until its 60 s timeout: the second must
    # not wait for it. (Within 30 s however loaded the machine; waiting for it would take 60.)
    await backend.wait_for(lambda events: len(events) == 2, timeout=30)
    assert stuck.posts == 1  # its lane is still waiting on its first post


async def test_an_answer_that_trickles_in_is_cut_at_the_backends_timeout(
    tmp_path: Path, start_gateway: Any
) -> None:
    """httpx's timeout bounds each read: a byte every 100 ms would have held the post for ever."""
    dripping = StuckBackend(drip=True)
    await dripping.start()
    try:
        data = base_config(tmp_path)
        data["backends"] = backends(("slow", dripping.url, 0.5))
        gw = await start_gateway(config_from(data))
        await post_whatsapp(gw.url, webhook("wamid.LANES3", "hello"))
        async with asyncio.timeout(5):
            while '"event": "backend_delivery_failed"' not in gw.logs.getvalue():
                await asyncio.sleep(0.05)
        failed = [
            json.loads(line)
            for line in gw.logs.getvalue().splitlines()
            if '"backend_delivery_failed"' in line
        ]
        assert failed[0]["error"] == "no answer within 0.5 s"
        assert failed[0]["backend"] == "slow"
    finally:
        await dripping.stop()


async def test_a_failing_backend_pauses_as_a_whole(tmp_path: Path, start_gateway: Any) -> None:
    """New events for a backend that is down wait out its backoff with the ones that failed,
    instead of each knocking at once."""
    down = StuckBackend(status=503)
    await down.start()
    try:
        # A backoff long beside the posting below, however slow a loaded machine makes it.
        data = base_config(tmp_path, delivery={"base_backoff_seconds": 10.0})
        data["backends"] = backends(("down", down.url, 5))
        gw = await start_gateway(config_from(data))
        for n in range(10):
            await post_whatsapp(gw.url, webhook(f"wamid.LANES-DOWN-{n}", "hello"))
            await asyncio.sleep(0.1)
        # One post at the first event; the next only after a 5-10 s pause (the posting above
        # takes about 1 s). Each event knocked before.
        await eventually(lambda: down.posts)
        assert 1 <= down.posts <= 2
        queued = await gw.gateway.store.db.run(
            lambda tx: tx.one("SELECT COUNT(*) FROM outbox WHERE kind = 'webhook'")
        )
        assert queued == (10,)
    finally:
        await down.stop()


@pytest.fixture
async def sims() -> AsyncIterator[tuple[WhatsAppSimulator, TwilioSimulator]]:
    whatsapp = WhatsAppSimulator(
        phone_number_id=WA["phone_number_id"],
        display_phone_number=WA["display_phone_number"],
        access_token=WA["access_token"],
        app_secret=WA["app_secret"],
    )
    sms = TwilioSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, phone_number=NUMBER)
    await whatsapp.start()
    await sms.start()
    yield whatsapp, sms
    await whatsapp.stop()
    await sms.stop()


async def test_a_send_cut_short_at_shutdown_goes_back_in_line_at_once(
    tmp_path: Path, start_gateway: Any
) -> None:
    """Past the grace period a send is cancelled; its row goes back in line rather than stay
    leased for minutes, holding the recipient's next messages from every gateway."""
    # An answer far slower than the stop below, however slow the machine (2 s could pass
    # before it, and the send end before the stop cut it short).
    graph = SlowGraph({"stuck": 30})
    await graph.start()
    try:
        data = base_config(tmp_path)
        data["channels"][0]["api_base_url"] = graph.url
        gw = await start_gateway(config_from(data))
        async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as client:
            message_id = await send_template(client, "16505551234", "stuck")
        await graph.wait_for_arrivals(1)
        await gw.gateway.dispatcher.stop(grace=0.1)
        row = await gw.gateway.store.db.run(
            lambda tx: tx.one(
                "SELECT status, claimed_until FROM outbox WHERE ref = ?", (message_id,)
            )
        )
        assert tuple(row) == ("pending", None)
    finally:
        await graph.stop()


async def test_a_slow_sms_broadcast_does_not_hold_up_whatsapp(
    tmp_path: Path, start_gateway: Any, sims: tuple[WhatsAppSimulator, TwilioSimulator]
) -> None:
    whatsapp, sms = sims
    data = base_config(tmp_path, public_url="https://sms.example.com")
    data["delivery"]["send_concurrency"] = 4  # the broadcast fills three claims of its own
    data["channels"][0]["api_base_url"] = whatsapp.base_url
    data["channels"].append({**sms_channel("sms-us", sms.base_url), "rate_limit_per_second": 2})
    gw = await start_gateway(config_from(data))
    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as client:

        async def queue_sms(n: int) -> int:
            text = {"type": "text", "text": f"Your order is {n} minutes away"}
            sent = await client.post(
                "/v1/messages",
                json={"to": {"channel": "sms-us", "id": f"+141555501{n:02d}"}, "content": text},
            )
            return sent.status_code

        # Six seconds of sending at two a second. Queued side by side: one after the other, on
        # a loaded machine, they took as long as their sending, and WhatsApp's message came
        # after the broadcast had ended.
        assert await asyncio.gather(*(queue_sms(n) for n in range(12))) == [202] * 12
        template = {"type": "template", "template": ORDER_TEMPLATE}
        sent = await client.post(
            "/v1/messages",
            json={"to": {"channel": "wa-main", "id": "16505551234"}, "content": template},
        )
        assert sent.status_code == 202
    started = time.monotonic()
    async with asyncio.timeout(5):
        while not whatsapp.sent:
            await asyncio.sleep(0.02)
    assert time.monotonic() - started < 1.5
    assert len(sms.sent) < 12  # the broadcast is still going, at its own pace
    # At shutdown, the sends still waiting for a token are not waited for, nor started.
    started = time.monotonic()
    await gw.gateway.dispatcher.stop(grace=5)
    assert time.monotonic() - started < 1.5
    sent = len(sms.sent)
    await asyncio.sleep(0.6)
    assert len(sms.sent) == sent < 12
    # ... and they are back in line at once, not held by this gateway till their leases end.
    held = await gw.gateway.store.db.run(
        lambda tx: tx.one(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'send' AND status = 'pending'"
            " AND claimed_until IS NOT NULL"
        )
    )
    assert held == (0,)


async def test_rows_for_a_target_no_longer_configured_are_failed_at_start(tmp_path: Path) -> None:
    """A backend or channel removed from the config has no lane: what was still queued for it
    is failed with the reason when the gateway starts, not left pending for ever."""
    gateway = Gateway(config_from(base_config(tmp_path)))
    await gateway.start()
    now = time.time()
    await gateway.store.db.run(
        lambda tx: tx.execute(
            "INSERT INTO outbox (kind, target, ref, status, next_attempt_at, created_at)"
            " VALUES ('webhook', 'retired', 'evt_gone', 'pending', ?, ?)",
            (now, now),
        )
    )
    await gateway.stop()
    gateway = Gateway(config_from(base_config(tmp_path)))
    await gateway.start()
    try:
        async with asyncio.timeout(5):
            while True:
                row = await gateway.store.db.run(
                    lambda tx: tx.one(
                        "SELECT status, last_error FROM outbox WHERE ref = 'evt_gone'"
                    )
                )
                if row[0] != "pending":
                    break
                await asyncio.sleep(0.02)
        assert tuple(row) == ("dead", "backend 'retired' is not configured")
    finally:
        await gateway.stop()


class StrictBackend(BackendRecorder):
    """A backend whose parser refuses a whole batch (422) for one event it cannot take."""

    def __init__(self) -> None:
        super().__init__(BACKEND_SECRET)
        self.posts: list[int] = []  # events per post, accepted or not

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.posts.append(len(json.loads(body)["events"]))
        if self.available and b"poison" in body:
            return web.Response(status=422, text="cannot parse one of the events")
        return await super()._receive(request)


async def test_an_event_the_backend_refuses_does_not_hold_back_its_batch(
    tmp_path: Path, start_gateway: Any
) -> None:
    strict = StrictBackend()
    await strict.start()
    try:
        strict.available = False  # down while the batch gathers, so it goes as one
        data = base_config(tmp_path)
        data["backends"] = backends(("strict", strict.url, 5))
        gw = await start_gateway(config_from(data))
        texts = ["one", "two", "poison", "four", "five", "six"]
        for n, text in enumerate(texts):
            await post_whatsapp(gw.url, webhook(f"wamid.SPLIT{n}", text))
        async with asyncio.timeout(5):
            while True:
                queued = await gw.gateway.store.db.run(
                    lambda tx: tx.one("SELECT COUNT(*) FROM outbox WHERE kind = 'webhook'")
                )
                if queued == (6,):
                    break
                await asyncio.sleep(0.02)
        strict.available = True
        await strict.wait_for(lambda events: len(events) == 5, timeout=5)
        delivered = [e["message"]["content"]["text"] for e in strict.events]
        assert sorted(delivered) == sorted(t for t in texts if t != "poison")
        assert 6 in strict.posts  # the whole batch went first, then its halves

        async def poison() -> tuple[str, str]:
            row = await gw.gateway.store.db.run(
                lambda tx: tx.one(
                    "SELECT outbox.status, outbox.last_error FROM outbox JOIN events"
                    " ON events.id = outbox.ref WHERE events.body LIKE '%poison%'"
                )
            )
            return tuple(row)  # type: ignore[return-value]

        async with asyncio.timeout(5):
            while (await poison())[1] != "HTTP 422":
                await asyncio.sleep(0.02)
        assert (await poison())[0] == "pending"  # retried alone, dead-lettered in time
    finally:
        await strict.stop()


class SlowGraph:
    """The Cloud API's send endpoint, answering template sends whose text is in `slow` late:
    after that many seconds, or, for a text in `answer_once`, as soon as the text it names has
    arrived (a slow answer that provably overlaps another send, however loaded the machine)."""

    def __init__(
        self,
        slow: dict[str, float],
        fail_first: frozenset[str] = frozenset(),
        answer_once: dict[str, str] | None = None,
    ) -> None:
        self.slow = slow
        self.fail_first = set(fail_first)  # texts whose first send gets a 500 (131000: retry)
        self.answer_once = answer_once or {}
        self.arrivals: list[tuple[float, str, str]] = []  # (when, to, the template's text)
        self.answered: list[str] = []
        self.answered_at: dict[str, float] = {}  # the template's text -> when it was answered
        self._runner: web.AppRunner | None = None
        self.url = ""

    def arrived(self, text: str) -> bool:
        return any(t == text for _at, _to, t in self.arrivals)

    async def _send(self, request: web.Request) -> web.Response:
        payload = await request.json()
        text = payload["template"]["components"][0]["parameters"][0]["text"]
        self.arrivals.append((time.monotonic(), payload["to"], text))
        if text in self.answer_once:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.slow[text]):
                    while not self.arrived(self.answer_once[text]):
                        await asyncio.sleep(0.01)
        else:
            await asyncio.sleep(self.slow.get(text, 0))
        self.answered_at[text] = time.monotonic()
        if text in self.fail_first:
            self.fail_first.discard(text)
            error = {"message": "(#131000) Something went wrong", "type": "OAuthException"}
            return web.json_response({"error": {**error, "code": 131000}}, status=500)
        self.answered.append(text)
        return web.json_response({"messages": [{"id": f"wamid.{text.replace(' ', '_')}"}]})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{number}/messages", self._send)
        # Its cleanup cuts short the answers still under way rather than wait them out.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for_arrivals(self, count: int) -> None:
        await eventually(lambda: len(self.arrivals) >= count)


async def send_template(client: httpx.AsyncClient, to: str, text: str) -> str:
    template = {
        **ORDER_TEMPLATE,
        "components": [{"type": "body", "parameters": [{"type": "text", "text": text}]}],
    }
    message = {
        "to": {"channel": "wa-main", "id": to},
        "content": {"type": "template", "template": template},
    }
    accepted = await client.post("/v1/messages", json=message)
    assert accepted.status_code == 202
    return str(accepted.json()["id"])


async def queue_two_then_another(url: str) -> None:
    """ "confirmed" and "on its way" to one recipient, then "other" to another."""
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
        await send_template(client, "16505551234", "confirmed")
        await send_template(client, "16505551234", "on its way")
        await send_template(client, "16505559999", "other")


async def test_one_recipients_messages_go_in_turn_and_others_do_not_wait(
    tmp_path: Path, start_gateway: Any
) -> None:
    """Sent side by side, a quick "confirmed" then "on its way" could arrive swapped."""
    # The first message's answer is slow: it comes only once "other" has arrived (at the
    # latest after 10 s), so "other" arriving first shows it did not wait for it.
    graph = SlowGraph({"confirmed": 10.0}, answer_once={"confirmed": "other"})
    await graph.start()
    try:
        data = base_config(tmp_path)
        data["channels"][0]["api_base_url"] = graph.url
        gw = await start_gateway(config_from(data))
        await queue_two_then_another(gw.url)
        await graph.wait_for_arrivals(3)
        at = {text: when for when, _to, text in graph.arrivals}
        assert at["on its way"] >= graph.answered_at["confirmed"]  # after the first's answer
        assert at["other"] < graph.answered_at["confirmed"]  # another recipient does not wait
    finally:
        await graph.stop()


async def test_a_send_under_way_at_shutdown_ends_rather_than_going_twice(tmp_path: Path) -> None:
    """Cancelled at SIGTERM, a send the provider had accepted was sent again after the
    restart: a duplicate message on every deploy. It gets server.shutdown_grace_seconds."""
    graph = SlowGraph({"slow": 0.5})
    await graph.start()
    try:
        data = base_config(tmp_path)
        data["channels"][0]["api_base_url"] = graph.url
        gateway = Gateway(config_from(data))
        runner = web.AppRunner(gateway.application(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
            message_id = await send_template(client, "16505551234", "slow")
        await graph.wait_for_arrivals(1)
        await runner.cleanup()  # while the provider is still answering
        assert graph.answered == ["slow"]
        with sqlite3.connect(tmp_path / "gateway.db") as db:
            state = db.execute("SELECT state FROM messages WHERE id = ?", (message_id,)).fetchone()
            outbox = db.execute("SELECT status FROM outbox WHERE ref = ?", (message_id,)).fetchone()
        assert (state, outbox) == (("sent",), ("done",))
    finally:
        await graph.stop()


async def churn(
    whatsapp: WhatsAppSimulator,
    rng: random.Random,
    rounds: int,
    backend: BackendRecorder | None = None,
) -> None:
    """For a while, provider errors (a 500, a throttle) and, given a backend, its outages: then
    every message must get through."""
    for _ in range(rounds):
        if backend is not None:
            backend.available = rng.random() > 0.3
        roll = rng.random()
        if whatsapp._failures:  # one error at a time, so that they end with the churn
            pass
        elif roll < 0.3:
            whatsapp.fail_next(131000, http_status=500)  # "Something went wrong": retry
        elif roll < 0.5:
            whatsapp.fail_next(130429, http_status=429, retry_after=0.1)
        await asyncio.sleep(0.05)
    if backend is not None:
        backend.available = True


def accepted_by_recipient(whatsapp: WhatsAppSimulator) -> dict[str, list[int]]:
    """The numbers of the template sends ("m<n>") the provider accepted, per recipient, in the
    order it accepted them."""
    accepted: dict[str, list[int]] = {}
    for send in whatsapp.sent:
        text = send["body"]["template"]["components"][0]["parameters"][0]["text"]
        accepted.setdefault(send["body"]["to"], []).append(int(text.removeprefix("m")))
    return accepted


@pytest.mark.parametrize("store_backend", ["sqlite", "postgres"])
async def test_with_a_flaky_provider_and_backend_every_message_and_event_settles(
    tmp_path: Path,
    start_gateway: Any,
    backend: BackendRecorder,
    sims: tuple[WhatsAppSimulator, TwilioSimulator],
    store_backend: str,
    request: pytest.FixtureRequest,
) -> None:
    """Lanes, turns and pauses under churn: every message is sent once its errors pass, each
    recipient's in the order queued, every inbound event reaches the backend, and nothing
    stays counted in flight. SOAK_SEED=N replays another churn."""
    whatsapp, _sms = sims
    data = with_backend(base_config(tmp_path), backend)
    data["channels"][0]["api_base_url"] = whatsapp.base_url
    data["delivery"]["send_concurrency"] = 4
    if store_backend == "postgres":  # its writer thread, its SKIP LOCKED claims
        data["storage"] = {"backend": "postgres", "dsn": request.getfixturevalue("pg_schema")}
    gw = await start_gateway(config_from(data))
    whatsapp.webhook_url = f"{gw.url}/webhooks/wa-main"  # delivered and read come back
    rng = random.Random(int(os.environ.get("SOAK_SEED", "7")))

    churning = asyncio.create_task(churn(whatsapp, rng, 40, backend))
    try:
        sent: list[str] = []
        inbound = {f"wamid.SOAK{n}" for n in range(0, 60, 3)}
        async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as client:
            for n in range(60):
                sent.append(await send_template(client, f"1650555{n % 6:04d}", f"m{n}"))
                if f"wamid.SOAK{n}" in inbound:
                    await post_whatsapp(gw.url, webhook(f"wamid.SOAK{n}", f"in {n}"))

        def arrived(events: list[dict[str, Any]]) -> bool:
            return inbound <= {e["external_id"] for e in events if e["type"] == "message"}

        async with asyncio.timeout(20):
            while True:
                states = [(await gw.store.get_message(i)).state for i in sent]  # type: ignore[union-attr]
                if all(s in {"sent", "delivered", "read"} for s in states) and arrived(
                    backend.events
                ):
                    break
                await asyncio.sleep(0.1)
    finally:
        churning.cancel()
        backend.available = True
    dispatcher = gw.gateway.dispatcher
    assert dispatcher.turns.idle()
    assert len(whatsapp.sent) == 60  # each accepted once: an error is never a send
    assert len(whatsapp.requests) > 60  # and errors there were, retried
    accepted = accepted_by_recipient(whatsapp)
    # Each recipient's in turn, errors, throttles and retries notwithstanding.
    assert not [o for o in accepted.values() if o != sorted(o)], accepted


async def test_a_message_waiting_for_a_retry_is_not_overtaken_by_the_next(
    tmp_path: Path, start_gateway: Any
) -> None:
    graph = SlowGraph({}, fail_first=frozenset({"confirmed"}))
    await graph.start()
    try:
        data = base_config(tmp_path)
        data["channels"][0]["api_base_url"] = graph.url
        gw = await start_gateway(config_from(data))
        await queue_two_then_another(gw.url)
        async with asyncio.timeout(5):
            while len(graph.answered) < 3:
                await asyncio.sleep(0.01)
        assert graph.answered.index("confirmed") < graph.answered.index("on its way")
        assert [text for _at, _to, text in graph.arrivals].count("on its way") == 1
        assert graph.answered.index("other") < graph.answered.index("on its way")  # not held
    finally:
        await graph.stop()


async def test_a_retry_far_off_lets_the_next_messages_go(
    tmp_path: Path, start_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message its provider keeps failing must not leave the customer without news: past
    KEEP_ORDER_SECONDS of retry, the recipient's next messages go."""
    monkeypatch.setattr(recipient_order, "KEEP_ORDER_SECONDS", 0.0)
    monkeypatch.setattr(writes, "KEEP_ORDER_SECONDS", 0.0)
    graph = SlowGraph({}, fail_first=frozenset({"confirmed"}))
    await graph.start()
    try:
        data = base_config(tmp_path)
        # "confirmed" waits 15-30 s (the base config caps backoff at 0.2 s: raised too, or its
        # retry could win the race with "on its way" on a loaded machine).
        data["delivery"] |= {"base_backoff_seconds": 30.0, "max_backoff_seconds": 30.0}
        data["channels"][0]["api_base_url"] = graph.url
        gw = await start_gateway(config_from(data))
        await queue_two_then_another(gw.url)
        await eventually(lambda: "on its way" in graph.answered)
        assert "confirmed" not in graph.answered  # still waiting for its retry
    finally:
        await graph.stop()
