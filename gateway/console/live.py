"""The console's live updates: one WebSocket per open page at /console/live.

The page says what it shows (`{"watch": "channels"}`, `{"watch": "conversations", ...}`,
`{"watch": "conversation", "id": "conv_…"}`); the socket re-draws that fragment from the
store every `interval` seconds and sends it only when it changed. The webhook path is never
touched: the console reads the store as any reader does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.console.auth import Sessions
from gateway.console.site import SESSION, log

Draw = Callable[[dict[str, Any]], Awaitable[str | None]]


class LiveSocket:
    def __init__(
        self,
        fragments: dict[str, tuple[str | None, Draw]],
        interval: float,
        sessions: Sessions,
    ) -> None:
        """`fragments`: name → (the role it needs, or None for any, how to draw it)."""
        self.fragments = fragments
        self.interval = interval
        self.sessions = sessions

    async def handle(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
        await socket.prepare(request)
        role = request[SESSION].role
        watching: dict[str, Any] = {}
        session_id = request[SESSION].id
        pusher = asyncio.create_task(self._push(socket, watching, session_id))
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                wanted = _parsed(message.data)
                name = wanted.get("watch") if wanted else None
                known = self.fragments.get(name) if isinstance(name, str) else None
                if wanted is None or known is None or known[0] not in (None, role):
                    await socket.send_json({"error": "unknown or forbidden watch"})
                    continue
                watching.clear()
                watching.update(wanted)
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        return socket

    async def _push(
        self, socket: web.WebSocketResponse, watching: dict[str, Any], session_id: str
    ) -> None:
        last: tuple[str, str] | None = None  # (what was watched, the fragment sent)
        while not socket.closed:
            if self.sessions.get(session_id) is None:  # logged out, or expired: no more news
                await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session ended")
                return
            if watching:
                name = json.dumps(watching, sort_keys=True)
                try:
                    html = await self.fragments[watching["watch"]][1](dict(watching))
                except Exception as exc:  # a store outage: say nothing new, try again
                    log.warning("console_live_failed", error=type(exc).__name__)
                    html = None
                if html is not None and (name, html) != last:
                    last = (name, html)
                    await socket.send_json({"watch": watching["watch"], "html": html})
            await asyncio.sleep(self.interval)


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        found = json.loads(text)
    except ValueError:
        return None
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        return None
    return found
