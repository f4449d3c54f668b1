"""What every provider simulator shares: a loopback aiohttp server, an HTTP client for the
webhooks it posts, and the background tasks that post them (so `drain` can wait for them)."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Coroutine
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web


class SimulatorServer(abc.ABC):
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._url = ""

    @abc.abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the provider API's routes (and the simulator's control endpoints) to `app`."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0]
        self._url = f"http://{bound[0]}:{bound[1]}"
        self._session = ClientSession(timeout=ClientTimeout(total=10))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    async def drain(self) -> None:
        """Wait until every queued webhook has been delivered or given up."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
