"""SMS and MMS through Twilio Programmable Messaging.

Inbound:  https://www.twilio.com/docs/messaging/guides/webhook-request
Statuses: https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
Security: https://www.twilio.com/docs/usage/webhooks/webhooks-security
Send API: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
Errors:   https://www.twilio.com/docs/api/errors

Webhooks are form-encoded, one message or status per request, signed over the public URL
and the sorted parameters. Sends go through the official SDK (`adapters.sms.sender`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from twilio.request_validator import RequestValidator

from adapters.base import (
    Adapter,
    AddressForm,
    ChannelConfig,
    ErrorCategory,
    InboundRequest,
    OptIn,
    ParsedEvent,
    PayloadError,
    ProviderRequest,
    Reply,
    SendContext,
    Sender,
    SendError,
    answer_json,
    not_utf8,
    provider_id,
    retry_after_seconds,
)
from adapters.payload_errors import describe
from adapters.sms.payloads import InboundMessage, StatusCallback, Webhook, fields
from adapters.sms.segments import segments

if TYPE_CHECKING:
    import httpx
from gateway.downgrade.plain_text import action_line, numbered, to_text
from gateway.downgrade.profile import Profile
from gateway.downgrade.split_text import split_text
from gateway.schema import (
    ChannelRef,
    EventDraft,
    EventError,
    MessageBody,
    Party,
    Status,
    Subscription,
    Unsupported,
)
from gateway.schema.content import (
    AudioContent,
    FileContent,
    ImageContent,
    Media,
    StickerContent,
    TextContent,
    VideoContent,
    is_media,
)
from gateway.schema.content import Content as AnyContent

API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM = "application/x-www-form-urlencoded"
# Twilio wants TwiML back; an empty <Response> sends no reply.
# https://www.twilio.com/docs/messaging/twiml#twilios-request-to-your-application
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

# Body: up to 1,600 characters (Message resource, `Body`). Counted here in UTF-16 code units,
# which is never fewer than characters.
MAX_BODY = 1600
# Up to 10 media and 5 MB in all per message: https://www.twilio.com/docs/messaging/api/media-resource
MAX_MEDIA = 10
MAX_MEDIA_BYTES = 5 * 1024 * 1024

# What an SMS/MMS shows: text, and one media per MMS with the caption as its body. Buttons,
# lists and cards become numbered text; a location is a maps link. Accepted media types:
# https://www.twilio.com/docs/messaging/guides/accepted-mime-types
CAPABILITIES = Profile(
    channel="sms",
    text_max=MAX_BODY,
    caption_max=MAX_BODY,
    media=frozenset({"image", "video", "audio", "file"}),
    notes={
        "media": "MMS reaches US and Canadian numbers; elsewhere Twilio sends a link instead",
        "segments": "billed per segment: 160 GSM-7 or 70 UCS-2 characters, 153 or 67 per part",
        "sticker": "no MMS sticker: sent as a link",
    },
)

# Default opt-out/opt-in/help keywords, matched on the whole message, trimmed, any case.
# https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out
# With Advanced Opt-Out, Twilio also sends OptOutType=STOP|START|HELP:
# https://help.twilio.com/articles/31560110671259
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
HELP = frozenset({"HELP", "INFO"})
_OPT_OUT_TYPES: dict[str, Literal["subscribed", "unsubscribed", "help"]] = {
    "STOP": "unsubscribed",
    "START": "subscribed",
    "HELP": "help",
}
# Only an opt-in keyword (START…) ends a STOP: Twilio "will no longer send messages ... until
# the sender opts back in by sending an opt-in keyword", whatever else they write (21610).
# https://www.twilio.com/docs/proxy/opt-out-keywords
# https://help.twilio.com/articles/223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-
OPT_INS: tuple[OptIn, ...] = ()

# MessageStatus → our delivery state. `sending` is still inside Twilio; `undelivered` and
# `canceled` never reach the handset. https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
STATES: dict[str, Literal["queued", "sent", "delivered", "read", "failed"]] = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}

# Error classes, from the providers reference §3.4 and https://www.twilio.com/docs/api/errors/<code>
UNSUBSCRIBED = 21610  # the recipient replied STOP: nothing reaches them until START
RETRY_CODES = frozenset({20429, 20500, 20503, 30001, 30003, 30008})
UNREACHABLE_CODES = frozenset({UNSUBSCRIBED, 21211, 21612, 21614, 30004, 30005, 30006})
ERROR_TITLES = {
    20003: "Authentication failed",
    20429: "Too many requests",
    21211: "Invalid 'To' phone number",
    21408: "Permission to send an SMS has not been enabled for the region",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30034: "Message from an unregistered number",
}

# Inbound parameters kept in channel_data (where the sender is, which service it reached).
_KEPT = ("FromCity", "FromState", "FromZip", "FromCountry", "MessagingServiceSid", "NumSegments")
E164 = r"^\+[1-9][0-9]{1,14}$"

# An inbound SMS/MMS or status callback: about 20-40 parameters (providers.md §3.1), `Body` at
# most 1,600 characters (percent-encoded UTF-8: 9 bytes a character at worst, 14.4 kB) and up
# to 10 MediaUrl/MediaContentType pairs (MMS), WhatsApp-through-Twilio extras besides:
# https://www.twilio.com/docs/messaging/guides/webhook-request
# Well under 20 kB and 70 parameters; the caps leave three times that. A forged 1 MB form
# used to cost half a second of the event loop before its signature failed.
MAX_WEBHOOK_BYTES = 64 * 1024
MAX_WEBHOOK_FIELDS = 200

if TYPE_CHECKING:  # adapters do no I/O of their own: the client is handed in
    import httpx


class SmsConfig(ChannelConfig):
    type: Literal["sms"]
    api_base_url: str = "https://api.twilio.com"
    # A US/CA long code sends 1 segment per second; Twilio queues anything faster (toll-free 3,
    # short code 100): https://www.twilio.com/help/faq/twilio-basics/what-are-the-limits-on-outbound-calls-and-sms-messages-per-second
    rate_limit_per_second: float = Field(default=1.0, gt=0)
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    from_number: str | None = Field(default=None, pattern=E164)
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")

    @model_validator(mode="after")
    def _one_sender(self) -> SmsConfig:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of from_number or messaging_service_sid")
        return self


class FormParams(dict[str, list[str]]):
    """Form parameters with every value of repeated keys, readable by RequestValidator."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str:
        values = self.get(name)
        return values[0] if values else ""


