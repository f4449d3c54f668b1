"""Twilio Programmable Messaging on loopback: the Messages API, its errors and signed webhooks.

Send API:  https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
Inbound:   https://www.twilio.com/docs/messaging/guides/webhook-request
Callbacks: https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
Signing:   https://www.twilio.com/docs/usage/webhooks/webhooks-security

Like Twilio, it remembers who replied STOP to its number and answers 21610 to sends to them
until they reply START. Behind a proxy the gateway's public URL differs from where it listens:
`public_url` is what requests are signed for, `webhook_url` where they are delivered, and a
status callback to the public origin goes to the webhook's origin.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import structlog
from aiohttp import ClientError, web
from twilio.request_validator import RequestValidator

from adapters.sms import HELP, OPT_IN, OPT_OUT
from adapters.sms.segments import segments
from gateway.simulator.server import RecordedRequest, SimulatorServer

log = structlog.get_logger(__name__)

API_VERSION = "2010-04-01"
MAX_BODY = 1600
MAX_MEDIA = 10
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

# Messages per code as Twilio words them: https://www.twilio.com/docs/api/errors/<code>
ERRORS: dict[int, str] = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio"
    " phone number for this destination/account.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21623: "Number of media files exceeds allowed limit",
    21701: "The Messaging Service Sid {service} is invalid.",  # [UNVERIFIED code]
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30007: "Message filtered",
}


@dataclass
class _Failure:
    code: int
    http_status: int
    message: str | None
    retry_after: float | None
    left: int


@dataclass
class _Outcome:
    state: str
    error_code: int
    left: int


def twilio_error(code: int, http_status: int = 400, message: str | None = None) -> dict[str, Any]:
    """The REST API's error body."""
    return {
        "code": code,
        "message": message or ERRORS.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": http_status,
    }


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def sign(auth_token: str, url: str, params: dict[str, list[str]] | dict[str, str]) -> str:
    """X-Twilio-Signature for a form POST to `url`, computed by the SDK exactly as Twilio does."""
    multi = _Multi({k: v if isinstance(v, list) else [v] for k, v in params.items()})
    return str(RequestValidator(auth_token).compute_signature(url, multi))


