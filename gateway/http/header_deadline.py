"""A deadline for a request's headers, like the one `request_body.py` sets for its body.

aiohttp closes a connection whose headers never finish only when its keep-alive timer fires
(`keepalive_timeout`, counted from when the connection opened or the last answer went out),
and bytes trickling in do not count as progress but do not end it either: a client sending a
header byte a second held a connection and its handler for over a minute, and a few thousand
such clients hold every file descriptor. Shortening the keep-alive timeout instead would also
close idle pooled connections sooner, and a proxy reusing one just as we close it loses a POST
(Twilio does not retry a 502 by default, providers.md §3.2).

So the clock starts at the first byte of a request and stops when its headers are parsed:
past `server.header_timeout_seconds` the connection is closed. Idle keep-alive connections and
bodies (bounded by `server.body_timeout_seconds`) are not affected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.logs import get_logger

log = get_logger("gateway.headers")


class _HeaderDeadline(RequestHandler):
    """aiohttp's connection handler, closing the connection when headers come too slowly.

    It reads attributes of aiohttp's own (`_messages`, the requests parsed and waiting for
    the handler; `_loop`; `_payload_parser` and `_upgraded`, set once a connection became a
    WebSocket), so tests/test_headers.py and tests/test_web_abuse.py pin the behaviour against
    upgrades."""

    __slots__ = ("_body", "_header_timeout", "_header_timer")

    def __init__(self, manager: web.Server, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._body: Any = None  # the body of the last request parsed: bytes for it are no header

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:  # headers complete (the handler pops them later)
            self._stop_header_timer()
            self._body = self._messages[-1][1]
        elif (
            data
            and self._header_timer is None
            and (self._body is None or self._body.is_eof())
            and self.transport is not None
            # A WebSocket (the web channel's) reads its frames with a parser of its own: its
            # bytes are no request's headers, and the connection lives on after them.
            and self._payload_parser is None
            and not self._upgraded
        ):
            self._header_timer = self._loop.call_later(self._header_timeout, self._too_slow)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.warning("header_timeout", seconds=self._header_timeout, peer=str(peer))
        self.force_close()


class _HeaderDeadlineServer(web.Server):
    header_timeout: float

    def __call__(self) -> RequestHandler:
        return _HeaderDeadline(self, self.header_timeout, loop=self._loop, **self._kwargs)


def bound_header_time(app: web.Application, timeout_seconds: float) -> None:
    """Servers made for `app` (web.run_app, AppRunner) close connections whose request headers
    take longer than `timeout_seconds` to arrive."""
    make_server: Callable[..., web.Server] = app._make_handler

    def make_handler(**kwargs: Any) -> web.Server:
        server = make_server(**kwargs)
        # aiohttp builds the server inside the runner and offers no hook for its connection
        # class: the same object, with ours.
        server.__class__ = _HeaderDeadlineServer
        server.header_timeout = timeout_seconds  # type: ignore[attr-defined]
        return server

    app._make_handler = make_handler  # type: ignore[method-assign]
