"""WhatsApp Cloud API on loopback: the send endpoint, its errors and Meta-signed webhooks.

Send API: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
Webhooks: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
Errors:   https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from adapters.whatsapp import BSUID
from gateway.simulator.server import RecordedRequest, SimulatorServer

log = structlog.get_logger(__name__)

GRAPH_VERSION = "v21.0"
ERRORS_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

# (title, details) per code from the error-codes page; `message` is "(#code) title".
ERRORS: dict[int, tuple[str, str]] = {
    100: ("Invalid parameter", "The request included unsupported or misspelled parameters."),
    130429: (
        "Rate limit hit",
        "Message failed to send because there were too many messages sent "
        "from this phone number in a short period of time",
    ),
    131000: ("Something went wrong", "Message failed to send due to an unknown error."),
    131026: ("Message undeliverable", "Unable to deliver message."),
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have "
        "passed since the customer last replied to this number.",
    ),
    131048: (
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how "
        "many messages can be sent from this phone number.",
    ),
    131050: (
        "Unable to deliver the message. This recipient has chosen to stop receiving "
        "marketing messages on WhatsApp from your business.",
        "",
    ),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send "
        "because there were too many messages sent from this phone number to the same "
        "phone number in a short period of time.",
    ),
}

# Send-body rules per type as (path, limit, required). A string must have 1..limit characters,
# a list 1..limit items, and limit 0 means a number. "[]" applies the rule to every element.
# Limits: the messages reference above and https://developers.facebook.com/docs/whatsapp/
# cloud-api/messages/{text-messages,interactive-reply-buttons-messages,interactive-list-messages,
# interactive-cta-url-messages,interactive-media-carousel-messages,location-request-messages}
Rule = tuple[str, int, bool]
_CAPTION: tuple[Rule, ...] = (("caption", 1024, False),)
_FOOTER: tuple[Rule, ...] = (("footer.text", 60, False),)
RULES: dict[str, tuple[Rule, ...]] = {
    "text": (("body", 4096, True),),
    "image": _CAPTION,
    "video": _CAPTION,
    "document": _CAPTION,
    "audio": (),
    "sticker": (),
    "location": (("latitude", 0, True), ("longitude", 0, True)),
    "contacts": (("[].name.formatted_name", 512, True),),
    "template": (("name", 512, True), ("language.code", 16, True)),
    "reaction": (("message_id", 256, True),),  # emoji "" removes a reaction, so it may be empty
    "interactive.button": (
        ("body.text", 1024, True),
        *_FOOTER,
        ("action.buttons", 3, True),
        ("action.buttons[].type", 16, True),
        ("action.buttons[].reply.title", 20, True),
        ("action.buttons[].reply.id", 256, True),
    ),
    "interactive.list": (
        ("body.text", 4096, True),
        *_FOOTER,
        ("action.button", 20, True),
        ("action.sections", 10, True),
        # The list page marks the section title "Required" (the older reference: when there
        # is more than one section); like the strictest reading, every section needs one.
        ("action.sections[].title", 24, True),
        ("action.sections[].rows", 10, True),
        ("action.sections[].rows[].id", 200, True),
        ("action.sections[].rows[].title", 24, True),
        ("action.sections[].rows[].description", 72, False),
    ),
    "interactive.cta_url": (
        ("body.text", 1024, True),
        *_FOOTER,
        ("action.name", 16, True),
        ("action.parameters.display_text", 20, True),
        ("action.parameters.url", 2048, True),
    ),
    "interactive.carousel": (
        ("body.text", 1024, True),
        ("action.cards", 10, True),
        ("action.cards[].card_index", 0, True),
        ("action.cards[].body.text", 160, False),
        # Required by card kind (quick-reply or cta_url): checked in _validate_carousel.
        ("action.cards[].action.buttons[].quick_reply.id", 256, False),
        ("action.cards[].action.buttons[].quick_reply.title", 20, False),
        ("action.cards[].action.parameters.display_text", 20, False),
        ("action.cards[].action.parameters.url", 2048, False),
    ),
    "interactive.location_request_message": (
        ("body.text", 1024, True),
        ("action.name", 16, True),
    ),
}
# Header kinds each interactive type takes (a text header has at most 60 characters).
HEADERS: dict[str, frozenset[str]] = {
    "button": frozenset({"text", "image", "video", "document"}),
    "cta_url": frozenset({"text", "image", "video", "document"}),
    "list": frozenset({"text"}),
    "location_request_message": frozenset(),
}
# The `action.name` an interactive type needs, where it has one.
ACTION_NAMES = {"cta_url": "cta_url", "location_request_message": "send_location"}
_MISSING = object()


class Invalid(Exception):
    """A send body Meta refuses with (#100) Invalid parameter; the text becomes `details`."""


@dataclass
class _Failure:
    code: int
    http_status: int
    title: str | None
    details: str | None
    retry_after: float | None
    left: int


def graph_error(code: int, title: str | None = None, details: str | None = None) -> dict[str, Any]:
    """A Graph error body as the Cloud API sends it (`error_subcode` is not sent since v16.0)."""
    default_title, default_details = ERRORS.get(code, ("Unknown error", ""))
    return {
        "error": {
            "message": f"(#{code}) {title or default_title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details or default_details},
            "fbtrace_id": _trace_id(),
        }
    }


def _trace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(17)).decode().rstrip("=")


