"""The web channel's sockets: authenticate a device, resume its log, push, take its frames.

One `WebSockets` per gateway serves every configured web channel (adapters/web/). A device
connects to `/web/{channel}/socket` and sends `auth` first; then it gets every log entry after
the `last_event_id` it names, `ready`, and from then on each new entry as it is appended
(several devices of one user each get all of them). What the device sends is stored in the
inbox like a webhook and becomes the channel's events (adapters/web/frames.py). Protocol and
close codes: docs/web-channel.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from adapters.base import Adapter, ProviderRequest, SendError
from adapters.web import WebAdapter
from adapters.web.frames import AckFrame, AuthFrame, InboundBody, ReadFrame, TypingFrame, read_frame
from adapters.web.tokens import TokenClaims, TokenError, verify
from gateway import json_codec
from gateway.logs import get_logger
from gateway.pipeline.worker import Worker
from gateway.store import Store
from gateway.store.records import is_store_error
from gateway.store.web_log import PAGE, WebLog

log = get_logger("gateway.web")

# Close codes (4000-4999 are the application's, RFC 6455 §7.4.2); docs/web-channel.md.
BAD_TOKEN = 4001  # missing, forged, for another channel, or no auth frame in time
EXPIRED_TOKEN = 4002
BAD_FRAME = 4003  # not JSON, unknown type, a field wrong (the reason names it)
RATE_LIMITED = 4008
TOO_MANY_CONNECTIONS = 4009
# 1009 (too big) is aiohttp's own, past max_frame_bytes; 1011 a store failure, 1001 shutdown.

# A device that does not take a frame in this long is closed: it resumes from its log later,
# and a stuck socket holds up nothing else.
SEND_TIMEOUT_SECONDS = 10.0
# Pings keep idle connections through proxies and find dead ones.
HEARTBEAT_SECONDS = 30.0
# How far back the sweeper looks for entries another gateway process appended.
CATCH_UP_SECONDS = 10.0
OFFLINE_REASON = "no device of the user acknowledged the message within offline_wait_seconds"


class Device:
    """One connected socket of one user."""

    __slots__ = (
        "channel_id",
        "hub",
        "live",
        "lock",
        "missed",
        "sent",
        "tokens",
        "updated",
        "user_id",
        "ws",
    )  # fmt: skip

    def __init__(self, hub: WebSockets, ws: web.WebSocketResponse, claims: TokenClaims) -> None:
        self.hub = hub
        self.ws = ws
        self.channel_id = claims.channel_id
        self.user_id = claims.user_id
        self.sent = 0  # the last event id this device was sent
        self.live = False  # resumed: pushes go straight out
        self.missed = 0  # pushes that came while it resumed
        self.lock = asyncio.Lock()
        self.tokens = 0.0
        self.updated = time.monotonic()

    def allow(self, per_second: float) -> bool:
        """A token bucket: `per_second` frames a second, bursts of two seconds' worth."""
        now = time.monotonic()
        burst = 2 * per_second
        self.tokens = min(burst, self.tokens + (now - self.updated) * per_second)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def resume(self) -> None:
        """Send every entry after `sent`, page by page, until none came in meanwhile."""
        # A device that saw more than the log holds (a store restored from a backup, or
        # another gateway's) would skip what comes next: it resumes from the log's end, and
        # `ready` tells it so.
        self.sent = min(self.sent, await self.hub.log.newest(self.channel_id, self.user_id))
        while True:
            missed = self.missed
            sent_any = await self.catch_up()
            if not sent_any and self.missed == missed:
                self.live = True  # no await since the last read: nothing slipped between
                return

    async def catch_up(self, until: int | None = None) -> bool:
        async with self.lock:
            return await self._catch_up(until)

    async def _catch_up(self, until: int | None) -> bool:
        """Send the log after `sent` (up to `until`, exclusive): whether anything went."""
        sent_any = False
        while True:
            entries = await self.hub.log.after(self.channel_id, self.user_id, self.sent)
            for entry in entries:
                if until is not None and entry.event_id >= until:
                    return sent_any
                await self._send(entry.frame)
                self.sent = entry.event_id
                sent_any = True
            if len(entries) < PAGE:
                return sent_any

    async def deliver(self, event_id: int, frame: str) -> None:
        if not self.live:
            self.missed += 1
            return
        async with self.lock:
            if event_id <= self.sent:
                return
            if event_id > self.sent + 1:  # entries appended elsewhere meanwhile
                await self._catch_up(event_id)
            await self._send(frame)
            self.sent = event_id

    async def _send(self, frame: str) -> None:
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            await self.ws.send_str(frame)


