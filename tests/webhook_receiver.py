"""A stand-in for the gateway's webhook endpoint, for the provider simulators' own tests.

It records each request's headers and raw body (signatures are checked over the exact bytes)
and answers with scripted status codes, then 200, so a test can make a simulator retry.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class WebhookReceiver:
    def __init__(self, path: str = "/webhooks/test") -> None:
        self.path = path
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []  # status codes to give first; 200 afterwards
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{self.path}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    def payloads(self) -> list[Any]:
        return [json.loads(body) for _, body in self.received]
