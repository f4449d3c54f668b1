"""What every provider simulator shares: a loopback aiohttp server, an HTTP client for the
webhooks it posts, and the background tasks that post them (so `drain` can wait for them)."""

from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import structlog
from aiohttp import ClientError, ClientSession, ClientTimeout, web

log = structlog.get_logger(__name__)


@dataclass
class RecordedRequest:
    """One request a simulated API received, kept for tests to inspect."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # the answer's status, where a simulator records it

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)


class SimulatorServer(abc.ABC):
    webhook_attempts: int = 1
    retry_backoff: float = 0.05

    def __init__(self) -> None:
        self.webhooks: list[dict[str, Any]] = []  # payloads the gateway acknowledged
        self.failed_webhooks: list[dict[str, Any]] = []  # payloads given up on after retries
        # Called with each accepted send as it is recorded in `sent`, before its statuses
        # exist: a watcher (the demo) sees the sends in the order they happened.
        self.on_send: Callable[[dict[str, Any]], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._url = ""

    def _report_send(self, send: dict[str, Any]) -> None:
        """Tell `on_send` of a send just accepted (as the simulator keeps it in its `sent`)."""
        if self.on_send is not None:
            self.on_send(send)

    @property
    def origin(self) -> str:
        """Where it listens (http://127.0.0.1:PORT): its `/_sim/...` control endpoints are here."""
        return self._url

    @property
    def base_url(self) -> str:
        """What a channel's `api_base_url` should be (the origin, unless the API has a prefix)."""
        return self._url

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

    async def _post_with_retries(
        self,
        payload: dict[str, Any],
        post: Callable[[], Awaitable[int]],
        *,
        accepted: Callable[[int], bool] = lambda status: 200 <= status < 300,
        before_retry: Callable[[], None] | None = None,
    ) -> bool:
        """Post a webhook like the provider: retried with backoff until `accepted`, then
        recorded in `webhooks`, or in `failed_webhooks` once the attempts run out."""
        for attempt in range(self.webhook_attempts):
            try:
                status = await post()
            except (ClientError, TimeoutError) as exc:
                status, reason = 0, repr(exc)
            else:
                reason = f"HTTP {status}"
            if accepted(status):
                self.webhooks.append(payload)
                return True
            log.info("simulator.webhook_retry", attempt=attempt + 1, reason=reason)
            if before_retry is not None:
                before_retry()
            if attempt + 1 < self.webhook_attempts:
                await asyncio.sleep(self.retry_backoff * 2**attempt)
        log.warning("simulator.webhook_dropped")
        self.failed_webhooks.append(payload)
        return False
