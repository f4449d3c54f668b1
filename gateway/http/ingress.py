"""Webhook ingress, raw first: find the channel, verify, store durably, acknowledge.

Nothing here parses more than the adapter needs for a dedupe key; turning the request into
events happens later, from the inbox, so a parser bug costs a replay and never a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import Counter

from adapters.base import Adapter, InboundRequest, PayloadError
from adapters.failures import unreadable
from gateway import json_codec
from gateway.http.request_body import BodyReader, UnreadableBody, too_large
from gateway.logs import get_logger
from gateway.metrics import WEBHOOKS
from gateway.store import Store

log = get_logger("gateway.ingress")

# Transport-level headers say nothing about the webhook; everything else is kept with the body.
_NOT_KEPT = frozenset({"host", "connection", "content-length", "accept-encoding", "keep-alive"})


# Larger bodies are verified on a worker thread: hashing them (HMAC releases the GIL) or
# parsing a form must not hold the acknowledgements of every other channel. Smaller ones,
# nearly all of them, cost microseconds, less than the hand-over to a thread.
VERIFY_INLINE_BYTES = 32 * 1024


def kept_headers(headers: Mapping[str, str]) -> str:
    """The request's headers as JSON, minus transport ones, kept beside the raw body."""
    # str(k): multidict's keys are a str subclass orjson refuses.
    kept = {str(k): v for k, v in headers.items() if k.lower() not in _NOT_KEPT}
    try:
        return json_codec.dumps(kept).decode()
    except TypeError:
        # Header bytes that are not UTF-8 reach us as surrogate escapes, which orjson refuses;
        # the standard library writes them as \udcXX escapes, so the bytes stay recoverable.
        return json.dumps(kept)


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def missing_signature(adapter: Adapter, request: web.Request) -> str | None:
    """What is missing when a request carries no signature where its provider puts one."""
    query = adapter.signature_query
    if query is not None:  # WeChat signs in the query string
        return None if query in request.query else f"the {query} query parameter is required"
    header = adapter.signature_header
    return None if request.headers.get(header) else f"{header} header is required"


