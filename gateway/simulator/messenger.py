"""Messenger Platform on loopback: the Send API, its errors and Meta-signed Page webhooks.

Send API: https://developers.facebook.com/docs/messenger-platform/reference/send-api/
Webhooks: https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events
Errors:   https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from gateway.simulator.server import RecordedRequest, SimulatorServer
from gateway.simulator.whatsapp import encode_webhook, sign

log = structlog.get_logger(__name__)

GRAPH_VERSION = "v21.0"
MAX_TEXT = 2000  # message.text limit (Send API reference)
# Quick replies: https://developers.facebook.com/docs/messenger-platform/reference/buttons/quick-replies/
MAX_QUICK_REPLIES = 13
QUICK_REPLY_TYPES = ("text", "user_phone_number", "user_email")  # "location": removed in 2019
TITLE_MAX = 20  # quick reply and button titles
PAYLOAD_MAX = 1000  # quick reply and postback payloads
# Templates: .../send-messages/template/button and .../send-messages/template/generic
BUTTON_TEXT_MAX = 640
MAX_BUTTONS = 3
MAX_ELEMENTS = 10
ELEMENT_TEXT_MAX = 80  # element title and subtitle
BUTTON_TYPES = ("postback", "web_url", "phone_number")
PHONE = re.compile(r"^\+[1-9]\d{5,14}$")  # call button payload: + country code and number
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
TAGS = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT")
ATTACHMENT_TYPES = ("image", "video", "audio", "file", "template")
SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen")
WINDOW_SECONDS = 24 * 3600
HUMAN_AGENT_SECONDS = 7 * 24 * 3600

# Default messages per (code, subcode), as the Send API answers them.
ERRORS: dict[tuple[int, int | None], str] = {
    (2, None): "An unexpected error has occurred. Please retry your request later.",
    (4, None): "(#4) Application request limit reached",
    (10, 2018278): "(#10) This message is sent outside of allowed window.",
    (100, None): "(#100) Invalid parameter",
    (100, 2018001): "(#100) No matching user found",
    (551, 1545041): "(#551) This person isn't available right now.",
    (613, None): "(#613) Calls to this api have exceeded the rate limit.",
    (1200, None): "(#1200) Temporary send message failure. Please try again later",
}


class Invalid(Exception):
    """A send body the Send API refuses with (#100); the text becomes the error message."""


@dataclass
class _Failure:
    code: int
    subcode: int | None
    http_status: int
    message: str | None
    retry_after: float | None
    left: int


def new_mid() -> str:
    """A message id shaped like Messenger's: `m_` and 86 url-safe base64 characters."""
    return "m_" + base64.urlsafe_b64encode(secrets.token_bytes(64)).decode()[:86]


def graph_error(
    code: int, subcode: int | None = None, message: str | None = None
) -> dict[str, Any]:
    text = message or ERRORS.get((code, subcode)) or ERRORS.get((code, None)) or "Unknown error"
    error: dict[str, Any] = {"message": text, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = base64.urlsafe_b64encode(secrets.token_bytes(17)).decode().rstrip("=")
    return {"error": error}


def _require(condition: object, message: str) -> None:
    if not condition:
        raise Invalid(message)


def validate(body: Any) -> None:
    """Raise Invalid wherever the Send API would refuse this body."""
    _require(isinstance(body, dict), "(#100) The request body must be a JSON object")
    recipient = body.get("recipient")
    _require(
        isinstance(recipient, dict) and isinstance(recipient.get("id"), str) and recipient["id"],
        "(#100) The parameter recipient is required",
    )
    if "sender_action" in body:
        _require(body["sender_action"] in SENDER_ACTIONS, "(#100) Invalid sender_action")
        _require("message" not in body, "(#100) sender_action must be sent alone")
        return
    kind = body.get("messaging_type")
    _require(
        kind in MESSAGING_TYPES, f"(#100) Param messaging_type must be one of {MESSAGING_TYPES}"
    )
    if kind == "MESSAGE_TAG":
        _require(body.get("tag") in TAGS, "(#100) Param tag must be a valid message tag")
    message = body.get("message")
    _require(isinstance(message, dict), "(#100) The parameter message is required")
    text, attachment = message.get("text"), message.get("attachment")
    _require((text is None) != (attachment is None), "(#100) Message must have text or attachment")
    if text is not None:
        _require(isinstance(text, str) and text, "(#100) Param message[text] must be non-empty")
        _require(
            len(text) <= MAX_TEXT,
            f"(#100) Length of param message[text] must be less than or equal to {MAX_TEXT}",
        )
    else:
        _require(isinstance(attachment, dict), "(#100) Param message[attachment] must be an object")
        _require(attachment.get("type") in ATTACHMENT_TYPES, "(#100) Invalid attachment type")
        payload = attachment.get("payload")
        _require(isinstance(payload, dict), "(#100) Param message[attachment][payload] is required")
        if attachment["type"] == "template":
            _template(payload)
        else:
            _require(
                ("url" in payload) != ("attachment_id" in payload),
                "(#100) Attachment payload needs exactly one of url, attachment_id",
            )
    if "quick_replies" in message:
        _quick_replies(message["quick_replies"])


def _length(value: Any, limit: int, name: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    _require(isinstance(value, str) and value, f"(#100) Param {name} must be a non-empty string")
    _require(len(value) <= limit, f"(#100) Param {name} must be at most {limit} characters")


def _url(value: Any, name: str) -> None:
    _require(
        isinstance(value, str) and value.startswith(("https://", "http://")),
        f"(#100) Param {name} must be a valid URL",
    )


def _quick_replies(replies: Any) -> None:
    _require(
        isinstance(replies, list) and 1 <= len(replies) <= MAX_QUICK_REPLIES,
        f"(#100) param message[quick_replies] must have 1 to {MAX_QUICK_REPLIES} items",
    )
    for i, reply in enumerate(replies):
        name = f"message[quick_replies][{i}]"
        _require(isinstance(reply, dict), f"(#100) Param {name} must be an object")
        kind = reply.get("content_type")
        if kind == "location":
            raise Invalid("(#100) Location quick replies are no longer supported")
        _require(kind in QUICK_REPLY_TYPES, f"(#100) Param {name}[content_type] is invalid")
        if kind != "text":
            continue
        image = reply.get("image_url")
        if image is not None:
            _url(image, f"{name}[image_url]")
        title, payload = reply.get("title"), reply.get("payload")
        if image is None or title:  # the title may be empty only beside an image
            _length(title, TITLE_MAX, f"{name}[title]")
        _require(
            isinstance(payload, str | int) and not isinstance(payload, bool),
            f"(#100) Param {name}[payload] is required for text quick replies",
        )
        _require(
            payload != "" or image is not None, f"(#100) Param {name}[payload] must be non-empty"
        )
        _require(
            len(str(payload)) <= PAYLOAD_MAX,
            f"(#100) Param {name}[payload] must be at most {PAYLOAD_MAX} characters",
        )


def _buttons(buttons: Any, name: str, *, required: bool) -> None:
    low = 1 if required else 0
    _require(
        isinstance(buttons, list) and low <= len(buttons) <= MAX_BUTTONS,
        f"(#100) Param {name} must have {low} to {MAX_BUTTONS} buttons",
    )
    for i, button in enumerate(buttons):
        where = f"{name}[{i}]"
        _require(isinstance(button, dict), f"(#100) Param {where} must be an object")
        kind = button.get("type")
        _require(kind in BUTTON_TYPES, f"(#100) Param {where}[type] must be one of {BUTTON_TYPES}")
        _length(button.get("title"), TITLE_MAX, f"{where}[title]")
        if kind == "postback":
            _length(button.get("payload"), PAYLOAD_MAX, f"{where}[payload]")
        elif kind == "web_url":
            _url(button.get("url"), f"{where}[url]")
        else:
            payload = button.get("payload")
            _require(
                isinstance(payload, str) and PHONE.match(payload),
                f"(#100) Param {where}[payload] must be a phone number like +16505551234",
            )


def _template(payload: dict[str, Any]) -> None:
    kind = payload.get("template_type")
    base = "message[attachment][payload]"
    if kind == "button":
        _length(payload.get("text"), BUTTON_TEXT_MAX, f"{base}[text]")
        _buttons(payload.get("buttons"), f"{base}[buttons]", required=True)
        return
    _require(kind == "generic", "(#100) Param template_type must be button or generic here")
    elements: Any = payload.get("elements")
    _require(
        isinstance(elements, list) and 1 <= len(elements) <= MAX_ELEMENTS,
        f"(#100) Param {base}[elements] must have 1 to {MAX_ELEMENTS} elements",
    )
    for i, element in enumerate(elements):
        where = f"{base}[elements][{i}]"
        _require(isinstance(element, dict), f"(#100) Param {where} must be an object")
        _length(element.get("title"), ELEMENT_TEXT_MAX, f"{where}[title]")
        _length(element.get("subtitle"), ELEMENT_TEXT_MAX, f"{where}[subtitle]", required=False)
        if "image_url" in element:
            _url(element["image_url"], f"{where}[image_url]")
        action = element.get("default_action")
        if action is not None:
            _require(
                isinstance(action, dict) and action.get("type") == "web_url",
                f"(#100) Param {where}[default_action][type] must be web_url",
            )
            _url(action.get("url"), f"{where}[default_action][url]")
            _require("title" not in action, f"(#100) {where}[default_action] takes no title")
        if "buttons" in element:
            _buttons(element["buttons"], f"{where}[buttons]", required=False)
        _require(
            any(k in element for k in ("subtitle", "image_url", "default_action", "buttons")),
            f"(#100) {where} must have at least one property besides title",
        )


class MessengerSimulator(SimulatorServer):
    """One Facebook Page on a fake graph.facebook.com, posting webhooks like Meta."""

    def __init__(
        self,
        *,
        page_id: str,
        page_access_token: str,
        app_secret: str,
        webhook_url: str | None = None,
        auto_receipts: tuple[str, ...] = ("delivery", "read"),
        receipt_delay: float = 0.05,
        echoes: bool = False,
        enforce_window: bool = True,
        app_id: int = 1517776481860111,
        webhook_attempts: int = 4,
        retry_backoff: float = 0.05,
    ) -> None:
        super().__init__()
        self.page_id, self.page_access_token, self.app_secret = (
            page_id,
            page_access_token,
            app_secret,
        )
        self.webhook_url, self.auto_receipts, self.receipt_delay = (
            webhook_url,
            auto_receipts,
            receipt_delay,
        )
        self.echoes, self.enforce_window, self.app_id = echoes, enforce_window, app_id
        self.webhook_attempts, self.retry_backoff = webhook_attempts, retry_backoff
        self.sent: list[dict[str, Any]] = []  # accepted sends: {"mid": .., "body": request body}
        self.requests: list[RecordedRequest] = []  # every send request, accepted or not
        self.last_inbound: dict[str, float] = {}  # PSID -> epoch seconds of their last message
        self._failures: list[_Failure] = []

    @property
    def base_url(self) -> str:
        """What a channel's `api_base_url` should be, e.g. http://127.0.0.1:PORT/v21.0."""
        return f"{self._url}/{GRAPH_VERSION}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{node}/messages", self._send)
        app.router.add_get("/_sim/sent", self._list_sent)
        app.router.add_post("/_sim/inbound", self._inbound)
        app.router.add_post("/_sim/tap", self._tap)

    def fail_next(
        self,
        code: int,
        *,
        subcode: int | None = None,
        http_status: int = 400,
        count: int = 1,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `count` valid sends with Graph error `code`/`subcode`."""
        self._failures.append(_Failure(code, subcode, http_status, message, retry_after, count))

    def open_window(self, psid: str, at: float | None = None) -> None:
        """Pretend `psid` wrote to the Page at `at` (now by default), without a webhook."""
        self.last_inbound[psid] = time.time() if at is None else at

    # --- the send API ----------------------------------------------------------------
    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path_qs, dict(request.headers), raw)
        )
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        token = token or request.query.get("access_token")
        if token != self.page_access_token:
            return web.json_response(
                graph_error(190, message="Invalid OAuth access token - Cannot parse access token"),
                status=401,
                headers={"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'},
            )
        node = request.match_info["node"]
        if node not in ("me", self.page_id):
            body = graph_error(
                100,
                33,
                f"(#100) Unsupported post request. Object with ID '{node}' does not exist,"
                " cannot be loaded due to missing permissions, or does not support this operation",
            )
            return web.json_response(body, status=400)
        try:
            payload = json.loads(raw)
            validate(payload)
        except ValueError:
            return web.json_response(graph_error(100, message="(#100) Invalid JSON"), status=400)
        except Invalid as exc:
            return web.json_response(graph_error(100, message=str(exc)), status=400)
        psid = payload["recipient"]["id"]
        if "sender_action" in payload:
            return web.json_response({"recipient_id": psid})
        if self._failures:
            return self._fail()
        refusal = self._window_refusal(psid, payload)
        if refusal is not None:
            return web.json_response(refusal, status=400)
        mid = new_mid()
        self.sent.append({"mid": mid, "body": payload})
        self._report_send(self.sent[-1])
        if self.webhook_url and (self.auto_receipts or self.echoes):
            self._spawn(self._after_send(psid, mid, payload))
        return web.json_response({"recipient_id": psid, "message_id": mid})

    def _window_refusal(self, psid: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if not self.enforce_window:
            return None
        last = self.last_inbound.get(psid)
        age = time.time() - last if last is not None else None
        if payload["messaging_type"] == "MESSAGE_TAG":
            if payload["tag"] != "HUMAN_AGENT" or (age is not None and age <= HUMAN_AGENT_SECONDS):
                return None
        elif age is not None and age <= WINDOW_SECONDS:
            return None
        return graph_error(10, 2018278)

    def _fail(self) -> web.Response:
        rule = self._failures[0]
        rule.left -= 1
        if rule.left <= 0:
            self._failures.pop(0)
        headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
        body = graph_error(rule.code, rule.subcode, rule.message)
        return web.json_response(body, status=rule.http_status, headers=headers)

    async def _after_send(self, psid: str, mid: str, body: dict[str, Any]) -> None:
        if self.echoes:
            message = {"is_echo": True, "app_id": self.app_id, "mid": mid, **body["message"]}
            await self._deliver(self.envelope(self.page_id, psid, message=message))
        for kind in self.auto_receipts:
            await asyncio.sleep(self.receipt_delay)
            if kind == "delivery":
                await self.send_delivery(psid, [mid])
            elif kind == "read":
                await self.send_read(psid)

    # --- webhooks --------------------------------------------------------------------
    def envelope(
        self, sender: str, recipient: str, *, timestamp: int | None = None, **event: Any
    ) -> dict[str, Any]:
        """One `messaging[]` item in the Page envelope Meta posts."""
        now = int(time.time() * 1000)
        item = {
            "sender": {"id": sender},
            "recipient": {"id": recipient},
            "timestamp": timestamp or now,
            **event,
        }
        return {"object": "page", "entry": [{"id": self.page_id, "time": now, "messaging": [item]}]}

    async def post_webhook(self, payload: dict[str, Any]) -> int:
        """Sign and POST once; the gateway's HTTP status (ClientError if unreachable)."""
        if not (self.webhook_url and self._session):
            raise RuntimeError("post_webhook needs a webhook_url and a started simulator")
        body = encode_webhook(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(self.app_secret, body),
        }
        async with self._session.post(self.webhook_url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def send_inbound(
        self, psid: str, *, timestamp: float | None = None, **event: Any
    ) -> dict[str, Any]:
        """Deliver one user event (`message=…`, `postback=…`, …); returns the item sent."""
        at = time.time() if timestamp is None else timestamp
        payload = self.envelope(psid, self.page_id, timestamp=int(at * 1000), **event)
        if "message" in event or "postback" in event:
            self.last_inbound[psid] = max(self.last_inbound.get(psid, 0.0), at)
        await self._deliver(payload)
        return dict(payload["entry"][0]["messaging"][0])

    async def send_inbound_text(
        self, psid: str, text: str, *, timestamp: float | None = None
    ) -> str:
        """A user's text message; returns its mid."""
        mid = new_mid()
        await self.send_inbound(psid, timestamp=timestamp, message={"mid": mid, "text": text})
        return mid

    async def send_quick_reply(self, psid: str, title: str, payload: str) -> str:
        """A tap on a quick reply: the title as text, the payload alongside; returns its mid."""
        mid = new_mid()
        message = {"mid": mid, "text": title, "quick_reply": {"payload": payload}}
        await self.send_inbound(psid, message=message)
        return mid

    async def send_postback(
        self, psid: str, title: str, payload: str, referral: dict[str, Any] | None = None
    ) -> str:
        """A tap on a postback button (or Get Started); returns its mid."""
        mid = new_mid()
        postback: dict[str, Any] = {"mid": mid, "title": title, "payload": payload}
        if referral:
            postback["referral"] = referral
        await self.send_inbound(psid, postback=postback)
        return mid

    def _sent_to(self, psid: str, mid: str | None, has: str) -> dict[str, Any]:
        """The message sent to `psid` with that mid, else the last one holding `has`."""
        for sent in reversed(self.sent):
            body = sent["body"]
            if body["recipient"]["id"] != psid or (mid is not None and sent["mid"] != mid):
                continue
            message: dict[str, Any] = body["message"]
            payload = (message.get("attachment") or {}).get("payload") or {}
            if mid is not None or has in message or has in payload:
                return message
        raise LookupError(f"no message with {has} was sent to {psid}")

    async def tap_button(
        self, psid: str, *, element: int = 0, button: int = 0, mid: str | None = None
    ) -> str:
        """The user taps a postback button of a sent button or generic template: Meta posts
        a messaging_postbacks event with the button's title and payload. Returns its mid."""
        message = self._sent_to(psid, mid, "template_type")
        payload = message["attachment"]["payload"]
        if payload["template_type"] == "generic":
            buttons = payload["elements"][element].get("buttons", [])
        else:
            buttons = payload["buttons"]
        tapped = buttons[button]
        if tapped["type"] != "postback":
            raise ValueError(f"a {tapped['type']} button opens a page or a call: no webhook")
        return await self.send_postback(psid, tapped["title"], tapped["payload"])

    async def tap_quick_reply(self, psid: str, index: int = 0, mid: str | None = None) -> str:
        """The user taps a quick reply: its title as text, its payload alongside."""
        reply = self._sent_to(psid, mid, "quick_replies")["quick_replies"][index]
        return await self.send_quick_reply(psid, reply["title"], str(reply["payload"]))

    async def send_delivery(self, psid: str, mids: list[str] | None = None) -> int:
        """A delivery receipt from `psid`; returns its watermark (epoch milliseconds)."""
        watermark = int(time.time() * 1000)
        delivery: dict[str, Any] = {"watermark": watermark}
        if mids:
            delivery = {"mids": mids, **delivery}
        await self._deliver(self.envelope(psid, self.page_id, delivery=delivery))
        return watermark

    async def send_read(self, psid: str, watermark: int | None = None) -> int:
        """A read receipt: everything sent to `psid` up to the watermark was read."""
        mark = watermark if watermark is not None else int(time.time() * 1000)
        await self._deliver(self.envelope(psid, self.page_id, read={"watermark": mark}))
        return mark

    async def _deliver(self, payload: dict[str, Any]) -> None:
        # Meta retries a webhook that fails until it succeeds (the app is unsubscribed after
        # hours of failures); the simulator tries a few times with backoff, then gives up.
        await self._post_with_retries(payload, lambda: self.post_webhook(payload))

    # --- control endpoints for humans and other processes ----------------------------
    async def _list_sent(self, _request: web.Request) -> web.Response:
        return web.json_response(self.sent)

    async def _inbound(self, request: web.Request) -> web.Response:
        """`{"from": psid, "text": ...}` → the user's message, as a webhook."""
        try:
            data = await request.json()
            sender, text = str(data["from"]), str(data["text"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"from": .., "text": ..}'}, status=400)
        return web.json_response({"mid": await self.send_inbound_text(sender, text)})

    async def _tap(self, request: web.Request) -> web.Response:
        """`{"from": psid, "element": 1, "button": 0}` or `{"from": psid, "quick_reply": 0}`
        (optionally `"mid"`) → the tap on the last matching message, as a webhook."""
        try:
            data = await request.json()
            psid, mid = str(data["from"]), data.get("mid")
            if "quick_reply" in data:
                tapped = await self.tap_quick_reply(psid, int(data["quick_reply"]), mid)
            else:
                element, button = int(data.get("element", 0)), int(data.get("button", 0))
                tapped = await self.tap_button(psid, element=element, button=button, mid=mid)
        except (ValueError, KeyError, TypeError, IndexError, LookupError) as exc:
            return web.json_response({"error": str(exc) or repr(exc)}, status=400)
        return web.json_response({"mid": tapped})
