"""Viber REST Bot API on loopback: send_message, set_webhook and signed callbacks.

Send API:  https://creators.viber.com/docs/bots-api/resources/messaging/send-message
Webhooks:  https://creators.viber.com/docs/bots-api/getting-started/web-hooks
Callbacks: https://developers.viber.com/docs/api/rest-bot-api/#callbacks
Errors:    https://developers.viber.com/docs/api/rest-bot-api/#error-codes

Keyboards: https://developers.viber.com/docs/tools/keyboards/

Like Viber, every answer is HTTP 200 with a `status` (0 is success), and `message_token`s
are 64-bit integers, here always above 2**53 so that a receiver reading them through a
float (JavaScript, a careless JSON decoder) visibly gets them wrong.

Keyboards (on any message) and rich media are checked like Viber documents them: grid sizes,
action types, the required ActionBody, Text length, the API level a feature needs. `tap`
plays a user pressing a button: a "reply" button sends its ActionBody back as the user's
text, with the message's tracking_data, as the Viber app does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import ClientError, web

from gateway.simulator.server import RecordedRequest, SimulatorServer

log = structlog.get_logger(__name__)

STATUS_MESSAGES = {
    0: "ok",
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    7: "publicAccountBlocked",
    10: "webhookNotSet",
    11: "receiverNoSuitableDevice",
    12: "tooManyRequests",
    13: "apiVersionNotSupported",
    14: "incompatibleWithVersion",
}
DEFAULT_EVENT_TYPES = [
    "delivered",
    "seen",
    "failed",
    "subscribed",
    "unsubscribed",
    "conversation_started",
]
# Sent whatever event_types says (webhooks page).
ALWAYS_SENT = frozenset({"message", "subscribed", "unsubscribed", "webhook"})

# Per message type: (field, limit, required). A string must have 1..limit characters (0: any
# length, may be empty), an "int" a positive integer up to limit, a "num" any number.
# Limits: the REST page's message types; sizes as in https://www.infobip.com/docs/viber/bots/message-types
Rule = tuple[str, str, int, bool]
RULES: dict[str, tuple[Rule, ...]] = {
    "text": (("text", "str", 7000, True),),
    "picture": (("media", "str", 2000, True), ("text", "str0", 512, False)),
    "video": (
        ("media", "str", 2000, True),
        ("size", "int", 26 * 1024 * 1024, True),
        ("duration", "int", 180, False),
    ),
    "file": (
        ("media", "str", 2000, True),
        ("size", "int", 50 * 1024 * 1024, True),
        ("file_name", "str", 256, True),
    ),
    "location": (("location.lat", "num", 90, True), ("location.lon", "num", 180, True)),
    "contact": (("contact.name", "str", 28, True), ("contact.phone_number", "str", 18, True)),
    "sticker": (("sticker_id", "int", 2**31, True),),
    "url": (("media", "str", 2000, True),),
    "rich_media": (("rich_media", "obj", 0, True),),
}
MAX_BODY = 30 * 1024  # "Maximum message size is 30KB" (send-message page)
MAX_TRACKING_DATA = 4000  # send-message page: "Max 4000 characters"

# Keyboards page, "Buttons parameters" and "General keyboard parameters"; send-message page,
# "Rich Media message": ActionTypes location-picker and share-phone not in rich media.
GRID_COLUMNS = 6
KEYBOARD_ROWS = 2  # a keyboard button is 1-2 rows high
MAX_GROUP_ROWS = 7  # rich media: ButtonsGroupRows 1-7
MAX_GROUPS = 6  # rich media: "Buttons: Max of 6 * ButtonsGroupColumns * ButtonsGroupRows"
MAX_BUTTON_TEXT = 250
MAX_ALT_TEXT = 7000
KEYBOARD_ACTIONS = frozenset({"reply", "open-url", "location-picker", "share-phone", "none"})
RICH_MEDIA_ACTIONS = frozenset({"reply", "open-url", "none"})
# min_api_version a feature needs (keyboards page: "api level 3 ... you will have to set the
# min_api_version parameter on right api level as well"); rich media is API level 2.
API_LEVELS = {"location-picker": 3, "share-phone": 3, "rich_media": 2}
_MIN_TOKEN = 2**53 + 1
_MAX_TOKEN = 2**63 - 1


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ViberUser:
    id: str
    name: str = "Test User"
    avatar: str | None = None
    country: str = "UK"
    language: str = "en"
    api_version: int = 10
    subscribed: bool = True

    def profile(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.avatar:
            data["avatar"] = self.avatar
        return data | {
            "country": self.country,
            "language": self.language,
            "api_version": self.api_version,
        }


@dataclass
class _Failure:
    status: int
    message: str | None
    http_status: int
    left: int


@dataclass
class _Webhook:
    url: str | None
    event_types: list[str] = field(default_factory=lambda: list(DEFAULT_EVENT_TYPES))


def new_token() -> int:
    return _MIN_TOKEN + secrets.randbelow(_MAX_TOKEN - _MIN_TOKEN)


def sign(auth_token: str, body: bytes) -> str:
    """X-Viber-Content-Signature: lowercase hex HMAC-SHA256 of the body with the auth token."""
    return hmac.new(auth_token.encode(), body, hashlib.sha256).hexdigest()


def encode_callback(payload: dict[str, Any]) -> bytes:
    """Compact JSON with non-ASCII kept as UTF-8; integers are written with every digit."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _field(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def validate(body: Any) -> None:
    """Raise Refused wherever Viber would refuse this send_message body."""
    if not isinstance(body, dict):
        raise Refused(3, "badData: the request body must be a JSON object")
    receiver = body.get("receiver")
    if not isinstance(receiver, str) or not receiver:
        raise Refused(4, "missingData: receiver is required")
    _check_sender(body.get("sender"))
    version = _check_envelope(body)
    kind = body.get("type")
    if kind not in RULES:
        raise Refused(3, f"badData: unknown message type {kind!r}")
    for path, rule, limit, required in RULES[kind]:
        value = _field(body, path)
        if value is None:
            if required:
                raise Refused(4, f"missingData: {path} is required for type {kind}")
            continue
        if not _fits(value, rule, limit):
            raise Refused(3, f"badData: {path} is not a valid {rule} (limit {limit})")
    if kind == "rich_media":
        _check_rich_media(body, version)
    if "keyboard" in body:
        _check_keyboard(body["keyboard"], version)