def new_wamid(wa_id: str, *, inbound: bool = False) -> str:
    """A wamid shaped like Meta's: base64 of a small Thrift record holding the user's number."""
    number = wa_id.lstrip("+").encode()
    size = 10 if inbound else 9
    key = secrets.token_hex(size).upper().encode()
    tail = bytes([0x12 if inbound else 0x11, 0x18, 2 * size]) + key
    raw = b"\x1c\x18" + bytes([len(number)]) + number + b"\x15\x02\x00" + tail + b"\x00"
    return "wamid." + base64.b64encode(raw).decode()


def encode_webhook(payload: dict[str, Any]) -> bytes:
    """Meta's wire form: compact, non-ASCII as \\uXXXX, "/" as "\\/". Signatures cover these bytes,
    so a receiver that re-serialises JSON before checking them fails, as it would with Meta."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def sign(app_secret: str, body: bytes) -> str:
    """X-Hub-Signature-256: https://developers.facebook.com/docs/graph-api/webhooks/getting-started"""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _require(condition: object, details: str) -> None:
    if not condition:
        raise Invalid(details)


def _lookup(obj: Any, path: str) -> list[tuple[str, Any]]:
    """Every (where, value) that `path` names in `obj`; absent keys give _MISSING."""
    found: list[tuple[str, Any]] = [("", obj)]
    for part in path.replace("[]", ".[]").strip(".").split("."):
        step: list[tuple[str, Any]] = []
        for where, value in found:
            if part != "[]":
                child = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
                step.append((f"{where}['{part}']", child))
            elif isinstance(value, list):
                step += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        found = step
    return found


def addressee(body: dict[str, Any]) -> Any:
    """Whom a send body addresses: `to` (a phone number), else `recipient` (a BSUID or parent
    BSUID); given both, Meta follows `to`. BSUID docs, "Messages API":
    https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
    """
    return body.get("to") if "to" in body else body.get("recipient")


def validate(body: Any) -> None:
    """Raise Invalid wherever Meta would refuse this send body."""
    _require(isinstance(body, dict), "The request body must be a JSON object")
    _require(body.get("messaging_product") == "whatsapp", "messaging_product must be whatsapp")
    _validate_addressee(body)
    kind = body.get("type", "text")  # Meta treats an absent type as text
    _require(
        isinstance(kind, str) and (kind in RULES or kind == "interactive"),
        f"Param type {kind!r} is not supported",
    )
    item = body.get(kind)
    _require(
        isinstance(item, list if kind == "contacts" else dict) and item,
        f"Param {kind} is required for type {kind}",
    )
    if kind == "interactive":  # other kinds (product, flow...) pass unchecked
        _require(
            item.get("type") and isinstance(item.get("action"), dict),
            "Param interactive['type'] and interactive['action'] are required",
        )
    _validate_rules(kind, item)
    _validate_kind(kind, item)