class _Multi(dict[str, list[str]]):
    def getall(self, name: str) -> list[str]:
        return self[name]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class TwilioSimulator(SimulatorServer):
    """One Twilio account with one number (optionally in a Messaging Service)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        phone_number: str,
        messaging_service_sid: str | None = None,
        webhook_url: str | None = None,
        public_url: str | None = None,
        auto_statuses: tuple[str, ...] = ("sent", "delivered"),
        status_delay: float = 0.05,
        advanced_opt_out: bool = False,
        statuses_before_answer: bool = False,
    ) -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.phone_number, self.messaging_service_sid = phone_number, messaging_service_sid
        self.webhook_url, self.public_url = webhook_url, public_url
        # No callback is sent for the initial status (queued/accepted): Twilio's guide above.
        self.auto_statuses, self.status_delay = auto_statuses, status_delay
        self.advanced_opt_out = advanced_opt_out  # adds OptOutType to keyword messages
        # Callbacks are asynchronous to the API's answer, which a slow network can hold up
        # past them: when set, each send's callbacks are delivered (and acknowledged) first.
        self.statuses_before_answer = statuses_before_answer
        self.sent: list[dict[str, Any]] = []  # accepted sends: {"sid", "params", "response"}
        self.requests: list[RecordedRequest] = []  # every send request, accepted or not
        self.callbacks: list[dict[str, Any]] = []  # status callbacks: {"url", "params", "status"}
        self.webhooks: list[dict[str, Any]] = []  # inbound deliveries with the gateway's answer
        self.opted_out: set[str] = set()
        self._failures: list[_Failure] = []
        self._outcomes: list[_Outcome] = []

    @property
    def base_url(self) -> str:
        """What a channel's `api_base_url` should be (in place of https://api.twilio.com)."""
        return self._url

    @property
    def messages_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def routes(self, app: web.Application) -> None:
        app.router.add_post(f"/{API_VERSION}/Accounts/{{sid}}/Messages.json", self._send)
        app.router.add_get("/_sim/sent", self._list_sent)
        app.router.add_post("/_sim/inbound", self._inbound)

    def fail_next(
        self,
        code: int,
        *,
        http_status: int = 400,
        count: int = 1,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `count` valid sends with Twilio error `code`."""
        self._failures.append(_Failure(code, http_status, message, retry_after, count))

    def fail_delivery_next(
        self, error_code: int, *, state: str = "undelivered", count: int = 1
    ) -> None:
        """Accept the next `count` sends, then report `state` with ErrorCode in the callbacks."""
        self._outcomes.append(_Outcome(state, error_code, count))

    # --- the Messages API ------------------------------------------------------------
    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path_qs, dict(request.headers), raw)
        )
        if not self._authorised(request):
            return web.json_response(
                twilio_error(20003, 401),
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        params = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        problem = self._invalid(params)
        if problem is not None:
            return web.json_response(twilio_error(*problem), status=400)
        to = params["To"][0]
        if to in self.opted_out:
            return web.json_response(twilio_error(21610), status=400)
        if self._failures:
            return self._fail()
        body = params.get("Body", [""])[0]
        media = params.get("MediaUrl", [])
        sid = new_sid("MM" if media else "SM")
        sender = params.get("From", [self.phone_number])[0]
        service = params.get("MessagingServiceSid", [None])[0]
        now = format_datetime(datetime.now(UTC))
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender if "From" in params else None,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": "1" if media else str(segments(body).count),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # With only a Messaging Service, Twilio has yet to pick the sender.
            "status": "queued" if "From" in params else "accepted",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        self.sent.append({"sid": sid, "params": params, "response": resource})
        self._report_send(self.sent[-1])
        callback = params.get("StatusCallback", [None])[0]
        if callback:
            posting = self._post_statuses(callback, sid, to, sender, service)
            if self.statuses_before_answer:
                await posting
            else:
                self._spawn(posting)
        return web.json_response(resource, status=201)

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = request.headers.get("Authorization", "")
        return request.match_info["sid"] == self.account_sid and hmac.compare_digest(
            given.encode(), f"Basic {expected}".encode()
        )

    def _invalid(self, params: dict[str, list[str]]) -> tuple[int, int, str] | None:
        """(code, HTTP status, message) for the first rule the send breaks, as Twilio checks."""
        to = params.get("To", [""])[0]
        if not to:
            return 21604, 400, ERRORS[21604]
        if not E164.match(to):
            return 21211, 400, ERRORS[21211].format(to=to)
        sender = params.get("From", [None])[0]
        service = params.get("MessagingServiceSid", [None])[0]
        if not sender and not service:
            return 21603, 400, ERRORS[21603]
        if sender and sender != self.phone_number:
            return 21606, 400, ERRORS[21606].format(from_=sender)
        if service and service != self.messaging_service_sid:
            return 21701, 400, ERRORS[21701].format(service=service)
        body = params.get("Body", [""])[0]
        media = params.get("MediaUrl", [])
        if not body and not media:
            return 21602, 400, ERRORS[21602]
        if len(body) > MAX_BODY:
            return 21617, 400, ERRORS[21617]
        if len(media) > MAX_MEDIA:
            return 21623, 400, ERRORS[21623]
        return None

    def _fail(self) -> web.Response:
        rule = self._failures[0]
        rule.left -= 1
        if rule.left <= 0:
            self._failures.pop(0)
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = f"{rule.retry_after:g}"
        body = twilio_error(rule.code, rule.http_status, rule.message)
        return web.json_response(body, status=rule.http_status, headers=headers)

    # --- webhooks --------------------------------------------------------------------
    def _delivery_url(self, url: str) -> str:
        """Where a request for public `url` really goes (the proxy in front of the gateway)."""
        if self.public_url and self.webhook_url:
            public, actual = _origin(self.public_url), _origin(self.webhook_url)
            if url.startswith(public):
                return actual + url[len(public) :]
        return url

    async def post_form(
        self, url: str, params: dict[str, list[str]], *, signed_url: str | None = None
    ) -> tuple[int, str, str]:
        """POST a signed form once: (status, content type, body) of the answer."""
        if self._session is None:
            raise RuntimeError("start the simulator first")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(self.auth_token, signed_url or url, params),
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        }
        data = urlencode(params, doseq=True)
        async with self._session.post(url, data=data, headers=headers) as response:
            return response.status, response.content_type, await response.text()

    async def _deliver(self, url: str, params: dict[str, list[str]]) -> int:
        # Twilio does not replay on an HTTP error; it retries a failed connection once (rc=1).
        # https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides
        for attempt in range(2):
            try:
                return (await self.post_form(self._delivery_url(url), params, signed_url=url))[0]
            except (ClientError, TimeoutError) as exc:
                log.info("simulator.webhook_retry", attempt=attempt + 1, reason=repr(exc))
        return 0

    async def send_inbound(
        self,
        from_number: str,
        body: str = "",
        *,
        media: Sequence[tuple[str, str]] = (),
        extra: dict[str, str] | None = None,
    ) -> str:
        """A user's SMS (or MMS with `media` as (url, content type)) to our number; its sid."""
        if not self.webhook_url:
            raise RuntimeError("send_inbound needs a webhook_url")
        sid = new_sid("MM" if media else "SM")
        params: dict[str, str] = {
            "ToCountry": "US",
            "ToState": "CA",
            "SmsMessageSid": sid,
            "NumMedia": str(len(media)),
            "ToCity": "",
            "FromZip": "94105",
            "SmsSid": sid,
            "FromState": "CA",
            "SmsStatus": "received",
            "FromCity": "SAN FRANCISCO",
            "Body": body,
            "FromCountry": "US",
            "To": self.phone_number,
            "ToZip": "",
            "NumSegments": str(segments(body).count),
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_number,
            "ApiVersion": API_VERSION,
        }
        for index, (url, content_type) in enumerate(media):
            params[f"MediaUrl{index}"] = url
            params[f"MediaContentType{index}"] = content_type
        if self.messaging_service_sid:
            params["MessagingServiceSid"] = self.messaging_service_sid
        keyword = body.strip().upper()
        if keyword in OPT_OUT:
            self.opted_out.add(from_number)
        elif keyword in OPT_IN:
            self.opted_out.discard(from_number)
        if self.advanced_opt_out and self.messaging_service_sid:
            kinds = (("STOP", OPT_OUT), ("START", OPT_IN), ("HELP", HELP))
            kind = next((name for name, words in kinds if keyword in words), None)
            if kind:
                params["OptOutType"] = kind
        params |= extra or {}
        form = {k: [v] for k, v in params.items()}
        signed = self.public_url or self.webhook_url
        try:
            status, content_type, text = await self.post_form(
                self.webhook_url, form, signed_url=signed
            )
        except (ClientError, TimeoutError) as exc:
            status, content_type, text = 0, "", repr(exc)
        self.webhooks.append(
            {"params": params, "status": status, "content_type": content_type, "body": text}
        )
        return sid

    async def report_foreign_send(self, to: str) -> str:
        """A message sent on this number from elsewhere (the console, another tool) whose
        statuses reach the webhook URL, as a Messaging Service's status callback does; its sid."""
        if not self.webhook_url:
            raise RuntimeError("report_foreign_send needs a webhook_url")
        sid = new_sid("SM")
        signed = self.public_url or self.webhook_url
        await self._post_statuses(signed, sid, to, self.phone_number, self.messaging_service_sid)
        return sid

    async def _post_statuses(
        self, url: str, sid: str, to: str, sender: str, service: str | None
    ) -> None:
        outcome = self._next_outcome()
        states = list(self.auto_statuses)
        if outcome is not None:
            states = [s for s in states if s not in ("delivered", "read")] + [outcome.state]
        for state in states:
            await asyncio.sleep(self.status_delay)
            params = {
                "SmsSid": sid,
                "SmsStatus": state,
                "MessageStatus": state,
                "To": to,
                "MessageSid": sid,
                "AccountSid": self.account_sid,
                "From": sender,
                "ApiVersion": API_VERSION,
            }
            if service:
                params["MessagingServiceSid"] = service
            if outcome is not None and state == outcome.state:
                params["ErrorCode"] = str(outcome.error_code)
            if state in ("delivered", "undelivered"):
                params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
            form = {k: [v] for k, v in params.items()}
            status = await self._deliver(url, form)
            self.callbacks.append({"url": url, "params": params, "status": status})

    def _next_outcome(self) -> _Outcome | None:
        if not self._outcomes:
            return None
        outcome = self._outcomes[0]
        outcome.left -= 1
        if outcome.left <= 0:
            self._outcomes.pop(0)
        return outcome

    # --- control endpoints for humans and other processes ----------------------------
    async def _list_sent(self, _request: web.Request) -> web.Response:
        return web.json_response([{"sid": s["sid"], "params": s["params"]} for s in self.sent])

    async def _inbound(self, request: web.Request) -> web.Response:
        """`{"from": "+1…", "body": …, "media"?: [[url, type], …]}` → the user's message."""
        try:
            data = await request.json()
            sender, body = str(data["from"]), str(data.get("body", ""))
            media = [(str(url), str(kind)) for url, kind in data.get("media", [])]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"from": .., "body": ..}'}, status=400)
        sid = await self.send_inbound(sender, body, media=media)
        return web.json_response({"sid": sid})
