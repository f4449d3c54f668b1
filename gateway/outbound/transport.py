"""Outbound HTTP to providers: one pooled httpx client, per-channel rate limits and pauses.

The client is injected, so tests plug in respx or point channels at the simulators.

The gateway's client is gateway/outbound/http_client.py's `new_client`, for provider sends (Twilio's
SDK included) and backend deliveries alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from prometheus_client import Histogram

from adapters.base import Adapter, ProviderRequest, Sender, SendError, unanswered
from gateway import json_codec
from gateway.logs import get_logger
from gateway.metrics import PROVIDER_LATENCY
from gateway.outbound.http_client import direct

log = get_logger("gateway.transport")

# The longest a provider exchange may take, whatever its pace: httpx's own limits (15 s a read)
# apply within it.
SEND_DEADLINE_SECONDS = 30.0


async def exchange(
    client: httpx.AsyncClient, method: str, url: str, **options: Any
) -> httpx.Response:
    """One provider request; a failure to get an answer is a retryable SendError."""
    try:
        return await client.request(method, url, **options)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise SendError(
            "retry", "connect_error", f"cannot reach provider ({type(exc).__name__})"
        ) from None
    except httpx.TimeoutException:
        # The provider may have accepted it: at-least-once means we may send twice.
        raise SendError("retry", "timeout", "provider did not answer in time") from None
    except httpx.HTTPError as exc:
        raise SendError("retry", "http_error", type(exc).__name__) from None


Go = Callable[[], Awaitable[bool]]


class Withdrawn(Exception):
    """A send its `go` check withdrew just before it would have left."""


class RateLimiter:
    """A token bucket per channel: `rate` sends per second, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()
        # Bulk sends (broadcasts) queue here first, so that one at most waits in `lock`'s
        # line: a reply queued behind a thousand bulk sends gets the next token but one.
        self.bulk_line = asyncio.Lock()

    async def acquire(self, closing: Callable[[], bool], cost: int = 1, bulk: bool = False) -> bool:
        """Wait for a token, then take `cost` of them (an SMS of 3 segments: 3); False, without
        one, once `closing()` says the gateway stops. A cost above what the bucket holds puts
        it in debt, which the next sends wait out: the rate holds over time. `bulk` sends take
        what tokens the others leave."""
        if bulk:
            async with self.bulk_line:
                return await self.acquire(closing, cost)
        async with self.lock:
            while not closing():
                now = time.monotonic()
                self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= cost
                    return True
                await asyncio.sleep((1 - self.tokens) / self.rate)
            return False


