"""A stand-in for a platform backend: receives the gateway's signed webhooks and records them.

Used by the end-to-end tests and by `gateway demo`. `available = False` makes it answer 503,
as a backend that is down would. Both signatures are checked (gateway/signing.py): the
Standard Webhooks one with the spec libraries' 5-minute tolerance.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    STANDARD_SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    standard_headers,
)

TOLERANCE_SECONDS = 300  # the Standard Webhooks libraries' default

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class BackendRecorder:
    def __init__(self, secret: str, on_event: EventHandler | None = None) -> None:
        self.secret = secret
        self.on_event = on_event
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[str] = []
        self.rejected = 0
        self.available = True
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/events", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}/events"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        if not self.available:
            return web.Response(status=503, text="backend down")
        body = await request.read()
        if not self.signed(request.headers, body):
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        events = json.loads(body)["events"]
        async with self._changed:
            self.deliveries.append(request.headers.get("X-Gateway-Delivery", ""))
            self.events.extend(events)
            self._changed.notify_all()
        if self.on_event is not None:
            for event in events:
                await self.on_event(event)
        return web.Response(status=200)

    def signed(self, headers: Any, body: bytes) -> bool:
        """Both signatures match, and the signed timestamp is within the tolerance."""
        stamp = headers.get(TIMESTAMP_HEADER, "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
            return False
        expected = standard_headers(self.secret, body, int(stamp))
        return hmac.compare_digest(
            headers.get(SIGNATURE_HEADER, ""), sign(self.secret, body)
        ) and all(
            hmac.compare_digest(headers.get(name, ""), expected[name])
            for name in (ID_HEADER, STANDARD_SIGNATURE_HEADER)
        )

    async def wait_for(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Wait until `predicate(self.events)` holds; raises TimeoutError otherwise."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.events))
        return self.events

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]