W = TypeVar("W", bound=Webhook)


def read_form(body: bytes) -> FormParams:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"malformed form body: {not_utf8(exc)}") from None
    # What urllib's parse_qs(text, keep_blank_values=True, strict_parsing=True) reads, without
    # its layers of calls (a fifth of a webhook's parse): every pair must have its "=", and a
    # repeated name keeps all its values, so the model can name it.
    params = FormParams()
    if not text:
        return params
    for pair in text.split("&"):
        name, equals, value = pair.partition("=")
        if not equals:
            raise PayloadError(f"malformed form body: bad query field: {pair!r}")
        params.setdefault(_unescaped(name), []).append(_unescaped(value))
    return params


def _unescaped(text: str) -> str:
    """A form-encoded name or value as text: "+" is a space, %XX a byte of UTF-8 (one that is
    not UTF-8 becomes U+FFFD, as parse_qs reads it)."""
    if "%" in text or "+" in text:
        return unquote(text.replace("+", " "))
    return text


def error_category(code: int | None, http_status: int = 400) -> ErrorCategory:
    if code in RETRY_CODES or http_status == 429 or http_status >= 500:
        return "retry"
    if code in UNREACHABLE_CODES:
        return "unreachable"
    return "permanent"


def send_error(
    http_status: int, code: int | None, message: str, retry_after: float | None = None
) -> SendError:
    """A classified SendError for a Twilio REST error (`code` None when the body had none)."""
    return SendError(
        error_category(code, http_status),
        str(code or http_status),
        message or ERROR_TITLES.get(code or 0, f"HTTP {http_status}"),
        retry_after=retry_after,
        unsubscribed=code == UNSUBSCRIBED,
    )