def _check_sender(sender: Any) -> None:
    if not isinstance(sender, dict):
        raise Refused(4, "missingData: sender is required")
    name = sender.get("name")
    if not isinstance(name, str) or not name:
        raise Refused(4, "missingData: sender.name is required")
    if len(name) > 28:
        raise Refused(3, "badData: sender.name is longer than 28 characters")
    if "avatar" in sender and not isinstance(sender["avatar"], str):
        raise Refused(3, "badData: sender.avatar must be a string")


def _check_envelope(body: dict[str, Any]) -> int:
    """The fields around the message: its API version (returned) and tracking data."""
    version = body.get("min_api_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Refused(3, "badData: min_api_version must be a positive integer")
    tracking = body.get("tracking_data")
    if tracking is not None and (
        not isinstance(tracking, str) or len(tracking) > MAX_TRACKING_DATA
    ):
        raise Refused(3, f"badData: tracking_data must be a string of at most {MAX_TRACKING_DATA}")
    return version


def _check_keyboard(keyboard: Any, version: int) -> None:
    if not isinstance(keyboard, dict):
        raise Refused(3, "badData: keyboard must be an object")
    if keyboard.get("Type", "keyboard") != "keyboard":
        raise Refused(3, "badData: keyboard.Type must be keyboard")
    buttons = keyboard.get("Buttons")
    if not isinstance(buttons, list) or not buttons:
        raise Refused(4, "missingData: keyboard.Buttons is required")
    for n, button in enumerate(buttons):
        _check_button(button, f"keyboard.Buttons[{n}]", GRID_COLUMNS, KEYBOARD_ROWS, version)
        if button.get("ActionType", "reply") not in KEYBOARD_ACTIONS:
            raise Refused(3, f"badData: keyboard.Buttons[{n}].ActionType is not valid")


def _check_rich_media(body: dict[str, Any], version: int) -> None:
    if version < API_LEVELS["rich_media"]:
        raise Refused(14, "incompatibleWithVersion: rich_media needs min_api_version 2")
    alt = body.get("alt_text")
    if alt is not None and (not isinstance(alt, str) or len(alt) > MAX_ALT_TEXT):
        raise Refused(3, f"badData: alt_text must be a string of at most {MAX_ALT_TEXT}")
    media = body["rich_media"]
    if media.get("Type", "rich_media") != "rich_media":
        raise Refused(3, "badData: rich_media.Type must be rich_media")
    columns = media.get("ButtonsGroupColumns", GRID_COLUMNS)
    rows = media.get("ButtonsGroupRows", MAX_GROUP_ROWS)
    if not _fits(columns, "int", GRID_COLUMNS) or not _fits(rows, "int", MAX_GROUP_ROWS):
        raise Refused(3, "badData: ButtonsGroupColumns must be 1-6 and ButtonsGroupRows 1-7")
    buttons = media.get("Buttons")
    if not isinstance(buttons, list) or not buttons:
        raise Refused(4, "missingData: rich_media.Buttons is required")
    if len(buttons) > MAX_GROUPS * columns * rows:
        raise Refused(3, f"badData: more than {MAX_GROUPS * columns * rows} rich media buttons")
    for n, button in enumerate(buttons):
        _check_button(button, f"rich_media.Buttons[{n}]", columns, rows, version)
        if button.get("ActionType", "reply") not in RICH_MEDIA_ACTIONS:
            raise Refused(3, f"badData: rich_media.Buttons[{n}].ActionType is not valid here")


def _check_button(button: Any, where: str, columns: int, rows: int, version: int) -> None:
    if not isinstance(button, dict):
        raise Refused(3, f"badData: {where} must be an object")
    if not _fits(button.get("Columns", columns), "int", columns):
        raise Refused(3, f"badData: {where}.Columns must be 1-{columns}")
    if not _fits(button.get("Rows", 1), "int", rows):
        raise Refused(3, f"badData: {where}.Rows must be 1-{rows}")
    body = button.get("ActionBody")
    if not isinstance(body, str) or not body:
        raise Refused(4, f"missingData: {where}.ActionBody is required")
    text = button.get("Text")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_BUTTON_TEXT):
        raise Refused(3, f"badData: {where}.Text must be at most {MAX_BUTTON_TEXT} characters")
    if not any(button.get(k) for k in ("Text", "BgMedia", "Image", "BgColor")):
        raise Refused(4, f"missingData: {where} needs Text, BgMedia, Image or BgColor")
    if "Silent" in button and not isinstance(button["Silent"], bool):
        raise Refused(3, f"badData: {where}.Silent must be true or false")
    needs = API_LEVELS.get(str(button.get("ActionType", "reply")), 1)
    if version < needs:
        raise Refused(14, f"incompatibleWithVersion: {where} needs min_api_version {needs}")


