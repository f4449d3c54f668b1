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

from adapters.base import Adapter, ProviderRequest, Sender, SendError, unanswered
from gateway import json_codec
from gateway.logs import get_logger
from gateway.metrics import PROVIDER_LATENCY

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


class RateLimiter:
    """A token bucket per channel: `rate` sends per second, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, closing: Callable[[], bool]) -> bool:
        """Wait for a token; False, without one, once `closing()` says the gateway stops."""
        async with self.lock:
            while not closing():
                now = time.monotonic()
                self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return True
                await asyncio.sleep((1 - self.tokens) / self.rate)
            return False


class Transport:
    def __init__(self, client: httpx.AsyncClient, concurrency: int = 16) -> None:
        """`concurrency`: provider exchanges under way at once, per channel."""
        self.client = client
        self.concurrency = concurrency
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._paused_until: dict[str, float] = {}
        # Per channel, the adapter its sender was made from: a reload that changes the channel
        # brings a new adapter (new credentials), and with it a new sender.
        self._senders: dict[str, tuple[Adapter, Sender | None]] = {}
        self._retired: list[Sender] = []  # made from a config a reload replaced
        # Set at shutdown: sends under way end, none starts (gateway/pipeline/dispatcher.py).
        self.closing = False

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

    async def send(self, adapter: Adapter, request: ProviderRequest) -> str:
        """Send one request once the channel has a free slot (delivery.send_concurrency)."""
        channel = adapter.config.id
        slot = self._slots.get(channel)
        if slot is None:
            slot = self._slots[channel] = asyncio.Semaphore(self.concurrency)
        async with slot:
            return await self._send(adapter, request)

    async def _send(self, adapter: Adapter, request: ProviderRequest) -> str:
        channel = adapter.config.id
        pause = self.paused_for(channel)
        if pause > 0:
            raise SendError(
                "retry", "paused", "channel paused by provider rate limit", retry_after=pause
            )
        limiter = self._limiters.get(channel)
        if limiter is None:
            limiter = self._limiters[channel] = RateLimiter(adapter.config.rate_limit_per_second)
        if not await limiter.acquire(lambda: self.closing):
            raise SendError("retry", "shutting_down", "the gateway stopped before sending it")
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
            if error.retry_after:
                # Retry-After applies to the whole channel, not just this message.
                self._paused_until[channel] = time.monotonic() + error.retry_after
            raise

    @staticmethod
    async def _timed(channel: str, sending: Awaitable[str]) -> str:
        started = time.perf_counter()
        try:
            return await sending
        finally:
            PROVIDER_LATENCY.labels(channel).observe(time.perf_counter() - started)

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
            response = await exchange(
                self.client, request.method, url, content=body, data=request.form, headers=headers
            )
        except httpx.HTTPError as exc:
            raise unanswered(exc, "provider") from None
        finally:
            PROVIDER_LATENCY.labels(channel).observe(time.perf_counter() - started)
        log.debug(
            "provider_exchange",
            channel=channel,
            method=request.method,
            path=request.path,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return adapter.read_send_response(response.status_code, response.content, response.headers)