def request_key(params: FormParams) -> str:
    """`MessageSid` for a message, `MessageSid:MessageStatus` for a status callback."""
    sid = params.first("MessageSid") or params.first("SmsSid")
    if not sid:
        raise PayloadError("not a Twilio messaging webhook (no MessageSid)")
    status = params.first("MessageStatus")
    return f"{sid}:{status}" if status else sid


def _read(model: type[W], params: FormParams) -> W:
    """The form read into its model; PayloadError naming the parameter at fault."""
    try:
        return model.model_validate(fields(params))
    except ValidationError as exc:
        raise PayloadError(f"invalid payload: {describe(exc)}") from None


def _media(form: InboundMessage) -> list[tuple[str, str]]:
    media = []
    for index, url, mime in form.media():
        if not url:
            raise PayloadError(
                f"invalid payload: MediaUrl{index}: missing (NumMedia is {form.NumMedia})"
            )
        media.append((url, mime or ""))
    return media


def _party(number: str) -> Party:
    return Party(id=number, phone=number if number.startswith("+") else None)


def _keyed(events: list[EventDraft], key: str) -> list[ParsedEvent]:
    # One webhook, several events: the first keeps the request's key, the rest get /1, /2 …
    return [ParsedEvent(e, key if i == 0 else f"{key}/{i}") for i, e in enumerate(events)]


def _media_content(url: str, mime: str, caption: str | None) -> AnyContent:
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    media = Media(url=url, mime_type=mime or None, provider_media_id=name or None)
    kind = mime.split("/", 1)[0]
    if kind == "image":
        return ImageContent(media=media, caption=caption)
    if kind == "video":
        return VideoContent(media=media, caption=caption)
    if kind == "audio":
        return AudioContent(media=media, caption=caption)
    # vCards (text/vcard) and documents stay files: reading them needs a download.
    return FileContent(media=media, caption=caption)