def _validate_addressee(body: dict[str, Any]) -> None:
    _require(
        isinstance(addressee(body), str) and addressee(body),
        "Param to is required (or recipient, a business-scoped user id)",
    )
    # "The recipient_type field now supports group as well as individual. The to field now
    # supports the group ID" (Group messaging, "Send group message"):
    # https://developers.facebook.com/documentation/business-messaging/whatsapp/groups/groups-messaging/
    recipient_type = body.get("recipient_type", "individual")
    _require(
        recipient_type in ("individual", "group"),
        f"Param recipient_type must be individual or group, not {recipient_type!r}",
    )
    if recipient_type == "group":
        _require("to" in body, "Param to is required: the group ID, for recipient_type group")
        _require(
            not BSUID.fullmatch(body["to"]) and not body["to"].lstrip("+").isdigit(),
            "Param to must be a group ID for recipient_type group",
        )
    if "to" not in body:
        _require(
            BSUID.fullmatch(body["recipient"]),
            "Param recipient must be a business-scoped user id (e.g. US.13491208655302741918)",
        )


def _validate_rules(kind: str, item: Any) -> None:
    """The lengths and presence RULES lists for this kind of message."""
    rules = RULES.get(f"interactive.{item['type']}" if kind == "interactive" else kind, ())
    for path, limit, required in rules:
        for where, value in _lookup(item, path):
            where = kind + where
            if value is _MISSING or value is None:
                _require(not required, f"Param {where} is required")
            elif limit == 0:
                _require(isinstance(value, int | float), f"Param {where} must be a number")
            else:
                unit = "items" if isinstance(value, list) else "characters"
                _require(
                    isinstance(value, str | list) and 1 <= len(value) <= limit,
                    f"Param {where} must have 1 to {limit} {unit}",
                )


def _validate_kind(kind: str, item: Any) -> None:
    """What a kind of message needs beyond RULES."""
    if kind in ("image", "video", "audio", "document", "sticker"):
        _require(("id" in item) != ("link" in item), f"Param {kind} needs exactly one of id, link")
        _require(
            kind not in ("audio", "sticker") or "caption" not in item,
            f"Param {kind}['caption'] is not supported for {kind}",
        )
    elif kind == "contacts":  # formatted_name alone is not enough for Meta
        parts = ("first_name", "last_name", "middle_name", "suffix", "prefix")
        _require(
            all(any(c["name"].get(p) for p in parts) for c in item),
            "Param contacts[]['name'] needs one of " + ", ".join(parts),
        )
    elif kind == "reaction":
        _require(isinstance(item.get("emoji"), str), "Param reaction['emoji'] is required")
    elif kind == "interactive":
        _validate_interactive(item)


def _validate_interactive(item: dict[str, Any]) -> None:
    kind = item["type"]
    if kind in ACTION_NAMES:
        wanted = ACTION_NAMES[kind]
        _require(
            item["action"].get("name") == wanted,
            f"Param interactive['action']['name'] must be {wanted}",
        )
    if "header" in item and kind in HEADERS:
        _validate_header(item["header"], HEADERS[kind])
    if kind == "list":
        rows = _lookup(item, "action.sections[].rows[]")
        _require(len(rows) <= 10, "A list message may have at most 10 rows in all sections")
        ids = [v for _, v in _lookup(item, "action.sections[].rows[].id")]
        _require(len(set(ids)) == len(ids), "Row ids must be unique")
    elif kind == "carousel":
        _validate_carousel(item)
    elif kind == "button":
        kinds = {v for _, v in _lookup(item, "action.buttons[].type")}
        _require(
            kinds <= {"reply"}, "Param interactive['action']['buttons'][]['type'] must be reply"
        )
        titles = [v for _, v in _lookup(item, "action.buttons[].reply.title")]
        _require(len(set(titles)) == len(titles), "Button titles must be unique")
        ids = [v for _, v in _lookup(item, "action.buttons[].reply.id")]
        _require(len(set(ids)) == len(ids), "Button ids must be unique")


