"""LINE Messaging API on loopback: reply and push, retry keys, errors, signed webhooks.

Send API: https://developers.line.biz/en/reference/messaging-api/#send-reply-message
          https://developers.line.biz/en/reference/messaging-api/#send-push-message
Retries:  https://developers.line.biz/en/docs/messaging-api/retrying-api-request/
Webhooks: https://developers.line.biz/en/reference/messaging-api/#webhook-event-objects

LINE has no delivery or read receipts for ordinary messages, so unlike the WhatsApp
simulator this one posts no statuses: only user events (messages, follow, postback...).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import regex
import structlog
from aiohttp import web

from gateway.simulator.server import RecordedRequest, SimulatorServer

log = structlog.get_logger(__name__)

MAX_MESSAGES = 5
MAX_TEXT = 5000  # UTF-16 code units
MAX_URL = 2000
MAX_LOCATION_FIELD = 100
# Rich messages: https://developers.line.biz/en/reference/messaging-api/#quick-reply
# #template-messages, #buttons, #confirm, #carousel, #image-carousel, #action-objects.
# Action labels and template texts count grapheme clusters; altText UTF-16 code units:
# https://developers.line.biz/en/docs/messaging-api/text-character-count/
MAX_QUICK_REPLY_ITEMS = 13
MAX_LABEL = 20
MAX_DATA = 300  # postback data, displayText, message action text
MAX_URI = 1000
URI_SCHEMES = ("http:", "https:", "line:", "tel:")
MAX_ALT_TEXT = 400
MAX_TITLE = 40
MAX_BUTTONS_ACTIONS = 4
MAX_BUTTONS_TEXT = 160
MAX_CONFIRM_TEXT = 240
MAX_COLUMNS = 10
MAX_COLUMN_ACTIONS = 3
MAX_COLUMN_TEXT = 120
MAX_TEXT_WITH_TITLE_OR_IMAGE = 60
MAX_IMAGE_CAROUSEL_LABEL = 12
TEMPLATE_ACTIONS = ("postback", "message", "uri", "datetimepicker", "clipboard")
QUICK_REPLY_ACTIONS = (*TEMPLATE_ACTIONS, "camera", "cameraRoll", "location")
REPLY_TOKEN_TTL = 60.0  # "within one minute" of the webhook
AUTH_FAILED = (
    "Authentication failed. Confirm that the access token in the authorization header is valid."
)


class Invalid(Exception):
    """A request body LINE refuses with 400; `details` as LINE lists them."""

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


@dataclass
class Sent:
    """An accepted reply or push."""

    kind: str  # "reply" | "push"
    request_id: str
    body: dict[str, Any]
    message_ids: list[str]
    retry_key: str | None = None
    to: str = ""  # the user, group or room it went to (a reply: the token's chat)


@dataclass
class _Failure:
    status: int
    message: str
    details: list[dict[str, str]]
    retry_after: float | None
    left: int
    path: str | None


@dataclass
class _Token:
    target: str
    issued: float
    used: bool = False


@dataclass
class Chat:
    """Where a webhook event comes from: a 1:1 chat, a group or a room."""

    user_id: str | None
    group_id: str | None = None
    room_id: str | None = None

    def source(self) -> dict[str, str]:
        if self.group_id:
            source = {"type": "group", "groupId": self.group_id}
        elif self.room_id:
            source = {"type": "room", "roomId": self.room_id}
        else:
            source = {"type": "user"}
        if self.user_id:
            source["userId"] = self.user_id
        return source

    @property
    def target(self) -> str:
        return self.group_id or self.room_id or self.user_id or ""


@dataclass
class _Rule:
    kind: str
    required: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def sign(channel_secret: str, body: bytes) -> str:
    """x-line-signature: base64(HMAC-SHA256(channel secret, body))."""
    return base64.b64encode(
        hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    ).decode()


def new_message_id() -> str:
    return str(secrets.randbelow(9 * 10**17) + 10**17)  # 18 digits, like LINE's


def new_event_id() -> str:
    """A ULID-shaped webhookEventId: 26 Crockford base32 characters."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