def _media_url(media: Media) -> str:
    """The URL Twilio fetches the media from, within Twilio's size limit."""
    if not media.url:
        raise SendError(
            "permanent",
            "media_url_required",
            "Twilio fetches media from a public URL; this media has only a provider id",
        )
    if media.size is not None and media.size > MAX_MEDIA_BYTES:
        raise SendError(
            "permanent", "media_too_large", f"MMS media may be {MAX_MEDIA_BYTES} bytes at most"
        )
    return media.url


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class SmsAdapter(Adapter):
    type = "sms"
    config_model = SmsConfig
    content_types = (FORM,)
    signature_header = SIGNATURE_HEADER
    max_body_bytes = MAX_WEBHOOK_BYTES
    max_form_fields = MAX_WEBHOOK_FIELDS
    capabilities = CAPABILITIES
    opt_ins = OPT_INS
    address = AddressForm(
        E164,
        "an E.164 phone number: + and up to 15 digits, such as +14155550100",
        "https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource",
    )
    config: SmsConfig

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        # Twilio's webhooks carry no time of their own: events are stamped when parsed.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # --- inbound -------------------------------------------------------------------
    def verify(self, request: InboundRequest) -> bool:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            return False
        try:
            params = read_form(request.body)
        except PayloadError:
            return False
        # The SDK signs the public URL (with and without its default port) and every value of
        # every parameter, sorted, and compares without early exit.
        validator = RequestValidator(self.config.auth_token.get_secret_value())
        return bool(validator.validate(request.public_url, params, signature))

    def dedupe_key(self, body: bytes) -> str:
        return request_key(read_form(body))

    def parse(self, body: bytes) -> list[ParsedEvent]:
        return self.parse_received(body, self.clock())

    def parse_received(self, body: bytes, received_at: datetime) -> list[ParsedEvent]:
        # Twilio's webhooks carry no timestamp: an event happened when its request arrived.
        params = read_form(body)
        key = request_key(params)
        if params.first("MessageStatus"):
            return _keyed(self._status(_read(StatusCallback, params), received_at), key)
        return _keyed(self._message(_read(InboundMessage, params), received_at), key)

    def acknowledge(self, body: bytes) -> Reply:
        return Reply(200, TWIML_EMPTY, "text/xml")

    def _channel(self) -> ChannelRef:
        return ChannelRef(id=self.config.id, type=self.type)

    def _message(self, form: InboundMessage, at: datetime) -> list[EventDraft]:
        sid, text = form.sid, form.Body
        extras = {k: v for k in _KEPT if isinstance(v := getattr(form, k), str) and v}
        common: dict[str, Any] = {
            "channel": self._channel(),
            "timestamp": at,
            "sender": _party(form.From),
            "recipient": _party(form.To),
            "channel_data": extras or None,
        }
        media = _media(form)
        events: list[EventDraft] = []
        subscription = self._subscription(text, form.OptOutType)
        if subscription is not None:
            events.append(
                EventDraft(
                    type="subscription", external_id=sid, subscription=subscription, **common
                )
            )
            caption = None  # the keyword was the whole text
        else:
            caption = text or None
        for index, (url, mime) in enumerate(media):
            content = _media_content(url, mime, caption if index == 0 else None)
            external_id = sid if not events else f"{sid}/{len(events)}"
            events.append(
                EventDraft(
                    type="message",
                    external_id=external_id,
                    message=MessageBody(content=content),
                    **common,
                )
            )
        if events:
            return events
        if text:
            content = TextContent(text=text)
            return [
                EventDraft(
                    type="message", external_id=sid, message=MessageBody(content=content), **common
                )
            ]
        return [
            EventDraft(
                type="unsupported",
                external_id=sid,
                unsupported=Unsupported(
                    provider_type="empty", reason="message without text or media"
                ),
                **common,
            )
        ]

    @staticmethod
    def _subscription(text: str, opt_out_type: str) -> Subscription | None:
        word = text.strip().upper()
        state = _OPT_OUT_TYPES.get(opt_out_type.strip().upper())
        if state is None:
            if word in OPT_OUT:
                state = "unsubscribed"
            elif word in OPT_IN:
                state = "subscribed"
            elif word in HELP:
                state = "help"
            else:
                return None
        return Subscription(state=state, keyword=word or opt_out_type.upper())

    def _status(self, form: StatusCallback, at: datetime) -> list[EventDraft]:
        sid, provider_state = form.sid, form.MessageStatus
        user = _party(form.To)
        common: dict[str, Any] = {
            "channel": self._channel(),
            "external_id": sid,
            "timestamp": at,
            "sender": _party(form.From),
            "recipient": user,
        }
        state = STATES.get(provider_state)
        if state is None:
            unsupported = Unsupported(
                provider_type=f"status:{provider_state}",
                reason=f"status {provider_state!r} is not tracked",
            )
            return [EventDraft(type="unsupported", unsupported=unsupported, **common)]
        code = form.ErrorCode or ""
        error = None
        if code and code != "0":
            number = int(code) if code.isdigit() else None
            error = EventError(
                code=code,
                title=form.ErrorMessage or ERROR_TITLES.get(number or 0),
                retryable=error_category(number) == "retry",
            )
        status = Status(external_id=sid, state=state, error=error)
        events = [EventDraft(type="status", status=status, **common)]
        if code == str(UNSUBSCRIBED):
            # Twilio refused it because the user had opted out: remember it like their STOP.
            events.append(
                EventDraft(
                    type="subscription",
                    channel=common["channel"],
                    external_id=sid,
                    timestamp=common["timestamp"],
                    sender=user,
                    recipient=common["sender"],
                    subscription=Subscription(state="unsubscribed"),
                    channel_data={"ErrorCode": code},
                )
            )
        return events

    # --- outbound ------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Basic {self._basic()}"}

    def _basic(self) -> str:
        pair = f"{self.config.account_sid}:{self.config.auth_token.get_secret_value()}"
        return base64.b64encode(pair.encode()).decode()

    def make_sender(self, client: httpx.AsyncClient) -> Sender:
        from adapters.sms.sender import TwilioSender

        return TwilioSender(self.config, client=client)

    def _base(self, context: SendContext) -> dict[str, Any]:
        """The form fields every message to this recipient carries."""
        base: dict[str, Any] = {"To": context.recipient_id}
        if self.config.messaging_service_sid:
            base["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            base["From"] = self.config.from_number
        if context.status_callback_url:
            base["StatusCallback"] = context.status_callback_url
        return base

    @property
    def _path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.config.account_sid}/Messages.json"

    def render(self, content: AnyContent, context: SendContext) -> list[ProviderRequest]:
        base, path = self._base(context), self._path
        if is_media(content):
            return self._mms(path, base, content)
        text = (
            content.text
            if isinstance(content, TextContent) and not content.quick_replies
            else to_text(content)
        )
        return self._texts(path, base, text)

    def render_parts(self, parts: list[AnyContent], context: SendContext) -> list[ProviderRequest]:
        """Uncaptioned media ride along with the text after them: one MMS, up to 10 media.

        A carousel on SMS is its pictures and its numbered text; sent together they arrive as
        one message instead of one MMS per picture.
        """
        requests: list[ProviderRequest] = []
        pending: list[str] = []  # media URLs waiting for the next text

        def flush() -> None:
            if pending:
                form = {**self._base(context), "MediaUrl": list(pending)}
                note = f"MMS with {len(pending)} media"
                requests.append(ProviderRequest("POST", self._path, form=form, note=note))
                pending.clear()

        for part in parts:
            if is_media(part) and not part.caption and not part.quick_replies:
                # Nothing to say but the picture: only its URL is needed (checked as _mms does).
                if len(pending) == MAX_MEDIA:
                    flush()
                pending.append(_media_url(part.media))
                continue
            rendered = self.render(part, context)
            first = rendered[0] if rendered else None
            if pending and first is not None and first.form and "MediaUrl" not in first.form:
                form = {**first.form, "MediaUrl": list(pending)}
                note = f"MMS with {len(pending)} media; {first.note}"
                rendered[0] = first._replace(form=form, note=note)
                pending.clear()
            flush()
            requests += rendered
        flush()
        return requests

    def _texts(self, path: str, base: dict[str, Any], text: str) -> list[ProviderRequest]:
        # Twilio's throughput is counted in segments, not requests (providers.md §3.4): each
        # request costs its segments in the channel's rate limit.
        requests = []
        for chunk in split_text(text, MAX_BODY, _utf16_units):
            parts = segments(chunk)
            form = {**base, "Body": chunk}
            requests.append(
                ProviderRequest("POST", path, form=form, note=parts.describe(), cost=parts.count)
            )
        return requests

    def _mms(
        self,
        path: str,
        base: dict[str, Any],
        content: ImageContent | VideoContent | AudioContent | FileContent | StickerContent,
    ) -> list[ProviderRequest]:
        url = _media_url(content.media)
        lines = [content.caption] if content.caption else []
        lines += numbered([action_line(a) for a in content.quick_replies])
        caption = "\n".join(lines)
        form = {**base, "MediaUrl": [url]}
        if caption and _utf16_units(caption) <= MAX_BODY:
            form["Body"] = caption
            caption = ""
        mms = ProviderRequest("POST", path, form=form, note="MMS with 1 media")
        return [mms, *(self._texts(path, base, caption) if caption else [])]

    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        payload = answer_json(body)
        if 200 <= status < 300:
            sid = provider_id(payload.get("sid"))
            if sid:
                return sid
            raise SendError("retry", str(status), "accepted without a message sid")
        code = payload.get("code")
        raise send_error(
            status,
            code if isinstance(code, int) else None,
            str(payload.get("message") or ""),
            retry_after_seconds(headers),
        )

    def secrets(self) -> list[str]:
        return [self.config.auth_token.get_secret_value(), self._basic()]


ADAPTER = SmsAdapter
