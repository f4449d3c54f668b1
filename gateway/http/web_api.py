"""The web channel's API for backends, and its example page (docs/web-channel.md).

- `POST /v1/web/tokens` mints a user's socket token: the backend calls it for a user it has
  logged in, and hands the token to that user's app.
- `POST /v1/web/actions` shows the user that an agent is typing, or has read their messages:
  ephemeral frames to the user's connected devices, not kept in the log.
- `GET /web/example` is a page a platform can copy: plain HTML and JavaScript.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web

from adapters.web import WebAdapter
from adapters.web.tokens import mint
from gateway.http.api import _body, model_answer, refusal
from gateway.http.request_body import BodyReader
from gateway.http.websocket import WebSockets
from gateway.logs import get_logger
from gateway.schema.web import WebActionAccepted, WebActionRequest, WebToken, WebTokenRequest

log = get_logger("gateway.web")


class WebApi:
    def __init__(self, hub: WebSockets, bodies: BodyReader) -> None:
        self.hub = hub
        self.bodies = bodies

    def _channel(self, channel_id: str) -> WebAdapter | web.Response:
        adapter = self.hub.channel(channel_id)
        if adapter is None:
            return refusal(422, "invalid_request", "channel", f"no web channel {channel_id!r}")
        return adapter

    async def tokens(self, request: web.Request) -> web.Response:
        wanted = await _body(self.bodies, request, WebTokenRequest, "the token request")
        if isinstance(wanted, web.Response):
            return wanted
        adapter = self._channel(wanted.channel)
        if isinstance(adapter, web.Response):
            return adapter
        config = adapter.web_config
        expires_at = int(time.time()) + (wanted.ttl_seconds or config.token_ttl_seconds)
        token = mint(
            config.token_secret.get_secret_value().encode(), config.id, wanted.user, expires_at
        )
        log.info("web_token_minted", channel=config.id, expires_at=expires_at)  # never the token
        answer = WebToken(
            token=token,
            expires_at=datetime.fromtimestamp(expires_at, UTC),
            socket_path=f"/web/{config.id}/socket",
        )
        return model_answer(answer, status=201)

    async def actions(self, request: web.Request) -> web.Response:
        wanted = await _body(self.bodies, request, WebActionRequest, "the action")
        if isinstance(wanted, web.Response):
            return wanted
        adapter = self._channel(wanted.channel)
        if isinstance(adapter, web.Response):
            return adapter
        frame: dict[str, Any]
        if wanted.action == "read":
            frame = {"type": "read", "external_id": wanted.external_id}
        else:
            frame = {"type": "typing", "state": "on" if wanted.action == "typing_on" else "off"}
        devices = self.hub.broadcast(adapter.config.id, wanted.user, frame)
        return model_answer(WebActionAccepted(devices=devices), status=202)

    async def example(self, _request: web.Request) -> web.Response:
        page = resources.files("adapters.web").joinpath("static/example.html").read_text("utf-8")
        return web.Response(
            text=page,
            content_type="text/html",
            headers={
                # The page loads nothing from elsewhere, and frames nothing.
                "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline';"
                " style-src 'self' 'unsafe-inline'; img-src * data:; media-src *;"
                " connect-src 'self' ws: wss:; frame-ancestors 'none'",
                "Cache-Control": "no-store",
            },
        )