def _validate_carousel(item: dict[str, Any]) -> None:
    """The media carousel's rules: 2-10 cards in index order, each an image or video header of
    one kind for all, a body of at most 2 line breaks, and either one URL button or quick-reply
    buttons, of the same types and number on every card. No main header, footer or buttons."""
    _require(not {"header", "footer"} & item.keys(), "A carousel has no main header or footer")
    cards = item["action"]["cards"]
    _require(len(cards) >= 2, "Param interactive['action']['cards'] needs 2 to 10 cards")
    _require(
        [c.get("card_index") for c in cards] == list(range(len(cards))),
        "Param card_index must number the cards from 0",
    )
    header_kinds: set[Any] = set()
    shapes: set[tuple[Any, ...]] = set()
    for card in cards:
        header = card.get("header")
        _validate_header(header, frozenset({"image", "video"}))
        header_kinds.add(header["type"])
        _require(
            str((card.get("body") or {}).get("text", "")).count("\n") <= 2,
            "Card body text may have up to 2 line breaks",
        )
        action = card.get("action")
        _require(isinstance(action, dict), "Param card action is required")
        if card.get("type") == "cta_url":
            _require(action.get("name") == "cta_url", "A cta_url card needs action name cta_url")
            parameters = action.get("parameters") or {}
            _require(
                parameters.get("display_text") and parameters.get("url"),
                "A cta_url card needs display_text and url",
            )
            shapes.add(("cta_url",))
            continue
        buttons = action.get("buttons")
        _require(
            isinstance(buttons, list) and buttons,
            "A card needs one URL button or quick-reply buttons",
        )
        _require(
            all(b.get("type") == "quick_reply" for b in buttons),
            "Card buttons must be quick_reply",
        )
        _require(
            all(b.get("quick_reply", {}).get("id") for b in buttons),
            "A quick-reply button needs an id and a title",
        )
        titles = [b["quick_reply"].get("title") for b in buttons]
        _require(all(titles), "A quick-reply button needs an id and a title")
        _require(len(set(titles)) == len(titles), "Button titles must be unique")
        shapes.add(("quick_reply",) * len(buttons))
    _require(len(header_kinds) == 1, "Every card needs the same header type")
    _require(len(shapes) == 1, "Button types and numbers must match across all cards")


def _validate_header(header: Any, allowed: frozenset[str]) -> None:
    _require(isinstance(header, dict), "Param interactive['header'] must be an object")
    kind = header.get("type")
    _require(kind in allowed, f"Param interactive['header']['type'] {kind!r} is not supported here")
    if kind == "text":
        text = header.get("text")
        _require(
            isinstance(text, str) and 1 <= len(text) <= 60,
            "Param interactive['header']['text'] must have 1 to 60 characters",
        )
        return
    media = header.get(kind)
    _require(
        isinstance(media, dict) and ("id" in media) != ("link" in media),
        f"Param interactive['header']['{kind}'] needs exactly one of id, link",
    )


def _choices(kind: str, action: dict[str, Any]) -> list[dict[str, Any]]:
    """The choices an interactive message of this kind offered: a carousel's quick replies,
    the buttons' replies, or a list's rows."""
    if kind == "carousel":
        return [
            b.get("quick_reply") or {}
            for card in action.get("cards") or []
            for b in (card.get("action") or {}).get("buttons") or []
        ]
    if kind == "button":
        return [b.get("reply") or {} for b in action.get("buttons") or []]
    return [r for s in action.get("sections") or [] for r in s.get("rows") or []]