class WebSockets:
    """Every connected device of every web channel of one gateway; the channels' outbox."""

    def __init__(
        self, store: Store, adapters: Mapping[str, Adapter], on_stored: Callable[[], None]
    ) -> None:
        self.store = store
        self.log = WebLog(store.db)
        self.adapters = adapters
        self.on_stored = on_stored
        self.devices: dict[tuple[str, str], set[Device]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sweeper = WebSweeper(self)

    def attach(self, adapters: Mapping[str, Adapter]) -> None:
        """Be the outbox of the web channels among `adapters` (at start and each reload)."""
        for adapter in adapters.values():
            if isinstance(adapter, WebAdapter):
                adapter.outbox = self

    def channel(self, channel_id: str) -> WebAdapter | None:
        adapter = self.adapters.get(channel_id)
        return adapter if isinstance(adapter, WebAdapter) else None

    @property
    def connections(self) -> int:
        return sum(len(d) for d in self.devices.values())

    # --- outbound ------------------------------------------------------------------------
    async def deliver(self, channel_id: str, request: ProviderRequest) -> str:
        """The web sender: append the part to the user's log, then push it."""
        body = request.json or {}
        adapter = self.channel(channel_id)
        wait = adapter.web_config.offline_wait_seconds if adapter else 300.0
        try:
            appended = await self.log.append(
                channel_id,
                body["user"],
                body["message_id"],
                int(body["part"]),
                json_codec.dumps(body["content"]).decode(),
                time.time() + wait,
            )
        except Exception as exc:
            if not is_store_error(exc):
                raise
            # Like a provider that did not answer: the outbox tries again with backoff (two
            # processes taking the same event id land here too, and the retry takes the next).
            raise SendError("retry", "store_unavailable", type(exc).__name__) from None
        self.push(channel_id, body["user"], appended.event_id, appended.frame)
        return appended.external_id

    def push(self, channel_id: str, user_id: str, event_id: int, frame: str) -> None:
        for device in self.devices.get((channel_id, user_id), ()):
            self._spawn(self._deliver(device, event_id, frame))

    def broadcast(self, channel_id: str, user_id: str, frame: dict[str, Any]) -> int:
        """An ephemeral frame (typing, read) to every device of a user: how many got it."""
        devices = self.devices.get((channel_id, user_id), set())
        text = json_codec.dumps(frame).decode()
        for device in devices:
            if device.live:
                self._spawn(self._send_or_close(device, text))
        return len(devices)

    async def _deliver(self, device: Device, event_id: int, frame: str) -> None:
        try:
            await device.deliver(event_id, frame)
        except Exception as exc:  # a slow or gone socket: it resumes from its log
            await self._drop(device, exc)

    async def _send_or_close(self, device: Device, text: str) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                await device.ws.send_str(text)
        except Exception as exc:
            await self._drop(device, exc)

    async def _drop(self, device: Device, exc: BaseException) -> None:
        log.info("web_device_dropped", channel=device.channel_id, reason=type(exc).__name__)
        with contextlib.suppress(Exception):
            await device.ws.close(code=WSCloseCode.GOING_AWAY, message=b"not reading; resume")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the socket ----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        adapter = self.channel(request.match_info["channel_id"])
        if adapter is None:
            return web.json_response(
                {
                    "error": "unknown_channel",
                    "message": "no web channel is configured at this path",
                },
                status=404,
            )
        config = adapter.web_config
        ws = web.WebSocketResponse(max_msg_size=config.max_frame_bytes, heartbeat=HEARTBEAT_SECONDS)
        await ws.prepare(request)
        device = await self._authenticate(ws, adapter)
        if device is None:
            return ws
        key = (device.channel_id, device.user_id)
        present = self.devices.setdefault(key, set())
        if len(present) >= config.max_connections_per_user:
            await _close(ws, TOO_MANY_CONNECTIONS, "too many connections for this user "
                         f"(max_connections_per_user: {config.max_connections_per_user})")  # fmt: skip
            return ws
        present.add(device)
        try:
            await device.resume()
            await ws.send_str(
                json_codec.dumps({"type": "ready", "last_event_id": device.sent}).decode()
            )
            await self._read(ws, device, adapter)
        except Exception as exc:
            if not ws.closed:
                log.warning(
                    "web_socket_failed", channel=device.channel_id, error=type(exc).__name__
                )
                await _close(ws, WSCloseCode.INTERNAL_ERROR, "the gateway failed; reconnect later")
        finally:
            present.discard(device)
            if not present:
                self.devices.pop(key, None)
        return ws

    async def _authenticate(self, ws: web.WebSocketResponse, adapter: WebAdapter) -> Device | None:
        config = adapter.web_config
        try:
            message = await ws.receive(timeout=config.auth_timeout_seconds)
        except TimeoutError:
            await _close(ws, BAD_TOKEN, "no auth frame in time")
            return None
        if message.type != WSMsgType.TEXT:
            await _close(ws, BAD_TOKEN, "the first frame must be an auth frame")
            return None
        try:
            frame = read_frame(message.data)
        except ValueError as exc:
            await _close(ws, BAD_FRAME, str(exc))
            return None
        if not isinstance(frame, AuthFrame):
            await _close(ws, BAD_TOKEN, "the first frame must be an auth frame")
            return None
        secret = config.token_secret.get_secret_value().encode()
        try:
            claims = verify(secret, config.id, frame.token, time.time())
        except TokenError as exc:
            await _close(ws, EXPIRED_TOKEN if exc.expired else BAD_TOKEN, str(exc))
            return None
        device = Device(self, ws, claims)
        device.sent = frame.last_event_id
        device.tokens = 2 * config.frames_per_second
        return device

    async def _read(self, ws: web.WebSocketResponse, device: Device, adapter: WebAdapter) -> None:
        config = adapter.web_config
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                await _close(ws, BAD_FRAME, "frames are JSON text")
                return
            if not device.allow(config.frames_per_second):
                await _close(ws, RATE_LIMITED, "more than frames_per_second "
                             f"({config.frames_per_second:g}) frames a second")  # fmt: skip
                return
            try:
                frame = read_frame(message.data)
            except ValueError as exc:
                await _close(ws, BAD_FRAME, str(exc))
                return
            if isinstance(frame, AuthFrame):
                await _close(ws, BAD_FRAME, "type: already authenticated")
                return
            await self._take(device, frame)

    async def _take(self, device: Device, frame: Any) -> None:
        now = time.time()
        channel_id, user_id = device.channel_id, device.user_id
        if isinstance(frame, AckFrame):
            if await self.log.delivered(channel_id, user_id, frame.event_id, now):
                self.on_stored()
            return
        if isinstance(frame, ReadFrame):
            if await self.log.read(channel_id, user_id, frame.event_id, now):
                self.on_stored()
            return
        stored = InboundBody(user=user_id, at=now, frame=frame)
        body = stored.model_dump_json(exclude_none=True).encode()
        row = await self.store.append_inbox(
            channel_id, stored.dedupe_key(), f"web:{channel_id}", "{}", body, now
        )
        if row is not None:
            self.on_stored()
        if not isinstance(frame, TypingFrame):
            # Stored (or stored before: a resend): the device need not send it again.
            await device.ws.send_str(
                json_codec.dumps({"type": "accepted", "id": frame.id}).decode()
            )

    async def close_all(self) -> None:
        for devices in list(self.devices.values()):
            for device in list(devices):
                await _close(device.ws, WSCloseCode.GOING_AWAY, "the gateway is shutting down")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    # A close frame's reason is at most 123 bytes (RFC 6455 §5.5: control frames carry 125).
    with contextlib.suppress(Exception):
        await ws.close(code=code, message=reason.encode()[:123])


class WebSweeper(Worker):
    """Fails what waited past the offline time, and pushes what another process appended."""

    name = "web_sweeper"

    def __init__(self, hub: WebSockets, poll_interval: float = 1.0) -> None:
        super().__init__(poll_interval)
        self.hub = hub

    async def run_once(self) -> bool:
        if not any(isinstance(a, WebAdapter) for a in self.hub.adapters.values()):
            return False  # no web channel: no query a second on gateways without one
        now = time.time()
        expired = await self.hub.log.expire(now, OFFLINE_REASON)
        if expired:
            log.info("web_offline_timeouts", messages=len(expired))
            self.hub.on_stored()
        if self.hub.devices:
            for channel_id, user_id, newest in await self.hub.log.recent(now - CATCH_UP_SECONDS):
                for device in self.hub.devices.get((channel_id, user_id), ()):
                    if device.live and newest > device.sent:
                        self.hub._spawn(self._catch_up(device))
        return len(expired) >= 500

    async def _catch_up(self, device: Device) -> None:
        try:
            await device.catch_up()
        except Exception as exc:
            await self.hub._drop(device, exc)
