"""WeChat sends with an access token in the query string, fetched with the AppSecret.

Token: https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/getStableAccessToken.html
       (the stable token: every caller within its life gets the same one, so several gateway
       processes share it instead of invalidating each other's, as /cgi-bin/token would)
Send:  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html

A token lives `expires_in` seconds (7,200); it is fetched again a few minutes before then, and
at once when WeChat calls it invalid or expired (40001, 40014, 42001), after which the send is
tried once more. The adapter renders and classifies; only this module does I/O, through the
gateway's own HTTP client, so tests mock it like every other provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from adapters.base import ProviderRequest, SendError, answer_json
from adapters.wechat import TOKEN_ERRORS, TOKEN_PATH, WeChatAdapter, send_error
from gateway import json_codec
from gateway.outbound.transport import exchange

# Fetch a new token this long before WeChat's expiry: a send never carries one that dies
# on the way.
REFRESH_MARGIN_SECONDS = 300.0


class AccessToken:
    """The channel's current access token, fetched when missing, near expiry or refused."""

    def __init__(
        self,
        adapter: WeChatAdapter,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapter = adapter
        self.client = client
        self.clock = clock
        self.value: str | None = None
        self.expires_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:
            if self.value is None or self.clock() >= self.expires_at - REFRESH_MARGIN_SECONDS:
                await self._fetch(force=False)
            assert self.value is not None
            return self.value

    async def refused(self, token: str) -> str:
        """A token WeChat refused: a fresh one (forced if WeChat hands back the same)."""
        async with self._lock:
            if self.value == token:  # not already replaced by another send
                await self._fetch(force=False)
                if self.value == token:
                    await self._fetch(force=True)
            assert self.value is not None
            return self.value

    async def _fetch(self, force: bool) -> None:
        config = self.adapter.config
        body = {
            "grant_type": "client_credential",
            "appid": config.app_id,
            "secret": config.app_secret.get_secret_value(),
            "force_refresh": force,
        }
        url = config.api_base_url.rstrip("/") + TOKEN_PATH
        response = await _post(self.client, url, body)
        payload = answer_json(response.content)
        token, lifetime = payload.get("access_token"), payload.get("expires_in")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            code = payload.get("errcode", response.status_code)
            raise send_error(code, f"access token refused: {payload.get('errmsg', 'no token')}")
        seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else 7200
        self.value, self.expires_at = token, self.clock() + seconds


class WeChatSender:
    def __init__(
        self,
        adapter: WeChatAdapter,
        client: httpx.AsyncClient | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapter = adapter
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(timeout=15.0)
        self.token = AccessToken(adapter, self.client, clock)

    async def send(self, request: ProviderRequest) -> str:
        token = await self.token.get()
        try:
            return await self._send(request, token)
        except SendError as error:
            if not error.code.isdigit() or int(error.code) not in TOKEN_ERRORS:
                raise
        return await self._send(request, await self.token.refused(token))

    async def _send(self, request: ProviderRequest, token: str) -> str:
        url = self.adapter.config.api_base_url.rstrip("/") + request.path
        response = await _post(self.client, url, request.json or {}, token)
        return self.adapter.read_send_response(
            response.status_code, response.content, response.headers
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()


async def _post(
    client: httpx.AsyncClient, url: str, body: dict[str, object], token: str | None = None
) -> httpx.Response:
    params = {"access_token": token} if token is not None else None
    headers = {"Content-Type": json_codec.JSON_CONTENT_TYPE}
    # Our encoder, as for every provider: UTF-8 text as measured, not \u escapes.
    return await exchange(
        client, "POST", url, content=json_codec.dumps(body), params=params, headers=headers
    )
