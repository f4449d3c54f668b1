"""WeChat Official Accounts on loopback: the stable access token with expiry, customer-service
and template sends with their rules, and signed XML pushes in plain or safe mode.

Token:     https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/getStableAccessToken.html
Send:      https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
Templates: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Template_Message_Interface.html
Pushes:    https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html

Like WeChat, a push is retried (three attempts in all) unless answered "success" or an empty
body; a send outside the 48 hours after the user's last push is refused with 45015, and a
token past its life with 42001 (`expire_tokens` ends them early, as a test's clock would).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from adapters.wechat.crypto import aes_key, encrypt, signature
from gateway.simulator.server import SimulatorServer

WINDOW_SECONDS = 48 * 3600
TOKEN_SECONDS = 7200
MAX_MENU_ITEMS = 10
MAX_ARTICLES = 1
_REQUIRED = {
    "text": ("content",),
    "image": ("media_id",),
    "voice": ("media_id",),
    "video": ("media_id",),
    "news": ("articles",),
    "msgmenu": ("head_content", "list"),
}


@dataclass
class Sent:
    kind: str  # "custom" | "template"
    body: dict[str, Any]
    msgid: int | None = None


class WeChatSimulator(SimulatorServer):
    webhook_attempts = 3  # WeChat tries three times, five seconds apart (here: fast)

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        token: str,
        encoding_aes_key: str | None = None,
        account: str = "gh_3f6f1b2a9c10",
        webhook_url: str | None = None,
    ) -> None:
        super().__init__()
        self.app_id, self.app_secret, self.token = app_id, app_secret, token
        self.key = aes_key(encoding_aes_key) if encoding_aes_key else None
        self.account = account
        self.webhook_url = webhook_url
        self.tokens: dict[str, float] = {}  # access token -> when it expires
        self.tokens_issued = 0
        self.sent: list[Sent] = []
        self.refused: list[dict[str, Any]] = []
        self.last_push: dict[str, float] = {}  # OpenID -> when they last wrote
        self._msg_id = 24600172893145000

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/message/template/send", self._template_send)
        app.router.add_post("/_sim/inbound", self._inbound)
        app.router.add_get("/_sim/sent", self._list_sent)

    # --- the API ------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every token issued so far is past its life from now on."""
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    async def _stable_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("appid") != self.app_id or body.get("secret") != self.app_secret:
            return _error(40013, "invalid appid")
        now = time.time()
        live = [t for t, until in self.tokens.items() if until > now]
        if live and not body.get("force_refresh"):
            token = live[0]
        else:
            token = secrets.token_urlsafe(48)
            self.tokens = {token: now + TOKEN_SECONDS}
            self.tokens_issued += 1
        return web.json_response(
            {"access_token": token, "expires_in": round(self.tokens[token] - now)}
        )

    def _token_error(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        if self.tokens[token] <= time.time():
            return _error(42001, "access_token expired")
        return None

    async def _custom_send(self, request: web.Request) -> web.Response:
        refused = self._token_error(request)
        if refused is not None:
            return refused
        body = await request.json()
        user, kind = body.get("touser"), body.get("msgtype")
        if kind not in _REQUIRED or not isinstance(body.get(kind), dict):
            return self._refuse(body, 40008, "invalid message type")
        missing = [f for f in _REQUIRED[kind] if not body[kind].get(f)]
        if missing:
            return self._refuse(body, 44002, f"empty {missing[0]}")
        if kind == "news" and len(body["news"]["articles"]) > MAX_ARTICLES:
            return self._refuse(body, 45008, "article size out of limit")
        if kind == "msgmenu" and len(body["msgmenu"]["list"]) > MAX_MENU_ITEMS:
            return self._refuse(body, 45098, "msgmenu list size is out of limit")
        if time.time() - self.last_push.get(str(user), float("-inf")) > WINDOW_SECONDS:
            return self._refuse(
                body, 45015, "response out of time limit or subscription is canceled"
            )
        self.sent.append(Sent("custom", body))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _template_send(self, request: web.Request) -> web.Response:
        refused = self._token_error(request)
        if refused is not None:
            return refused
        body = await request.json()
        if not body.get("touser") or not body.get("template_id"):
            return self._refuse(body, 40037, "invalid template_id")
        self._msg_id += 1
        self.sent.append(Sent("template", body, self._msg_id))
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": self._msg_id})

    def _refuse(self, body: dict[str, Any], code: int, message: str) -> web.Response:
        self.refused.append({"errcode": code, "body": body})
        return _error(code, message)

    # --- pushes -----------------------------------------------------------------------
    def _xml(self, fields: dict[str, Any]) -> bytes:
        parts = [
            f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>"
            for k, v in fields.items()
        ]
        return ("<xml>" + "".join(parts) + "</xml>").encode()

    def signed(self, fields: dict[str, Any]) -> tuple[str, bytes]:
        """The URL and body of a push, signed (and encrypted in safe mode) as WeChat does."""
        assert self.webhook_url, "no webhook URL"
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        query = {
            "signature": signature(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": str(fields["FromUserName"]),
        }
        body = self._xml(fields)
        if self.key is not None:
            sealed = encrypt(self.key, body, self.app_id)
            body = f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>".encode()
            query |= {
                "encrypt_type": "aes",
                "msg_signature": signature(self.token, timestamp, nonce, sealed),
            }
        return f"{self.webhook_url}?{urlencode(query)}", body

    def compose(self, user: str, kind: str, **fields: Any) -> dict[str, Any]:
        """A push's fields as WeChat fills them: a new MsgId for every message (not events)."""
        payload = {
            "ToUserName": self.account,
            "FromUserName": user,
            "CreateTime": int(time.time()),
            "MsgType": kind,
            **fields,
        }
        if kind != "event":
            self._msg_id += 1
            payload["MsgId"] = self._msg_id
        return payload

    async def push(self, user: str, kind: str, **fields: Any) -> int:
        """Post one push from `user`; the gateway's status (after WeChat's retries)."""
        self.last_push[user] = time.time()
        payload = self.compose(user, kind, **fields)
        url, body = self.signed(payload)
        statuses: list[int] = []

        async def post() -> int:
            assert self._session is not None
            headers = {"Content-Type": "text/xml"}
            async with self._session.post(url, data=body, headers=headers) as response:
                answer = await response.text()
                statuses.append(response.status)
                # Anything but "success" or "" makes WeChat retry (and show the user an error).
                return response.status if answer in ("success", "") else 599

        await self._post_with_retries(payload, post)
        return statuses[-1] if statuses else 0

    async def send_text(self, user: str, text: str) -> int:
        return await self.push(user, "text", Content=text)

    async def send_image(self, user: str, pic_url: str, media_id: str) -> int:
        return await self.push(user, "image", PicUrl=pic_url, MediaId=media_id)

    async def send_location(self, user: str, lat: float, lon: float, label: str) -> int:
        fields = {"Location_X": str(lat), "Location_Y": str(lon), "Scale": 15, "Label": label}
        return await self.push(user, "location", **fields)

    async def subscribe(self, user: str) -> int:
        return await self.push(user, "event", Event="subscribe")

    async def tap_menu(self, user: str, menu: dict[str, Any], index: int) -> int:
        """The user taps item `index` of a msgmenu sent to them: a text with `bizmsgmenuid`."""
        item = menu["msgmenu"]["list"][index]
        return await self.push(user, "text", Content=item["content"], bizmsgmenuid=item["id"])

    # --- control ------------------------------------------------------------------------
    async def _inbound(self, request: web.Request) -> web.Response:
        body = await request.json()
        status = await self.send_text(str(body["from"]), str(body.get("text", "")))
        return web.json_response({"status": status})

    async def _list_sent(self, _request: web.Request) -> web.Response:
        return web.json_response([{"kind": s.kind, "body": s.body} for s in self.sent])


def _error(code: int, message: str) -> web.Response:
    rid = secrets.token_hex(4)
    return web.Response(
        text=json.dumps({"errcode": code, "errmsg": f"{message} rid: {rid}"}),
        content_type="application/json",
    )