def rich_media_cards(rich_media: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The blocks (cards) a rich media message shows, as Viber lays its buttons out: each
    button takes the first free place of its size in the current block, else starts a new one."""
    columns = rich_media.get("ButtonsGroupColumns", GRID_COLUMNS)
    rows = rich_media.get("ButtonsGroupRows", MAX_GROUP_ROWS)
    cards: list[list[dict[str, Any]]] = []
    free: list[list[bool]] = []
    for button in rich_media["Buttons"]:
        width, height = button.get("Columns", columns), button.get("Rows", 1)
        if not cards or not _place(free, width, height):
            free = [[True] * columns for _ in range(rows)]
            cards.append([])
            _place(free, width, height)
        cards[-1].append(button)
    return cards


def _place(free: list[list[bool]], width: int, height: int) -> bool:
    for top in range(len(free) - height + 1):
        for left in range(len(free[0]) - width + 1):
            cells = [(r, c) for r in range(top, top + height) for c in range(left, left + width)]
            if all(free[r][c] for r, c in cells):
                for r, c in cells:
                    free[r][c] = False
                return True
    return False


def _fits(value: Any, rule: str, limit: int) -> bool:
    if rule == "str":
        return isinstance(value, str) and 1 <= len(value) <= limit
    if rule == "str0":
        return isinstance(value, str) and len(value) <= limit
    if rule == "int":
        return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit
    if rule == "num":
        if isinstance(value, str):  # Viber's own examples send coordinates as strings
            try:
                value = float(value)
            except ValueError:
                return False
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and -limit <= value <= limit
        )
    return isinstance(value, dict) and bool(value)


class ViberSimulator(SimulatorServer):
    """One bot on a fake chatapi.viber.com, posting signed callbacks like Viber."""

    def __init__(
        self,
        *,
        auth_token: str,
        webhook_url: str | None = None,
        auto_statuses: tuple[str, ...] = ("delivered", "seen"),
        status_delay: float = 0.05,
        webhook_attempts: int = 4,
        retry_backoff: float = 0.05,
        chat_hostname: str = "SN-CHAT-05_",
    ) -> None:
        super().__init__()
        self.auth_token = auth_token
        self.auto_statuses, self.status_delay = auto_statuses, status_delay
        self.webhook_attempts, self.retry_backoff = webhook_attempts, retry_backoff
        self.chat_hostname = chat_hostname
        self._webhook = _Webhook(webhook_url)
        self.users: dict[str, ViberUser] = {}  # everyone who ever talked to the bot
        self.sent: list[dict[str, Any]] = []  # accepted sends: {"message_token": .., "body": ..}
        self.requests: list[RecordedRequest] = []  # every API request, accepted or not
        self._failures: list[_Failure] = []

    @property
    def webhook_url(self) -> str | None:
        return self._webhook.url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self._webhook.url = url

    @property
    def event_types(self) -> list[str]:
        return list(self._webhook.event_types)

    @property
    def base_url(self) -> str:
        """What a channel's `api_base_url` should be, e.g. http://127.0.0.1:PORT/pa."""
        return f"{self._url}/pa"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/pa/send_message", self._send)
        app.router.add_post("/pa/set_webhook", self._set_webhook)
        app.router.add_get("/_sim/sent", self._list_sent)
        app.router.add_post("/_sim/inbound", self._inbound)

    def add_user(self, user_id: str, **profile: Any) -> ViberUser:
        """Someone Viber knows as a subscriber of this bot (without posting any callback)."""
        user = self.users.get(user_id) or ViberUser(user_id)
        for key, value in profile.items():
            setattr(user, key, value)
        self.users[user_id] = user
        return user

    def fail_next(
        self, status: int, *, count: int = 1, message: str | None = None, http_status: int = 200
    ) -> None:
        """Answer the next `count` valid sends with Viber `status` (or an HTTP error)."""
        self._failures.append(_Failure(status, message, http_status, count))

    # --- the API ---------------------------------------------------------------------
    def _answer(self, status: int, message: str | None = None, **extra: Any) -> web.Response:
        body = {"status": status, "status_message": message or STATUS_MESSAGES.get(status, "")}
        text = json.dumps(body | extra)  # exact ints: message_token keeps all its digits
        return web.Response(text=text, content_type="application/json")

    async def _authorised(self, request: web.Request) -> tuple[bytes, web.Response | None]:
        raw = await request.read()
        headers = dict(request.headers)
        self.requests.append(RecordedRequest(request.method, request.path_qs, headers, raw))
        token = request.headers.get("X-Viber-Auth-Token")
        if not token:
            return raw, self._answer(2, "missing_auth_token")
        if not hmac.compare_digest(token.encode(), self.auth_token.encode()):
            return raw, self._answer(2)
        return raw, None

    async def _send(self, request: web.Request) -> web.Response:
        raw, refused = await self._authorised(request)
        if refused is not None:
            return refused
        if self._webhook.url is None:
            return self._answer(10)  # Viber refuses sends until a webhook is set
        try:
            if len(raw) > MAX_BODY:
                raise Refused(3, "badData: the message is larger than 30KB")
            try:
                payload = json.loads(raw)
            except ValueError:
                raise Refused(3, "badData: malformed JSON") from None
            validate(payload)
            user = self.users.get(payload["receiver"])
            if user is None:
                raise Refused(5, STATUS_MESSAGES[5])
            if not user.subscribed:
                raise Refused(6, STATUS_MESSAGES[6])
            if payload.get("min_api_version", 1) > user.api_version:
                raise Refused(13, STATUS_MESSAGES[13])
        except Refused as exc:
            return self._answer(exc.status, exc.message, message_token=new_token())
        if self._failures:
            return self._fail()
        token = new_token()
        self.sent.append({"message_token": token, "body": payload})
        if self.auto_statuses:
            self._spawn(self._post_statuses(token, payload["receiver"]))
        return self._answer(0, message_token=token, chat_hostname=self.chat_hostname)

    def _fail(self) -> web.Response:
        rule = self._failures[0]
        rule.left -= 1
        if rule.left <= 0:
            self._failures.pop(0)
        if rule.http_status != 200:
            return web.Response(status=rule.http_status, text="upstream error")
        return self._answer(
            rule.status, rule.message, message_token=new_token(), chat_hostname=self.chat_hostname
        )

    async def _set_webhook(self, request: web.Request) -> web.Response:
        raw, refused = await self._authorised(request)
        if refused is not None:
            return refused
        try:
            payload = json.loads(raw)
            url = payload["url"]
        except (ValueError, KeyError, TypeError):
            return self._answer(3, "badData: url is required")
        if url == "":  # removing the webhook
            self._webhook = _Webhook(None)
            return self._answer(0)
        types = payload.get("event_types") or list(DEFAULT_EVENT_TYPES)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return self._answer(1)
        # Viber checks the URL with a signed `webhook` callback and needs HTTP 200 back.
        check = {
            "event": "webhook",
            "timestamp": _now_ms(),
            "chat_hostname": self.chat_hostname,
            "message_token": new_token(),
        }
        try:
            status = await self._post(url, check)
        except (ClientError, TimeoutError) as exc:
            log.info("simulator.viber.webhook_unreachable", reason=repr(exc))
            status = 0
        if status != 200:
            return self._answer(1, f"invalidUrl: webhook answered {status or 'nothing'}")
        self.webhooks.append(check)
        self._webhook = _Webhook(url, [str(t) for t in types])
        return self._answer(0, event_types=self._webhook.event_types)

    # --- callbacks -------------------------------------------------------------------
    async def _post(self, url: str, payload: dict[str, Any]) -> int:
        if self._session is None:
            raise RuntimeError("start the simulator first")
        body = encode_callback(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Viber-Content-Signature": sign(self.auth_token, body),
        }
        async with self._session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def post_callback(self, payload: dict[str, Any]) -> int:
        """Sign and POST once; the gateway's HTTP status (ClientError if unreachable)."""
        if not self._webhook.url:
            raise RuntimeError("post_callback needs a webhook_url")
        return await self._post(self._webhook.url, payload)

    async def _deliver(self, payload: dict[str, Any]) -> None:
        # Viber retries until HTTP 200 ("several times for an hour", FAQ).
        if payload["event"] not in ALWAYS_SENT | set(self._webhook.event_types):
            return
        await self._post_with_retries(
            payload, lambda: self.post_callback(payload), accepted=lambda status: status == 200
        )

    def _envelope(self, event: str, **fields: Any) -> dict[str, Any]:
        return {
            "event": event,
            "timestamp": _now_ms(),
            "chat_hostname": self.chat_hostname,
            "message_token": new_token(),
        } | fields

    async def send_inbound(
        self, message: dict[str, Any], *, user_id: str, name: str = "Test User"
    ) -> int:
        """A user's message (any `message` object); it subscribes them. Returns its token."""
        user = self.add_user(user_id, name=name, subscribed=True)
        payload = self._envelope("message", sender=user.profile(), message=message, silent=False)
        await self._deliver(payload)
        return int(payload["message_token"])

    async def tap(self, sent: dict[str, Any], button: dict[str, Any]) -> int:
        """The receiver of `sent` (an entry of `self.sent`) presses one of its reply buttons:
        Viber sends the button's ActionBody as their text, echoing the message's tracking_data."""
        if button.get("ActionType", "reply") != "reply":
            raise ValueError("only reply buttons send their ActionBody back as text")
        body = sent["body"]
        message: dict[str, Any] = {"type": "text", "text": button["ActionBody"]}
        if body.get("tracking_data") is not None:
            message["tracking_data"] = body["tracking_data"]
        user = self.users[body["receiver"]]
        return await self.send_inbound(message, user_id=user.id, name=user.name)

    async def send_inbound_text(self, user_id: str, text: str, *, name: str = "Test User") -> int:
        return await self.send_inbound({"type": "text", "text": text}, user_id=user_id, name=name)

    async def subscribe(self, user_id: str, *, name: str = "Test User") -> int:
        user = self.add_user(user_id, name=name, subscribed=True)
        payload = self._envelope("subscribed", user=user.profile())
        await self._deliver(payload)
        return int(payload["message_token"])

    async def unsubscribe(self, user_id: str) -> int:
        self.add_user(user_id, subscribed=False)
        payload = self._envelope("unsubscribed", user_id=user_id)
        await self._deliver(payload)
        return int(payload["message_token"])

    async def conversation_started(
        self, user_id: str, *, name: str = "Test User", context: str | None = None
    ) -> int:
        """The user opened the chat; they are not subscribed unless they were already."""
        known = self.users.get(user_id)
        user = known or ViberUser(user_id, name=name, subscribed=False)
        self.users[user_id] = user
        fields: dict[str, Any] = {"type": "open", "user": user.profile()}
        if context is not None:
            fields["context"] = context
        payload = self._envelope("conversation_started", **fields, subscribed=user.subscribed)
        await self._deliver(payload)
        return int(payload["message_token"])

    async def _post_statuses(self, token: int, user_id: str) -> None:
        # https://developers.viber.com/docs/api/rest-bot-api/#message-receipts-callbacks
        for state in self.auto_statuses:
            await asyncio.sleep(self.status_delay)
            fields: dict[str, Any] = {"message_token": token, "user_id": user_id}
            if state == "failed":
                fields["desc"] = "failure description"
            await self._deliver(self._envelope(state, **fields))

    # --- control endpoints for humans and other processes ----------------------------
    async def _list_sent(self, _request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.sent), content_type="application/json")

    async def _inbound(self, request: web.Request) -> web.Response:
        """`{"from": user_id, "text": ..., "name"?: ...}` → the user's message, as a callback."""
        try:
            data = await request.json()
            sender, text = str(data["from"]), str(data["text"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"from": .., "text": ..}'}, status=400)
        token = await self.send_inbound_text(sender, text, name=str(data.get("name", "Test User")))
        return web.Response(
            text=json.dumps({"message_token": token}), content_type="application/json"
        )


def _now_ms() -> int:
    return int(time.time() * 1000)