class Transport:
    def __init__(self, client: httpx.AsyncClient, concurrency: int = 16) -> None:
        """`concurrency`: provider exchanges under way at once, per channel."""
        self.client = client
        self._direct = direct(client)
        self.concurrency = concurrency
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._paused_until: dict[str, float] = {}
        # Per channel, the provider's last refusal and when (time.time()): the console shows it.
        self.last_errors: dict[str, tuple[float, str]] = {}
        # Per channel, the adapter its sender was made from: a reload that changes the channel
        # brings a new adapter (new credentials), and with it a new sender.
        self._senders: dict[str, tuple[Adapter, Sender | None]] = {}
        self._retired: list[Sender] = []  # made from a config a reload replaced
        # Set at shutdown: sends under way end, none starts (gateway/pipeline/dispatcher.py).
        self.closing = False
        # Per channel, its latency histogram: `labels()` looks it up under a lock (~2 µs a send).
        self._latency: dict[str, Histogram] = {}

    def _latency_of(self, channel: str) -> Histogram:
        histogram = self._latency.get(channel)
        if histogram is None:
            histogram = self._latency[channel] = PROVIDER_LATENCY.labels(channel)
        return histogram

    def _sender(self, adapter: Adapter) -> Sender | None:
        channel = adapter.config.id
        made = self._senders.get(channel)
        if made is not None and made[0] is adapter:
            return made[1]
        if made is not None and made[0].config == adapter.config:  # a reload left it as it was
            self._senders[channel] = (adapter, made[1])
            return made[1]
        if made is not None and made[1] is not None:
            # A send under way may still use it (one claimed before the reload, with the old
            # adapter): closed at shutdown, not now.
            self._retired.append(made[1])
        sender = adapter.make_sender(self.client)
        self._senders[channel] = (adapter, sender)
        return sender

    def forget(self, channels: list[str]) -> None:
        """Drop the rate limiters made from `channels`' old config (a reload changed or
        removed them): the next send makes one at the new rate."""
        for channel in channels:
            self._limiters.pop(channel, None)

    async def aclose(self) -> None:
        for sender in [*(s for _a, s in self._senders.values()), *self._retired]:
            if sender is not None:
                await sender.aclose()
        self._senders.clear()
        self._retired.clear()

    def paused_for(self, channel: str) -> float:
        """Seconds left of the pause a provider's Retry-After put on `channel` (0 when none)."""
        return max(0.0, self._paused_until.get(channel, 0.0) - time.monotonic())

    async def send(
        self,
        adapter: Adapter,
        request: ProviderRequest,
        go: Go | None = None,
        *,
        bulk: bool = False,
    ) -> str:
        """Send one request once the channel has a free slot (delivery.send_concurrency).
        `go`, asked once the rate limit lets the request out, may still withdraw it (a
        broadcast cancelled meanwhile): it then raises Withdrawn, and nothing is sent. A `bulk`
        request waits for its token before it takes a slot, and behind every other request:
        slots held by bulk sends waiting for tokens would hold the replies up."""
        channel = adapter.config.id
        slot = self._slots.get(channel)
        if slot is None:
            slot = self._slots[channel] = asyncio.Semaphore(self.concurrency)
        if bulk:
            await self._pace(adapter, request, bulk=True)
            async with slot:
                return await self._send(adapter, request, go, paced=True)
        async with slot:
            return await self._send(adapter, request, go)

    async def _pace(self, adapter: Adapter, request: ProviderRequest, bulk: bool = False) -> None:
        channel = adapter.config.id
        pause = self.paused_for(channel)
        if pause > 0:
            raise SendError(
                "retry", "paused", "channel paused by provider rate limit", retry_after=pause
            )
        limiter = self._limiters.get(channel)
        if limiter is None:
            limiter = self._limiters[channel] = RateLimiter(adapter.config.rate_limit_per_second)
        if not await limiter.acquire(lambda: self.closing, request.cost, bulk):
            raise SendError("retry", "shutting_down", "the gateway stopped before sending it")

    async def _send(
        self, adapter: Adapter, request: ProviderRequest, go: Go | None, paced: bool = False
    ) -> str:
        channel = adapter.config.id
        if not paced:
            await self._pace(adapter, request)
        if go is not None and not await go():
            raise Withdrawn()
        try:
            sender = self._sender(adapter)
            # httpx's timeouts bound each read: an answer trickling in would never end them.
            async with asyncio.timeout(SEND_DEADLINE_SECONDS):
                if sender is not None:
                    return await self._timed(channel, sender.send(request))
                return await self._http(adapter, request)
        except TimeoutError:
            # The provider may have accepted it: at-least-once means we may send twice.
            raise SendError(
                "retry", "timeout", f"provider did not answer within {SEND_DEADLINE_SECONDS:g} s"
            ) from None
        except SendError as error:
            self.last_errors[channel] = (time.time(), str(error))
            if error.retry_after:
                # Retry-After applies to the whole channel, not just this message.
                self._paused_until[channel] = time.monotonic() + error.retry_after
            raise

    async def _timed(self, channel: str, sending: Awaitable[str]) -> str:
        started = time.perf_counter()
        try:
            return await sending
        finally:
            self._latency_of(channel).observe(time.perf_counter() - started)

    async def _http(self, adapter: Adapter, request: ProviderRequest) -> str:
        channel = adapter.config.id
        url = adapter.config.api_base_url.rstrip("/") + request.path
        headers = {**adapter.auth_headers(), **request.headers}
        body: bytes | None = None
        if request.json is not None:
            # Our encoder, not httpx's: the bytes sent are the bytes adapters measured.
            body = json_codec.dumps(request.json)
            headers["Content-Type"] = json_codec.JSON_CONTENT_TYPE
        started = time.perf_counter()
        try:
            if self._direct is not None and request.form is None:
                # The gateway's own client: straight to its pool (http_client.py says why).
                answer = await self._direct.exchange(
                    request.method, url, headers, body, self.client.timeout
                )
                status, content, answer_headers = answer.status, answer.content, answer.headers
            else:
                response = await exchange(
                    self.client,
                    request.method,
                    url,
                    content=body,
                    data=request.form,
                    headers=headers,
                )
                status, content, answer_headers = (
                    response.status_code,
                    response.content,
                    response.headers,
                )
        except httpx.HTTPError as exc:
            raise unanswered(exc, "provider") from None
        finally:
            self._latency_of(channel).observe(time.perf_counter() - started)
        log.debug(
            "provider_exchange",
            channel=channel,
            method=request.method,
            path=request.path,
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return adapter.read_send_response(status, content, answer_headers)