class _Problems:
    """LINE's `details` list: a message and the property it is about."""

    def __init__(self) -> None:
        self.found: list[dict[str, str]] = []

    def add(self, prop: str, text: str) -> None:
        self.found.append({"message": text, "property": prop})

    def text(
        self, prop: str, value: Any, limit: int, *, measure: Any = _graphemes, required: bool = True
    ) -> None:
        if value is None and not required:
            return
        if not isinstance(value, str) or (required and not value):
            self.add(prop, "May not be empty")
        elif measure(value) > limit:
            self.add(prop, f"Length must be between 0 and {limit}")

    def size(self, prop: str, value: Any, low: int, high: int) -> list[Any]:
        if not isinstance(value, list) or not low <= len(value) <= high:
            self.add(prop, f"Size must be between {low} and {high}")
            return value if isinstance(value, list) else []
        return value

    def https(self, prop: str, url: Any, *, required: bool = True) -> None:
        if url is None and not required:
            return
        if not isinstance(url, str) or not url:
            self.add(prop, "May not be empty")
        elif not url.startswith("https://"):
            self.add(prop, "must be a URL starting with https://")
        elif len(url) > MAX_URL:
            self.add(prop, f"Length must be between 0 and {MAX_URL}")

    def action(
        self, prop: str, action: Any, label_max: int = MAX_LABEL, *, quick_reply: bool = False
    ) -> None:
        allowed = QUICK_REPLY_ACTIONS if quick_reply else TEMPLATE_ACTIONS
        if not isinstance(action, dict):
            self.add(prop, "must be an object")
            return
        kind = action.get("type")
        if kind not in allowed:
            self.add(f"{prop}.type", f"action type {kind!r} is not allowed here")
            return
        self.text(f"{prop}.label", action.get("label"), label_max)
        if kind == "postback":
            data = action.get("data")
            if not isinstance(data, str) or len(data) > MAX_DATA:
                self.add(f"{prop}.data", f"Length must be between 0 and {MAX_DATA}")
            # displayText is required on quick-reply buttons, optional elsewhere
            text = action.get("displayText")
            self.text(f"{prop}.displayText", text, MAX_DATA, required=quick_reply)
            if action.get("displayText") is not None and action.get("text") is not None:
                self.add(prop, "displayText and text cannot both be set")
        elif kind == "message":
            self.text(f"{prop}.text", action.get("text"), MAX_DATA)
        elif kind == "uri":
            uri = action.get("uri")
            if not isinstance(uri, str) or not uri.lower().startswith(URI_SCHEMES):
                self.add(f"{prop}.uri", "must be an http, https, line or tel URI")
            elif len(uri) > MAX_URI:
                self.add(f"{prop}.uri", f"Length must be between 0 and {MAX_URI}")

    def actions(self, prop: str, actions: Any, high: int) -> list[Any]:
        listed = self.size(prop, actions, 1, high)
        for i, action in enumerate(listed):
            self.action(f"{prop}[{i}]", action)
        return listed

    def quick_reply(self, prop: str, quick: Any) -> None:
        if not isinstance(quick, dict):
            self.add(prop, "must be an object")
            return
        items = self.size(f"{prop}.items", quick.get("items"), 1, MAX_QUICK_REPLY_ITEMS)
        for i, item in enumerate(items):
            where = f"{prop}.items[{i}]"
            if not isinstance(item, dict) or item.get("type") != "action":
                self.add(f"{where}.type", "must be 'action'")
                continue
            self.https(f"{where}.imageUrl", item.get("imageUrl"), required=False)
            self.action(f"{where}.action", item.get("action"), quick_reply=True)

    def template(self, prop: str, template: Any) -> None:
        if not isinstance(template, dict):
            self.add(prop, "May not be empty")
            return
        kind = template.get("type")
        if kind == "buttons":
            shown = bool(template.get("thumbnailImageUrl") or template.get("title"))
            limit = MAX_TEXT_WITH_TITLE_OR_IMAGE if shown else MAX_BUTTONS_TEXT
            self.https(
                f"{prop}.thumbnailImageUrl", template.get("thumbnailImageUrl"), required=False
            )
            self.text(f"{prop}.title", template.get("title"), MAX_TITLE, required=False)
            self.text(f"{prop}.text", template.get("text"), limit)
            if "defaultAction" in template:
                self.action(f"{prop}.defaultAction", template["defaultAction"])
            self.actions(f"{prop}.actions", template.get("actions"), MAX_BUTTONS_ACTIONS)
        elif kind == "confirm":
            self.text(f"{prop}.text", template.get("text"), MAX_CONFIRM_TEXT)
            listed = self.actions(f"{prop}.actions", template.get("actions"), 2)
            if len(listed) != 2:
                self.add(f"{prop}.actions", "Size must be between 2 and 2")
        elif kind == "carousel":
            self.columns(
                prop, self.size(f"{prop}.columns", template.get("columns"), 1, MAX_COLUMNS)
            )
        elif kind == "image_carousel":
            columns = self.size(f"{prop}.columns", template.get("columns"), 1, MAX_COLUMNS)
            for i, column in enumerate(columns):
                where = f"{prop}.columns[{i}]"
                column = column if isinstance(column, dict) else {}
                self.https(f"{where}.imageUrl", column.get("imageUrl"))
                self.action(
                    f"{where}.action",
                    column.get("action"),
                    MAX_IMAGE_CAROUSEL_LABEL,
                )
        else:
            self.add(f"{prop}.type", f"invalid template type {kind!r}")

    def columns(self, prop: str, columns: list[Any]) -> None:
        counts: set[int] = set()
        images: set[bool] = set()
        titles: set[bool] = set()
        for i, column in enumerate(columns):
            where = f"{prop}.columns[{i}]"
            if not isinstance(column, dict):
                self.add(where, "must be an object")
                continue
            shown = bool(column.get("thumbnailImageUrl") or column.get("title"))
            limit = MAX_TEXT_WITH_TITLE_OR_IMAGE if shown else MAX_COLUMN_TEXT
            self.https(
                f"{where}.thumbnailImageUrl", column.get("thumbnailImageUrl"), required=False
            )
            self.text(f"{where}.title", column.get("title"), MAX_TITLE, required=False)
            self.text(f"{where}.text", column.get("text"), limit)
            if "defaultAction" in column:
                self.action(f"{where}.defaultAction", column["defaultAction"])
            counts.add(
                len(self.actions(f"{where}.actions", column.get("actions"), MAX_COLUMN_ACTIONS))
            )
            images.add(column.get("thumbnailImageUrl") is not None)
            titles.add(column.get("title") is not None)
        if len(counts) > 1:
            self.add(f"{prop}.columns", "All columns must have the same number of actions")
        if len(images) > 1:
            self.add(f"{prop}.columns", "thumbnailImageUrl must be set in all columns or none")
        if len(titles) > 1:
            self.add(f"{prop}.columns", "title must be set in all columns or none")


