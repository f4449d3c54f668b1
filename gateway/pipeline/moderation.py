"""Asks communities' moderation webhooks about members' messages (docs/communities.md,
"Moderation"), off the inbound path: the normaliser only keeps a message `pending`, so a slow
webhook delays no other conversation.

Each message is posted once per claim, signed like the backend webhooks (gateway/signing.py),
and waited for at most the community's `timeout_seconds`. No answer in time, an error or an
answer that is not allow, hold or reject: the community's `on_timeout` (allow or hold) is taken.
A process that dies while asking leaves the message leased; when the lease ends, another
process asks again under the same id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import httpx

from gateway import json_codec
from gateway.logs import get_logger
from gateway.pipeline.worker import Worker
from gateway.router.communities import Verdict, verdict_of
from gateway.signing import delivery_headers
from gateway.store import Store
from gateway.store.moderation import ModerationItem, request_body

log = get_logger("gateway.moderation")

BATCH = 32
# Beyond the webhook's own timeout: the claim outlives the request, so no second process
# asks while the first still waits.
LEASE_MARGIN_SECONDS = 30.0


class ModerationWorker(Worker):
    name = "moderation"

    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        poll_interval: float,
        *,
        clock: Callable[[], float] = time.time,
        on_secret: Callable[[Iterable[str]], None] = lambda _secrets: None,
    ) -> None:
        """`on_secret`: told each webhook secret before it is used (another process may have
        taken it through the API), so that the logs redact it."""
        super().__init__(poll_interval)
        self.store = store
        self.http = http
        self.clock = clock
        self.on_secret = on_secret

    async def run_once(self) -> bool:
        items = await self.store.communities.claim_moderation(
            self.clock(), 60.0 + LEASE_MARGIN_SECONDS, BATCH
        )
        if not items:
            return False
        # Side by side: one community's slow webhook does not hold another's answer back.
        await asyncio.gather(*(self._settle(item) for item in items))
        self.wake_listeners()
        return len(items) >= BATCH

    async def _settle(self, item: ModerationItem) -> None:
        verdict, reason, by = await self._ask(item)
        decided = await self.store.communities.decide(item.id, verdict, by, reason, self.clock())
        log.info(
            "community_moderated",
            moderation_id=item.id,
            community_id=item.community_id,
            verdict=verdict,
            decided_by=by,
            applied=decided is not None,
        )

    async def _ask(self, item: ModerationItem) -> tuple[Verdict, str | None, str]:
        """(verdict, reason, who decided: `webhook` or `timeout`)."""
        settings = item.settings
        if settings is None:  # the webhook was removed since: nothing to wait for
            return "allow", None, "timeout"
        body = request_body(item, datetime.fromtimestamp(self.clock(), UTC).isoformat())
        secret = settings.secret.get_secret_value()
        self.on_secret([secret])
        headers = {"Content-Type": "application/json"}
        headers |= delivery_headers(secret, body, int(self.clock()))
        try:
            async with asyncio.timeout(settings.timeout_seconds):
                answer = await self.http.post(settings.url, content=body, headers=headers)
            parsed = verdict_of(json_codec.loads(answer.content)) if answer.is_success else None
        except (TimeoutError, httpx.HTTPError, ValueError) as exc:
            log.warning(
                "moderation_webhook_failed",
                moderation_id=item.id,
                community_id=item.community_id,
                error=type(exc).__name__,
                taken=settings.on_timeout,
            )
            parsed = None
        if parsed is None:
            return settings.on_timeout, None, "timeout"
        return parsed[0], parsed[1], "webhook"