class WhatsAppSimulator(SimulatorServer):
    """One business phone number on a fake graph.facebook.com, posting webhooks like Meta."""

    def __init__(
        self,
        *,
        phone_number_id: str,
        display_phone_number: str,
        access_token: str,
        app_secret: str,
        webhook_url: str | None = None,
        auto_statuses: tuple[str, ...] = ("sent", "delivered", "read"),
        status_delay: float = 0.05,
        waba_id: str = "102290129340398",
        webhook_attempts: int = 4,
        retry_backoff: float = 0.05,
    ) -> None:
        super().__init__()
        self.phone_number_id, self.display_phone_number = phone_number_id, display_phone_number
        self.access_token, self.app_secret, self.waba_id = access_token, app_secret, waba_id
        self.webhook_url, self.auto_statuses = webhook_url, auto_statuses
        self.status_delay, self.webhook_attempts = status_delay, webhook_attempts
        self.retry_backoff = retry_backoff  # doubled after each failed webhook attempt
        self.sent: list[dict[str, Any]] = []  # accepted sends: {"wamid": .., "body": request body}
        self.requests: list[RecordedRequest] = []  # every send request, accepted or not
        self._failures: list[_Failure] = []

    @property
    def base_url(self) -> str:
        """What a channel's `api_base_url` should be, e.g. http://127.0.0.1:PORT/v21.0."""
        return f"{self._url}/{GRAPH_VERSION}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{phone_number_id}/messages", self._send)
        app.router.add_get("/_sim/sent", self._list_sent)
        app.router.add_post("/_sim/inbound", self._inbound)

    def fail_next(
        self,
        code: int,
        *,
        http_status: int = 400,
        count: int = 1,
        title: str | None = None,
        details: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `count` valid sends with Graph error `code` (titles from ERRORS)."""
        self._failures.append(_Failure(code, http_status, title, details, retry_after, count))

    # --- the send API ----------------------------------------------------------------
    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        self.requests.append(RecordedRequest(request.method, request.path_qs, headers, raw))
        if request.headers.get("Authorization", "") != f"Bearer {self.access_token}":
            # Token errors are plain Graph errors: no "(#190)" prefix, no error_data.
            reason = "Invalid OAuth access token - Cannot parse access token"
            error = {
                "message": reason,
                "type": "OAuthException",
                "code": 190,
                "fbtrace_id": _trace_id(),
            }
            challenge = f'OAuth "Facebook Platform" "invalid_token" "{reason}"'
            return web.json_response(
                {"error": error}, status=401, headers={"WWW-Authenticate": challenge}
            )
        number = request.match_info["phone_number_id"]
        if number != self.phone_number_id:  # Graph's answer for any unknown node id
            body = graph_error(
                100,
                f"Unsupported post request. Object with ID '{number}' "
                "does not exist, cannot be loaded due to missing permissions, "
                "or does not support this operation",
            )
            body["error"].update(type="GraphMethodException", error_subcode=33)
            return web.json_response(body, status=400)
        try:
            payload = json.loads(raw)
            if isinstance(payload, dict) and payload.get("status") == "read":  # mark as read
                _require(payload.get("message_id"), "Param message_id is required")
                return web.json_response({"success": True})
            validate(payload)
        except (ValueError, Invalid) as exc:
            return web.json_response(graph_error(100, details=str(exc)), status=400)
        if self._failures:
            return self._fail()
        to = addressee(payload)
        wamid = new_wamid(to)
        self.sent.append({"wamid": wamid, "body": payload})
        self._report_send(self.sent[-1])
        if self.webhook_url and self.auto_statuses:
            self._spawn(self._post_statuses(wamid, payload))
        message: dict[str, str] = {"id": wamid}
        if payload.get("type") == "template":  # only template sends carry message_status
            message["message_status"] = "accepted"
        # A send to a BSUID answers with the user's user_id and no wa_id (BSUID docs).
        contact = (
            {"input": to, "wa_id": "".join(c for c in to if c.isdigit())}
            if "to" in payload
            else {"input": to, "user_id": to}
        )
        answer: dict[str, Any] = {"messaging_product": "whatsapp", "messages": [message]}
        if payload.get("recipient_type") != "group":  # a group has no wa_id to report
            answer["contacts"] = [contact]
        return web.json_response(answer)

    def _fail(self) -> web.Response:
        rule = self._failures[0]
        rule.left -= 1
        if rule.left <= 0:
            self._failures.pop(0)
        headers = {}
        if rule.retry_after is not None:  # Meta sets it on throttling answers (429)
            headers["Retry-After"] = f"{rule.retry_after:g}"
        body = graph_error(rule.code, rule.title, rule.details)
        return web.json_response(body, status=rule.http_status, headers=headers)

    # --- webhooks --------------------------------------------------------------------
    def webhook_payload(
        self,
        *,
        messages: list[dict[str, Any]] | None = None,
        statuses: list[dict[str, Any]] | None = None,
        contacts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The envelope Meta wraps every `messages`-field notification in."""
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.display_phone_number,
                "phone_number_id": self.phone_number_id,
            },
        }
        for key, items in (("contacts", contacts), ("messages", messages), ("statuses", statuses)):
            if items:
                value[key] = items
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }

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

    async def send_inbound_text(
        self, from_wa_id: str, text: str, *, name: str = "Test User"
    ) -> str:
        """A user's text message, delivered like Meta delivers it; returns its wamid."""
        return await self.send_inbound(
            {"type": "text", "text": {"body": text}}, from_wa_id=from_wa_id, name=name
        )

    async def send_inbound_button_reply(
        self, from_wa_id: str, button_id: str, title: str | None = None, *, name: str = "Test User"
    ) -> str:
        """The user taps reply button `button_id` of the latest message that offered it.

        Meta's webhook quotes the tapped message in `context` and carries the button's id and
        title; returns the new wamid. ValueError when no such button was sent to the user.
        """
        wamid, found = self._offered(from_wa_id, "button", button_id)
        reply = {"id": button_id, "title": title or found["title"]}
        return await self.send_inbound(
            {
                "context": {"from": self.display_phone_number, "id": wamid},
                "type": "interactive",
                "interactive": {"type": "button_reply", "button_reply": reply},
            },
            from_wa_id=from_wa_id,
            name=name,
        )

    async def send_inbound_list_reply(
        self, from_wa_id: str, row_id: str, *, name: str = "Test User"
    ) -> str:
        """The user picks row `row_id` of the latest list that offered it; returns the wamid."""
        wamid, row = self._offered(from_wa_id, "list", row_id)
        reply = {k: row[k] for k in ("id", "title", "description") if k in row}
        return await self.send_inbound(
            {
                "context": {"from": self.display_phone_number, "id": wamid},
                "type": "interactive",
                "interactive": {"type": "list_reply", "list_reply": reply},
            },
            from_wa_id=from_wa_id,
            name=name,
        )

    def _offered(self, to: str, kind: str, choice_id: str) -> tuple[str, dict[str, Any]]:
        """(wamid, button reply or list row) of the latest send to `to` offering `choice_id`."""
        for sent in reversed(self.sent):
            body = sent["body"]
            interactive = body.get("interactive") or {}
            sent_kind = interactive.get("type")
            # A carousel card's quick-reply tap comes back as a button reply, like a button's.
            offered_as = {kind, "carousel"} if kind == "button" else {kind}
            if addressee(body) != to or sent_kind not in offered_as:
                continue
            for choice in _choices(sent_kind, interactive.get("action") or {}):
                if choice.get("id") == choice_id:
                    return str(sent["wamid"]), choice
        raise ValueError(f"no {kind} message offering {choice_id!r} was sent to {to}")

    async def send_inbound(
        self, message: dict[str, Any], *, from_wa_id: str, name: str = "Test User"
    ) -> str:
        """Deliver a user's `messages[]` item (with retries); returns its wamid.

        A `from_wa_id` that is a BSUID stands for a user who hides their number behind a
        username: Meta then sends `from_user_id` and `contacts[].user_id` with no `from` and
        no `wa_id` (BSUID docs, "Incoming messages webhooks")."""
        if BSUID.fullmatch(from_wa_id):
            sender = {"from_user_id": from_wa_id}
            contact: dict[str, Any] = {"profile": {"name": name}, "user_id": from_wa_id}
        else:
            sender = {"from": from_wa_id}
            contact = {"profile": {"name": name}, "wa_id": from_wa_id}
        item = {
            **sender,
            "id": new_wamid(from_wa_id, inbound=True),
            "timestamp": str(int(time.time())),
        } | message
        await self._deliver(self.webhook_payload(messages=[item], contacts=[contact]))
        return str(item["id"])

    async def _deliver(self, payload: dict[str, Any]) -> None:
        # Meta retries non-2xx and unreachable callbacks with backoff (for up to 7 days).
        await self._post_with_retries(payload, lambda: self.post_webhook(payload))

    async def _post_statuses(self, wamid: str, body: dict[str, Any]) -> None:
        # https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components#statuses-object
        # Before v24.0 `conversation` and `pricing` ride on "sent" and the first of delivered/read.
        billed = {"sent", next((s for s in self.auto_statuses if s in ("delivered", "read")), "")}
        template = body.get("type") == "template"
        category = "utility" if template else "service"
        conversation_id = secrets.token_hex(16)
        for state in self.auto_statuses:
            await asyncio.sleep(self.status_delay)
            now = int(time.time())
            status: dict[str, Any] = {"id": wamid, "status": state, "timestamp": str(now)}
            if body.get("recipient_type") == "group":  # Group messaging: "Group message sent"
                status["recipient_id"] = body["to"]
                status["recipient_type"] = "group"
            elif "to" in body:
                status["recipient_id"] = body["to"].lstrip("+")
            else:  # sent to a BSUID: Meta names the user by recipient_user_id (BSUID docs)
                status["recipient_user_id"] = body["recipient"]
            if "biz_opaque_callback_data" in body:
                status["biz_opaque_callback_data"] = body["biz_opaque_callback_data"]
            if state in billed:
                conversation: dict[str, Any] = {"id": conversation_id}
                if state == "sent":
                    conversation["expiration_timestamp"] = str(now + 86400)
                status["conversation"] = conversation | {"origin": {"type": category}}
                # Per-message pricing (July 2025): replies in the service window are free.
                status["pricing"] = {
                    "billable": template,
                    "pricing_model": "PMP",
                    "type": "regular" if template else "free_customer_service",
                    "category": category,
                }
            if state == "failed":
                title, details = ERRORS[131026]
                status["errors"] = [
                    {
                        "code": 131026,
                        "title": title,
                        "message": title,
                        "error_data": {"details": details},
                        "href": ERRORS_HREF,
                    }
                ]
            await self._deliver(self.webhook_payload(statuses=[status]))

    # --- control endpoints for humans and other processes ----------------------------
    async def _list_sent(self, _request: web.Request) -> web.Response:
        return web.json_response(self.sent)

    async def _inbound(self, request: web.Request) -> web.Response:
        """`{"from": wa_id, "text" | "button_id" | "row_id": ..., "name"?: ...}` → the user's
        message, a tap on a reply button or a pick from a list we sent, as a webhook."""
        expected = 'expected {"from": .., and one of "text", "button_id", "row_id": ..}'
        try:
            data = await request.json()
            sender, name = str(data["from"]), str(data.get("name", "Test User"))
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": expected}, status=400)
        try:
            if "button_id" in data:
                button = str(data["button_id"])
                wamid = await self.send_inbound_button_reply(sender, button, name=name)
            elif "row_id" in data:
                wamid = await self.send_inbound_list_reply(sender, str(data["row_id"]), name=name)
            elif "text" in data:
                wamid = await self.send_inbound_text(sender, str(data["text"]), name=name)
            else:
                return web.json_response({"error": expected}, status=400)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response({"id": wamid})