def _check_message(index: int, message: Any) -> list[dict[str, str]]:
    """LINE's complaints about one message object, as `details` entries."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return [{"message": "must be an object", "property": where}]
    problems: list[dict[str, str]] = []

    def problem(prop: str, text: str) -> None:
        problems.append({"message": text, "property": f"{where}.{prop}"})

    kind = message.get("type")
    check = _MESSAGE_CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        problem("type", f"invalid message type {kind!r}")
    else:
        problems += check(where, message, problem)
    if "quickReply" in message:
        quick = _Problems()
        quick.quick_reply(f"{where}.quickReply", message["quickReply"])
        problems += quick.found
    return problems


_Problem = Callable[[str, str], None]  # a property under the message, and what is wrong


def _check_text(_where: str, message: dict[str, Any], problem: _Problem) -> list[dict[str, str]]:
    text = message.get("text")
    if not isinstance(text, str) or not text:
        problem("text", "May not be empty")
    elif _utf16(text) > MAX_TEXT:
        problem("text", f"Length must be between 0 and {MAX_TEXT}")
    return []


def _check_media(_where: str, message: dict[str, Any], problem: _Problem) -> list[dict[str, str]]:
    kind = message["type"]
    keys = ["originalContentUrl"] + (["previewImageUrl"] if kind != "audio" else [])
    for key in keys:
        url = message.get(key)
        if not isinstance(url, str) or not url:
            problem(key, "May not be empty")
        elif not url.startswith("https://"):
            problem(key, "must be a URL starting with https://")
        elif len(url) > MAX_URL:
            problem(key, f"Length must be between 0 and {MAX_URL}")
    if kind == "audio":
        duration = message.get("duration")
        if not isinstance(duration, int) or isinstance(duration, bool) or duration < 1:
            problem("duration", "must be a positive number of milliseconds")
    return []


def _check_location(
    _where: str, message: dict[str, Any], problem: _Problem
) -> list[dict[str, str]]:
    for key in ("title", "address"):
        value = message.get(key)
        if not isinstance(value, str) or not value:
            problem(key, "May not be empty")
        elif _utf16(value) > MAX_LOCATION_FIELD:
            problem(key, f"Length must be between 0 and {MAX_LOCATION_FIELD}")
    for key in ("latitude", "longitude"):
        if not isinstance(message.get(key), int | float):
            problem(key, "must be a number")
    return []


def _check_sticker(_where: str, message: dict[str, Any], problem: _Problem) -> list[dict[str, str]]:
    for key in ("packageId", "stickerId"):
        if not isinstance(message.get(key), str) or not message.get(key):
            problem(key, "May not be empty")
    return []


def _check_rich(where: str, message: dict[str, Any], _problem: _Problem) -> list[dict[str, str]]:
    """Template, flex and imagemap: flex and imagemap checked for the common fields only."""
    rich = _Problems()
    rich.text(f"{where}.altText", message.get("altText"), MAX_ALT_TEXT, measure=_utf16)
    if message["type"] == "template":
        rich.template(f"{where}.template", message.get("template"))
    return rich.found


# Each message type's checks: problems reported through `problem`, or returned with their
# full property path.
_MESSAGE_CHECKS: dict[str, Callable[[str, dict[str, Any], _Problem], list[dict[str, str]]]] = {
    "text": _check_text,
    "image": _check_media,
    "video": _check_media,
    "audio": _check_media,
    "location": _check_location,
    "sticker": _check_sticker,
    "template": _check_rich,
    "flex": _check_rich,
    "imagemap": _check_rich,
}


def validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid(
            "The request body has 1 error(s)",
            [{"message": "May not be empty", "property": "messages"}],
        )
    if len(messages) > MAX_MESSAGES:
        raise Invalid(
            "The request body has 1 error(s)",
            [{"message": f"Size must be between 1 and {MAX_MESSAGES}", "property": "messages"}],
        )
    details = [d for i, m in enumerate(messages) for d in _check_message(i, m)]
    if details:
        raise Invalid(f"The request body has {len(details)} error(s)", details)


class LineSimulator(SimulatorServer):
    """One LINE Official Account on a fake api.line.me, posting signed webhooks like LINE."""

    def __init__(
        self,
        *,
        channel_secret: str,
        channel_access_token: str,
        bot_user_id: str = "U" + "0" * 24 + "8b1c2d3e",
        webhook_url: str | None = None,
        reply_token_ttl: float = REPLY_TOKEN_TTL,
        webhook_attempts: int = 1,
        retry_backoff: float = 0.05,
    ) -> None:
        super().__init__()
        self.channel_secret, self.channel_access_token = channel_secret, channel_access_token
        self.bot_user_id = bot_user_id
        self.webhook_url = webhook_url
        self.reply_token_ttl = reply_token_ttl
        # LINE redelivers only when "webhook redelivery" is on; then isRedelivery is true.
        self.webhook_attempts, self.retry_backoff = webhook_attempts, retry_backoff
        self.requests: list[RecordedRequest] = []  # every API request, accepted or not
        self.sent: list[Sent] = []  # accepted replies and pushes
        self.webhook_endpoint: str | None = None  # set by PUT /v2/bot/channel/webhook/endpoint
        self._tokens: dict[str, _Token] = {}
        self._retry_keys: dict[str, Sent] = {}
        self._failures: list[_Failure] = []

    @property
    def base_url(self) -> str:
        """What a channel's `api_base_url` should be."""
        return self._url

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/bot/message/reply", self._reply)
        app.router.add_post("/v2/bot/message/push", self._push)
        app.router.add_put("/v2/bot/channel/webhook/endpoint", self._set_endpoint)
        app.router.add_get("/v2/bot/channel/webhook/endpoint", self._get_endpoint)
        app.router.add_get("/_sim/sent", self._list_sent)
        app.router.add_post("/_sim/inbound", self._inbound)

    def fail_next(
        self,
        status: int,
        message: str = "An error occurred in the backend",
        *,
        count: int = 1,
        details: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `count` valid sends (to `path`, if given) with this error."""
        self._failures.append(_Failure(status, message, details or [], retry_after, count, path))

    def replies(self) -> list[Sent]:
        return [s for s in self.sent if s.kind == "reply"]

    def pushes(self) -> list[Sent]:
        return [s for s in self.sent if s.kind == "push"]

    def expire_reply_tokens(self) -> None:
        """Age every issued reply token past its validity."""
        for token in self._tokens.values():
            token.issued -= self.reply_token_ttl + 1

    # --- the API ---------------------------------------------------------------------
    async def _record(self, request: web.Request) -> tuple[RecordedRequest, str]:
        recorded = RecordedRequest(
            request.method, request.path_qs, dict(request.headers), await request.read()
        )
        self.requests.append(recorded)
        return recorded, str(uuid.uuid4())

    def _answer(
        self,
        recorded: RecordedRequest,
        request_id: str,
        body: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        recorded.status = status
        return web.json_response(
            body, status=status, headers={"x-line-request-id": request_id, **(headers or {})}
        )

    def _authorised(self, request: web.Request) -> bool:
        expected = f"Bearer {self.channel_access_token}"
        return hmac.compare_digest(request.headers.get("Authorization", ""), expected)

    def _pending_failure(self, path: str) -> _Failure | None:
        for rule in self._failures:
            if rule.path in (None, path):
                rule.left -= 1
                if rule.left <= 0:
                    self._failures.remove(rule)
                return rule
        return None

    async def _send_common(
        self, request: web.Request
    ) -> tuple[RecordedRequest, str, dict[str, Any] | web.Response]:
        recorded, request_id = await self._record(request)
        if not self._authorised(request):
            return (
                recorded,
                request_id,
                self._answer(recorded, request_id, {"message": AUTH_FAILED}, 401),
            )
        try:
            payload = json.loads(recorded.body)
            if not isinstance(payload, dict):
                raise Invalid("The request body must be a JSON object")
            validate_messages(payload.get("messages"))
        except ValueError:
            return (
                recorded,
                request_id,
                self._answer(
                    recorded,
                    request_id,
                    {"message": "The request body could not be parsed as JSON"},
                    400,
                ),
            )
        except Invalid as exc:
            return recorded, request_id, self._error(recorded, request_id, exc)
        return recorded, request_id, payload

    def _error(self, recorded: RecordedRequest, request_id: str, exc: Invalid) -> web.Response:
        body: dict[str, Any] = {"message": exc.message}
        if exc.details:
            body["details"] = exc.details
        return self._answer(recorded, request_id, body, 400)

    def _fail(self, recorded: RecordedRequest, request_id: str, rule: _Failure) -> web.Response:
        body: dict[str, Any] = {"message": rule.message}
        if rule.details:
            body["details"] = rule.details
        headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
        return self._answer(recorded, request_id, body, rule.status, headers)

    def _accept(
        self, kind: str, request_id: str, payload: dict[str, Any], key: str | None = None
    ) -> Sent:
        ids = [new_message_id() for _ in payload["messages"]]
        sent = Sent(kind, request_id, payload, ids, key)
        self.sent.append(sent)
        return sent

    @staticmethod
    def _sent_body(sent: Sent) -> dict[str, Any]:
        return {
            "sentMessages": [
                {"id": i, "quoteToken": secrets.token_urlsafe(24)} for i in sent.message_ids
            ]
        }

    async def _reply(self, request: web.Request) -> web.Response:
        recorded, request_id, result = await self._send_common(request)
        if isinstance(result, web.Response):
            return result
        if "X-Line-Retry-Key" in request.headers:  # only push/multicast/... accept one
            return self._error(
                recorded, request_id, Invalid("The retry key is not supported for this API")
            )
        token = self._tokens.get(str(result.get("replyToken", "")))
        if token is None or token.used or time.monotonic() - token.issued > self.reply_token_ttl:
            return self._error(recorded, request_id, Invalid("Invalid reply token"))
        rule = self._pending_failure("/v2/bot/message/reply")
        if rule is not None:
            return self._fail(recorded, request_id, rule)
        token.used = True
        sent = self._accept("reply", request_id, result)
        sent.to = token.target
        return self._answer(recorded, request_id, self._sent_body(sent))

    async def _push(self, request: web.Request) -> web.Response:
        recorded, request_id, result = await self._send_common(request)
        if isinstance(result, web.Response):
            return result
        if not isinstance(result.get("to"), str) or not result["to"]:
            return self._error(
                recorded,
                request_id,
                Invalid(
                    "The request body has 1 error(s)",
                    [{"message": "May not be empty", "property": "to"}],
                ),
            )
        key = request.headers.get("X-Line-Retry-Key")
        if key is not None:
            try:
                uuid.UUID(key)
            except ValueError:
                return self._error(
                    recorded, request_id, Invalid("The value of the retry key is invalid")
                )
            earlier = self._retry_keys.get(key)
            if earlier is not None:
                body = {"message": "The retry key is already accepted", **self._sent_body(earlier)}
                return self._answer(
                    recorded,
                    request_id,
                    body,
                    409,
                    {"x-line-accepted-request-id": earlier.request_id},
                )
        rule = self._pending_failure("/v2/bot/message/push")
        if rule is not None:
            return self._fail(recorded, request_id, rule)
        sent = self._accept("push", request_id, result, key)
        sent.to = result["to"]
        if key is not None:
            self._retry_keys[key] = sent
        return self._answer(recorded, request_id, self._sent_body(sent))

    async def _set_endpoint(self, request: web.Request) -> web.Response:
        recorded, request_id = await self._record(request)
        if not self._authorised(request):
            return self._answer(recorded, request_id, {"message": AUTH_FAILED}, 401)
        try:
            endpoint = json.loads(recorded.body).get("endpoint")
        except (ValueError, AttributeError):
            endpoint = None
        if (
            not isinstance(endpoint, str)
            or not endpoint.startswith("https://")
            or len(endpoint) > 500
        ):
            return self._error(recorded, request_id, Invalid("Invalid webhook endpoint URL"))
        self.webhook_endpoint = endpoint
        return self._answer(recorded, request_id, {})

    async def _get_endpoint(self, request: web.Request) -> web.Response:
        recorded, request_id = await self._record(request)
        if not self._authorised(request):
            return self._answer(recorded, request_id, {"message": AUTH_FAILED}, 401)
        if self.webhook_endpoint is None:
            return self._answer(recorded, request_id, {"message": "Not found"}, 404)
        body = {"endpoint": self.webhook_endpoint, "active": True}
        return self._answer(recorded, request_id, body)

    # --- webhooks --------------------------------------------------------------------
    def issue_reply_token(self, target: str) -> str:
        token = secrets.token_hex(16)
        self._tokens[token] = _Token(target, time.monotonic())
        return token

    def event(
        self, kind: str, chat: Chat, *, repliable: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """One webhook event object as LINE shapes it."""
        event: dict[str, Any] = {
            "type": kind,
            "mode": "active",
            "timestamp": int(time.time() * 1000),
            "source": chat.source(),
            "webhookEventId": new_event_id(),
            "deliveryContext": {"isRedelivery": False},
        }
        if repliable:
            event["replyToken"] = self.issue_reply_token(chat.target)
        return event | fields

    def payload(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return {"destination": self.bot_user_id, "events": events}

    async def post_webhook(self, payload: dict[str, Any]) -> int:
        """Sign and POST once; the receiver's HTTP status (ClientError if unreachable)."""
        if not (self.webhook_url and self._session):
            raise RuntimeError("post_webhook needs a webhook_url and a started simulator")
        # LINE's own serialisation: compact, UTF-8 (signatures cover exactly these bytes).
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "x-line-signature": sign(self.channel_secret, body),
        }
        async with self._session.post(self.webhook_url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def deliver(self, events: list[dict[str, Any]]) -> None:
        payload = self.payload(events)

        def mark_redelivery() -> None:
            for event in events:  # a redelivery keeps its webhookEventId
                event["deliveryContext"] = {"isRedelivery": True}

        await self._post_with_retries(
            payload, lambda: self.post_webhook(payload), before_retry=mark_redelivery
        )

    async def verify_webhook(self) -> int:
        """The console's "Verify" button: a signed request with no events."""
        return await self.post_webhook(self.payload([]))

    async def send_text(
        self,
        user_id: str,
        text: str,
        *,
        group_id: str | None = None,
        room_id: str | None = None,
    ) -> dict[str, Any]:
        """A user's text in a 1:1 chat (or a group/room); returns the event sent."""
        message = {
            "id": new_message_id(),
            "type": "text",
            "quoteToken": secrets.token_urlsafe(24),
            "text": text,
        }
        event = self.event("message", Chat(user_id, group_id, room_id), message=message)
        await self.deliver([event])
        return event

    async def send_follow(self, user_id: str, *, unblocked: bool = False) -> dict[str, Any]:
        event = self.event("follow", Chat(user_id), follow={"isUnblocked": unblocked})
        await self.deliver([event])
        return event

    async def send_unfollow(self, user_id: str) -> dict[str, Any]:
        event = self.event("unfollow", Chat(user_id), repliable=False)
        await self.deliver([event])
        return event

    async def send_postback(
        self, user_id: str, data: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        postback: dict[str, Any] = {"data": data}
        if params:
            postback["params"] = params
        event = self.event("postback", Chat(user_id), postback=postback)
        await self.deliver([event])
        return event

    def last_rich_message(self, target: str) -> dict[str, Any]:
        """The last template or quick-reply message object sent to `target`."""
        for sent in reversed(self.sent):
            if sent.to != target:
                continue
            for message in reversed(sent.body["messages"]):
                if message.get("type") == "template" or "quickReply" in message:
                    return dict(message)
        raise LookupError(f"nothing with buttons was sent to {target}")

    async def tap(
        self,
        user_id: str,
        *,
        column: int | None = None,
        action: int = 0,
        quick_reply: bool = False,
    ) -> dict[str, Any] | None:
        """The user taps a button of the last template (or quick reply) sent to them.

        A postback action posts LINE's `postback` event with the action's `data` (its
        `displayText` only shows in the chat); a message action posts the user's text; other
        actions (uri, location...) open something on the phone and post nothing.
        https://developers.line.biz/en/reference/messaging-api/#postback-event
        """
        message = self.last_rich_message(user_id)
        if quick_reply:
            chosen = message["quickReply"]["items"][action]["action"]
        elif column is not None:
            chosen = message["template"]["columns"][column]["actions"][action]
        else:
            chosen = message["template"]["actions"][action]
        if chosen["type"] == "postback":
            return await self.send_postback(user_id, chosen["data"])
        if chosen["type"] == "message":
            return await self.send_text(user_id, chosen["text"])
        return None

    # --- control endpoints for humans and other processes ----------------------------
    async def _list_sent(self, _request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"kind": s.kind, "request_id": s.request_id, "body": s.body, "ids": s.message_ids}
                for s in self.sent
            ]
        )

    async def _inbound(self, request: web.Request) -> web.Response:
        """`{"from": userId, "text": .., "group"?: groupId}` → the user's message, as a webhook."""
        try:
            data = await request.json()
            sender, text = str(data["from"]), str(data["text"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"from": .., "text": ..}'}, status=400)
        event = await self.send_text(sender, text, group_id=data.get("group"))
        return web.json_response({"id": event["message"]["id"]})