class Ingress:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        public_url: str,
        max_body_bytes: int,
        on_stored: Callable[[], None],
        bodies: BodyReader,
        *,
        busy_rate: float,
        max_bytes_awaiting_store: int,
        acceptance_window: float | None = None,
    ) -> None:
        self.store = store
        self.adapters = adapters
        self.public_url = public_url.rstrip("/")
        self.max_body_bytes = max_body_bytes
        self.on_stored = on_stored
        # Above this arrival rate acknowledging comes first (the normaliser paces itself,
        # retention gives way): `server.busy_webhooks_per_second`.
        self.busy_rate = busy_rate
        self.received = 0
        self.max_bytes_awaiting_store = max_bytes_awaiting_store
        self.bytes_awaiting_store = 0
        self.bodies = bodies
        self.acceptance_window = acceptance_window  # `ingress.acceptance_window_seconds`
        self.busy = self.busy_meter()  # the normaliser's
        self._stored_counters: dict[str, Counter] = {}

    def _stored_counter(self, channel_id: str) -> Counter:
        counter = self._stored_counters.get(channel_id)
        if counter is None:
            counter = self._stored_counters[channel_id] = WEBHOOKS.labels(channel_id, "stored")
        return counter

    def busy_meter(self) -> Callable[[], bool]:
        """A question: did webhooks arrive faster than `busy_rate` a second since the previous
        one? Each asker gets its own meter, so one asking often never shortens another's window."""
        mark = [self.received, time.monotonic()]

        def busy() -> bool:
            now = time.monotonic()
            arrived, elapsed = self.received - mark[0], now - mark[1]
            mark[:] = [self.received, now]
            return arrived > self.busy_rate * max(elapsed, 1e-3)

        return busy

    async def handshake(self, request: web.Request) -> web.StreamResponse:
        adapter = self.adapters.get(request.match_info["channel_id"])
        if adapter is None:
            return error(404, "unknown_channel", "no channel is configured at this path")
        reply = adapter.handshake(request.query)
        if reply is None:
            return error(405, "method_not_allowed", f"{adapter.type} webhooks are POST only")
        outcome = "handshake_ok" if reply.status == 200 else "handshake_rejected"
        WEBHOOKS.labels(adapter.config.id, outcome).inc()
        log.info("webhook_handshake", channel=adapter.config.id, status=reply.status)
        return web.Response(status=reply.status, text=reply.body, content_type=reply.content_type)

    async def receive(self, request: web.Request) -> web.StreamResponse:
        self.received += 1
        channel_id = request.match_info["channel_id"]
        adapter = self.adapters.get(channel_id)
        if adapter is None:
            WEBHOOKS.labels("unknown", "unknown_channel").inc()
            return error(404, "unknown_channel", "no channel is configured at this path")
        # What its provider sends, within what the server takes at all.
        limit = min(adapter.max_body_bytes, self.max_body_bytes)
        unread = self._refuse_before_reading(adapter, request, limit)
        if unread is not None:
            return unread
        try:
            body = await self.bodies.read(request, limit)
        except UnreadableBody as refused:
            return refused.finish(
                self._reject(channel_id, refused.status, refused.code, refused.message)
            )
        fields = adapter.max_form_fields
        if fields is not None and body.count(b"&") >= fields:  # before the form is parsed
            return self._reject(
                channel_id,
                413,
                "too_many_fields",
                f"a {adapter.type} webhook has at most {fields} form fields",
            )
        inbound = InboundRequest(
            method=request.method,
            public_url=self.public_url + request.path_qs,
            headers=request.headers,
            body=body,
        )
        missing = missing_signature(adapter, request)
        if missing is not None:
            return self._reject(channel_id, 401, "missing_signature", missing)
        if len(body) > VERIFY_INLINE_BYTES:
            verified = await asyncio.to_thread(adapter.verify, inbound)
        else:
            verified = adapter.verify(inbound)
        if not verified:
            return self._reject(
                channel_id, 403, "invalid_signature", "signature does not match the body"
            )
        try:
            dedupe_key, dated = _admission(adapter, body)
        except PayloadError as exc:
            return self._reject(channel_id, 400, "malformed_payload", str(exc))
        if dated is not None and self.acceptance_window is not None:
            age = time.time() - dated
            if age > self.acceptance_window:
                return self._stale(adapter, body, dedupe_key, age)
        if self.bytes_awaiting_store + len(body) > self.max_bytes_awaiting_store:
            return self._reject(
                channel_id, 503, "store_busy", "the store is behind; retry later (not stored)"
            )
        headers = kept_headers(request.headers)
        self.bytes_awaiting_store += len(body)
        try:
            row_id = await self.store.append_inbox(
                channel_id, dedupe_key, inbound.public_url, headers, body, time.time()
            )
        except Exception as exc:  # not stored, so not acknowledged: the provider retries
            WEBHOOKS.labels(channel_id, "store_failed").inc()
            log.error(
                "webhook_store_failed", channel=channel_id, error=f"{type(exc).__name__}: {exc}"
            )
            return error(503, "store_unavailable", "the webhook was not stored; retry later")
        finally:
            self.bytes_awaiting_store -= len(body)
        if row_id is None:
            WEBHOOKS.labels(channel_id, "duplicate").inc()
            log.info("webhook_duplicate", channel=channel_id, dedupe_key=dedupe_key)
        else:
            self._stored_counter(channel_id).inc()
            self.on_stored()
        reply = adapter.acknowledge(body)
        return web.Response(status=reply.status, text=reply.body, content_type=reply.content_type)

    def _refuse_before_reading(
        self, adapter: Adapter, request: web.Request, limit: int
    ) -> web.Response | None:
        """The answer to a request its headers refuse already (None: read its body)."""
        channel_id = adapter.config.id
        length = request.content_length
        if length is not None and length > limit:
            # Unread: the rest of the body is still coming, so the connection cannot go on.
            answer = self._reject(channel_id, 413, "body_too_large", too_large(limit))
            answer.force_close()
            return answer
        # The raw header first: providers send the bare type, and aiohttp parses it anew per request.
        if (
            request.headers.get("Content-Type") not in adapter.content_types
            and request.content_type not in adapter.content_types
        ):
            return self._reject(
                channel_id,
                415,
                "unsupported_media_type",
                f"expected {' or '.join(adapter.content_types)}, got {request.content_type or 'none'}",
            )
        return None

    def _stale(self, adapter: Adapter, body: bytes, dedupe_key: str, age: float) -> web.Response:
        """A signed request the provider dated before the acceptance window: a replay (the
        window outlasts every provider's redeliveries), logged and not stored. Answered with
        the usual acknowledgement, 2xx: an error would make Meta retry it for days and LINE
        count failures against the webhook, and would tell a replayer nothing it can use."""
        channel_id = adapter.config.id
        WEBHOOKS.labels(channel_id, "stale").inc()
        log.warning(
            "webhook_stale",
            channel=channel_id,
            reason="older than ingress.acceptance_window_seconds",
            age_seconds=round(age),
            dedupe_key=dedupe_key,
        )
        reply = adapter.acknowledge(body)
        return web.Response(status=reply.status, text=reply.body, content_type=reply.content_type)

    def _reject(self, channel_id: str, status: int, code: str, message: str) -> web.Response:
        WEBHOOKS.labels(channel_id, code).inc()
        log.warning("webhook_rejected", channel=channel_id, status=status, reason=code)
        return error(status, code, message)


def _admission(adapter: Adapter, body: bytes) -> tuple[str, float | None]:
    """The request's dedupe key and provider date; a body whose key cannot be read is still
    kept (raw first), under its hash. A PayloadError (a refused body) goes to the caller."""
    try:
        return adapter.admission(body)
    except PayloadError:
        raise
    except Exception as exc:  # an odd shape or an adapter bug: raw first, so keep it
        reason = unreadable(exc)
        if reason is None:
            log.exception("dedupe_key_failed", channel=adapter.config.id)
        else:
            log.warning("dedupe_key_failed", channel=adapter.config.id, reason=reason)
        return "sha256:" + hashlib.sha256(body).hexdigest(), None
