"""The contract every channel adapter fulfils.

An adapter is mostly data (limits, URLs) plus pure functions: `verify` and `parse` for the
inbound side, `render` and `read_send_response` for the outbound side. It never does I/O:
the gateway's ingress, store and transport do that around it.
"""

from __future__ import annotations

import abc
import builtins
import email.utils
import hashlib
import hmac
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from gateway import json_codec
from gateway.downgrade.profile import (
    ButtonsProfile,
    CarouselProfile,
    ListProfile,
    Profile,
    QuickRepliesProfile,
)
from gateway.schema import Content, EventDraft

if TYPE_CHECKING:
    import httpx

ErrorCategory = Literal["retry", "permanent", "unreachable"]

if TYPE_CHECKING:  # adapters do no I/O of their own: the client is handed in
    import httpx


class _Narrowing(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _upper_limits(feature: type) -> frozenset[str]:
    return frozenset(
        f.name for f in fields(feature) if f.name.startswith("max_") or f.name.endswith("_max")
    )


# What `buttons: {...}` and the like may lower: upper limits only. Lowering a minimum (a
# carousel's min_cards) or switching a rule off would widen what the channel is sent.
_LOWERABLE = {
    "buttons": _upper_limits(ButtonsProfile),
    "quick_replies": _upper_limits(QuickRepliesProfile),
    "list": _upper_limits(ListProfile),
    "carousel": _upper_limits(CarouselProfile),
}


class CapabilityOverrides(_Narrowing):
    """Narrow what one channel instance uses (`carousel: false`, `buttons: {max_actions: 2}`).

    Overrides only ever turn features off or lower limits; a profile is never widened.
    """

    text_max: int | None = Field(default=None, gt=0)
    media: builtins.list[Literal["image", "video", "audio", "file", "sticker"]] | None = None
    location: bool | None = None
    contacts: bool | None = None
    location_request: bool | None = None
    templates: bool | None = None
    buttons: Literal[False] | dict[str, int] | None = None
    quick_replies: Literal[False] | dict[str, int] | None = None
    list: Literal[False] | dict[str, int] | None = None
    carousel: Literal[False] | dict[str, int] | None = None

    @field_validator("buttons", "quick_replies", "list", "carousel")
    @classmethod
    def _only_upper_limits(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dict):
            lowerable = _LOWERABLE[info.field_name or ""]
            for name, limit in value.items():
                if name not in lowerable:
                    can = ", ".join(sorted(lowerable))
                    raise ValueError(f"{name!r} cannot be narrowed; these limits can: {can}")
                if limit < 1:
                    raise ValueError(f"{name} must be at least 1 (turn the feature off with false)")
        return value


class ChannelConfig(BaseModel):
    """Settings every channel instance has; adapters subclass it with their credentials."""

    model_config = ConfigDict(extra="forbid")

    # The field a provider's shared webhooks name this instance by, when one app's callback
    # serves several (Graph: the phone number id, the Page id): two instances may not share it.
    routed_by: ClassVar[str | None] = None

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    type: str
    api_base_url: str
    rate_limit_per_second: float = Field(default=50.0, gt=0)
    capabilities: CapabilityOverrides | None = None
    # Template names approved for this channel at its provider (WhatsApp: Business Manager):
    # a broadcast's `options.template` for this channel must name one of them (docs/broadcasts.md).
    templates: builtins.list[str] = []


class InboundRequest(NamedTuple):
    """A webhook request exactly as received; `public_url` is the URL the provider called,
    query string included (Twilio signs it whole), so the query is not kept apart: parsing
    it costs a few microseconds of every acknowledgement, and no provider signs it alone.

    A tuple, not a frozen dataclass: every webhook builds one on the acknowledgement path, and
    a frozen dataclass's __init__ costs several times a tuple's.
    """

    method: str
    public_url: str
    headers: Mapping[str, str]
    body: bytes


class Admission(NamedTuple):
    """What ingress reads of a request before storing it: its dedupe key, and when the provider
    dated it (epoch seconds of its newest event; None where the provider dates nothing)."""

    key: str
    dated: float | None = None


@dataclass(frozen=True)
class ParsedEvent:
    draft: EventDraft
    dedupe_key: str


class FailedPart(NamedTuple):
    """One part of a batched webhook (an entry, a message, a status) the adapter could not
    read: its JSON path in the body, why (naming the field at fault), and the part as received.
    The other parts' events are stored; this one waits, failed and replayable (docs/operations.md).
    """

    path: str
    reason: str
    part: Any


@dataclass
class Reading:
    """What an adapter reads in one webhook body: the events of every readable part, and the
    parts it could not read."""

    events: list[ParsedEvent]
    failed: list[FailedPart]

    def all_events(self) -> list[ParsedEvent]:
        """The events, or PayloadError naming the first unreadable part (what `parse` says)."""
        if self.failed:
            raise PayloadError(self.failed[0].reason)
        return self.events


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class ProviderRequest(NamedTuple):
    """One HTTP call to a provider's send API, relative to the channel's `api_base_url`.

    `note` goes into the message history when the send succeeds (e.g. SMS segment counts);
    `uses_reply_token` tells the dispatcher to spend the recipient's single-use reply token.
    Immutable; a tuple rather than a frozen dataclass because every send builds one or more
    (a third of the cost); change one with `_replace`.
    """

    method: str
    path: str
    json: dict[str, Any] | None = None
    form: dict[str, Any] | None = None
    headers: Mapping[str, str] = _NO_HEADERS
    note: str | None = None
    uses_reply_token: bool = False
    # Units of the channel's rate limit this request uses (SMS: its segments).
    cost: int = 1


@dataclass(frozen=True)
class SendContext:
    """What the gateway knows about one send beyond its content, so rendering stays pure.

    Times are epoch seconds. `reply_token` is the recipient's latest unused reply token (LINE)
    and `reply_token_at` when its webhook arrived; `status_callback_url` is this channel's
    public webhook URL, for providers that take a per-message status callback (Twilio).
    """

    message_id: str
    recipient_id: str
    now: float
    last_inbound_at: float | None = None
    reply_token: str | None = None
    reply_token_at: float | None = None
    messaging_tag: str | None = None
    status_callback_url: str | None = None


class Sender(Protocol):
    """Sends one provider request itself, for channels whose official SDK must do the I/O."""

    async def send(self, request: ProviderRequest) -> str:
        """The provider's id for the accepted request, or raise SendError (classified)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Reply:
    status: int
    body: str = ""
    content_type: str = "text/plain"


_OK = Reply(200, "OK")  # frozen: one answer shared by every acknowledged webhook


@dataclass(frozen=True)
class OptIn:
    """An inbound event that shows a user can be messaged again: it clears their opt-out.

    Every channel's `subscription` events count as well (gateway/consent.py): `unsubscribed`
    is the lasting opt-out, `subscribed` its end. A send error sets one only when the adapter
    marks it `unsubscribed` (the provider says the user opted out, e.g. Twilio 21610).
    """

    event: str  # an event type, or the kind of a `system` event
    when: tuple[str, Any] | None = None  # a channel_data field and the value it must have


# The user wrote to the business: on most channels nothing else shows so plainly that they
# want its messages (a channel that differs declares its own, with the provider's doc).
USER_ACTIVITY = (OptIn("message"), OptIn("postback"), OptIn("reaction"))


class SendError(Exception):
    """A provider refused a send; `category` decides whether the outbox tries again."""

    def __init__(
        self,
        category: ErrorCategory,
        code: str,
        title: str,
        *,
        retry_after: float | None = None,
        unsubscribed: bool = False,
    ) -> None:
        super().__init__(f"{code}: {title}")
        self.category = category
        self.code = code
        self.title = title
        self.retry_after = retry_after
        # The provider says the recipient opted out (Twilio 21610: they sent STOP). Remembered
        # until they opt in again, and later sends fail fast. Not for "cannot be reached now"
        # (Viber 5/6 for a user who has not subscribed yet): that fails one send, no more.
        self.unsubscribed = unsubscribed

    @property
    def retryable(self) -> bool:
        return self.category == "retry"

    def redacted(self, redact: Callable[[str], str]) -> SendError:
        """The same error with `redact` applied to its texts: a provider's may quote the
        request it refused, an access token included."""
        return SendError(
            self.category,
            redact(self.code),
            redact(self.title),
            retry_after=self.retry_after,
            unsubscribed=self.unsubscribed,
        )


class PayloadError(ValueError):
    """A webhook body the adapter cannot read (it stays in the inbox, marked failed)."""


# --- helpers several adapters share -----------------------------------------------------


# How deep a webhook body's JSON may nest. The deepest documented payloads nest about ten
# levels (a Messenger echo of a generic template: entry[].messaging[].message.attachments[]
# .payload.elements[].buttons[]); none of the providers states a limit. Far deeper bodies only
# come from a fuzzer or an attacker, and would exhaust the stack of whatever reads them
# recursively (a RecursionError) or pydantic's serialiser (about 250 levels) in an event.
MAX_JSON_DEPTH = 64


def json_object(body: bytes) -> dict[str, Any]:
    """A webhook body that must be a JSON object; PayloadError otherwise.

    Every JSON channel reads its body here, so what no channel can read is refused (or
    repaired) once: text that is not UTF-8 and nesting past MAX_JSON_DEPTH are refused; a
    lone surrogate (`"\\ud83d"`: an emoji cut in half) becomes U+FFFD, as a UTF-8 decoder
    treats bytes it cannot read, so the message is delivered and every event can be
    encoded for a backend."""
    try:
        payload = json_codec.loads_bounded(body, MAX_JSON_DEPTH)
    except UnicodeDecodeError as exc:
        raise PayloadError(f"malformed JSON: {not_utf8(exc)}") from None
    except ValueError as exc:
        raise PayloadError(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("webhook body is not a JSON object")
    return payload


def not_utf8(exc: UnicodeDecodeError) -> str:
    """What is wrong with a body that is not UTF-8, said plainly: the first byte at fault."""
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"


def epoch_seconds(value: int | float) -> datetime:
    """A provider's Unix time in seconds; PayloadError when no date can hold it (datetime
    raises ValueError, OverflowError or, past the C library's range, OSError)."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        raise PayloadError(f"timestamp {value!r} is out of range") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_millis(value: int | float) -> datetime:
    """A provider's Unix time in milliseconds, kept to the millisecond without float error."""
    try:
        # One exact timedelta from the epoch: half the cost of fromtimestamp plus the rest.
        return _EPOCH + timedelta(milliseconds=value)
    except (ValueError, OverflowError, OSError):
        raise PayloadError(f"timestamp {value!r} is out of range") from None


def answer_json(body: bytes) -> dict[str, Any]:
    """A provider's answer to a call as a JSON object: {} when it is empty, not JSON (a proxy's
    HTML error page, say) or not an object, so callers read fields without checking again."""
    try:
        payload = json_codec.loads(body) if body else {}
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def provider_id(value: Any) -> str | None:
    """An id a provider answered a send with, if it is one: a non-empty string or an integer.
    Anything else (null, true, an object) is no id, and must not become "None" or "True"."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def signatures_match(provided: str, expected: str) -> bool:
    """Compare a signature header with the expected one in constant time.

    `provided` is whatever the client sent: aiohttp hands over header bytes that are not
    UTF-8 as surrogate escapes, which a plain `.encode()` refuses with an exception (a 500 for
    a forged request). Encoded back to the bytes received, they simply do not match."""
    return hmac.compare_digest(provided.encode("utf-8", "surrogateescape"), expected.encode())


def newest_time(
    values: Iterable[Any], per_second: int = 1, seconds: Callable[[float], float] | None = None
) -> float | None:
    """The newest of a request's event times in epoch seconds, from values in `1/per_second`
    units (numbers, or digit strings as Graph sends them), or read by `seconds` where a provider
    mixes units; None when it has none. Values that are neither are the parser's business, not
    ingress's."""
    times = []
    for value in values:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            times.append(seconds(value) if seconds is not None else value / per_second)
    return max(times) if times else None


def request_key(keys: list[str], body: bytes) -> str:
    """One request's dedupe key from its events' keys: the key itself when there is one event,
    else a hash of them all (order-free, so a re-serialised redelivery keeps it)."""
    if len(keys) == 1:
        return keys[0]
    return "sha256:" + hashlib.sha256("\n".join(sorted(keys)).encode() or body).hexdigest()


# The longest pause a Retry-After may impose on a channel (and on a message's next attempt);
# past it, our own backoff decides. A header of "1e309" once paused a channel for ever.
MAX_RETRY_AFTER_SECONDS = 3600.0


def unanswered(exc: httpx.HTTPError, provider: str) -> SendError:
    """The retryable SendError for an exchange that got no answer (httpx's errors), for the
    gateway's own sends and an SDK's alike."""
    import httpx  # here, not at the top: adapters do no I/O, the gateway's client does

    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return SendError(
            "retry", "connect_error", f"cannot reach {provider} ({type(exc).__name__})"
        )
    if isinstance(exc, httpx.TimeoutException):
        # The provider may have accepted it: at-least-once means we may send twice.
        return SendError("retry", "timeout", f"{provider} did not answer in time")
    return SendError("retry", "http_error", type(exc).__name__)


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (any case): delay-seconds or an HTTP-date
    (RFC 9110 §10.2.3), clamped to 0..MAX_RETRY_AFTER_SECONDS; None when absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": a date without a known zone, taken as UTC
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):  # "nan", "inf", "1e309"
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True)
class AddressForm:
    """What a recipient id on a channel looks like, which the API checks before it queues a
    message: one the provider would refuse fails at once (422), not at the provider later."""

    pattern: str  # a regular expression the whole id must match
    expected: str  # the form in words, for the error: "an E.164 number such as +14155550100"
    doc: str  # the provider's page that defines it

    def accepts(self, address: str) -> bool:
        return re.fullmatch(self.pattern, address) is not None  # compiled once, by re's cache


class Adapter(abc.ABC):
    type: ClassVar[str]
    config_model: ClassVar[builtins.type[ChannelConfig]]
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    signature_header: ClassVar[str]
    # Where a provider that signs in the query string puts it (WeChat); None: the header.
    signature_query: ClassVar[str | None] = None
    # The largest webhook body the provider sends, with margin: anything larger is refused 413
    # before it is read whole, parsed or signed (server.max_body_bytes still caps it). Each
    # adapter sets its own beside the provider doc that sizes it.
    max_body_bytes: ClassVar[int] = 1024 * 1024
    # Form-encoded webhooks only: the most parameters one carries. Refused 413 past it, before
    # the signature check, which reads and sorts every parameter.
    max_form_fields: ClassVar[int | None] = None
    # What the channel shows natively; the downgrade engine hands `render` nothing else.
    # An adapter that declares nothing is sent plain text only.
    capabilities: ClassVar[Profile | None] = None
    # What clears a user's opt-out besides a `subscription` event (see OptIn).
    opt_ins: ClassVar[tuple[OptIn, ...]] = USER_ACTIVITY
    # The recipient ids the provider sends to; None accepts any id.
    address: ClassVar[AddressForm | None] = None
    # Whether the provider reports `delivered`: a failover on a delivery timeout
    # (routing.delivery_timeout_seconds) waits only on channels that do.
    reports_delivery: ClassVar[bool] = True

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        overrides = config.capabilities.model_dump(exclude_none=True) if config.capabilities else {}
        declared = self.capabilities or Profile(channel=self.type, text_max=1000)
        self.profile = declared.narrowed(overrides)

    def link_siblings(self, adapters: list[Adapter]) -> None:  # noqa: B027 - optional hook
        """See the other configured instances (providers that share one webhook across them)."""

    # --- inbound -------------------------------------------------------------------
    def handshake(self, query: Mapping[str, str]) -> Reply | None:
        """Answer a provider's GET verification; None when the channel has none."""
        return None

    @abc.abstractmethod
    def verify(self, request: InboundRequest) -> bool:
        """True when the request carries a valid provider signature (constant-time)."""

    @abc.abstractmethod
    def dedupe_key(self, body: bytes) -> str:
        """A key that is equal for redeliveries of the same request; PayloadError if unreadable."""

    def admission(self, body: bytes) -> Admission:
        """The dedupe key and the provider's date of one request, from one read of it (the
        acknowledgement path); PayloadError if unreadable. Providers that date their events
        override it, so ingress can refuse a replay older than its acceptance window."""
        return Admission(self.dedupe_key(body))

    @abc.abstractmethod
    def parse(self, body: bytes) -> list[ParsedEvent]:
        """Pure: the events in one raw request body."""

    def parse_received(self, body: bytes, received_at: datetime) -> list[ParsedEvent]:
        """`parse`, for a request that arrived at `received_at` (what the normaliser calls).

        Providers whose payloads carry no time of their own (Twilio) stamp events with it, so a
        replay days later still says when the message came in.
        """
        return self.parse(body)

    def read(
        self, body: bytes, received_at: datetime | None, only: frozenset[str] | None = None
    ) -> Reading:
        """The events of every readable part of `body`, and the parts that failed alone
        (what the normaliser calls); PayloadError when the body as a whole cannot be read.

        `only` names the JSON paths of parts that failed before (a replay): just those are
        read again. A channel whose webhooks carry one event each needs nothing more than
        `parse`; one that batches overrides this with `adapters.webhook_parts.PartReader`.
        `received_at` None: not known (`gateway normalize`), as `parse` reads.
        """
        if received_at is None:
            return Reading(self.parse(body), [])
        return Reading(self.parse_received(body, received_at), [])

    def acknowledge(self, body: bytes) -> Reply:
        """The answer to a stored webhook (Twilio wants TwiML, most want a plain 200)."""
        return _OK

    # --- outbound ------------------------------------------------------------------
    @abc.abstractmethod
    def render(self, content: Content, context: SendContext) -> list[ProviderRequest]:
        """Pure: the provider requests that deliver `content`, already within limits.

        Raises SendError when the send must not be attempted (e.g. a closed 24-hour window).
        """

    def render_parts(self, parts: list[Content], context: SendContext) -> list[ProviderRequest]:
        """Pure: the requests for every part the engine planned, in order.

        One request per part's rendering by default; a channel that carries several messages
        in one request (LINE: `messages_per_request`) overrides it to group parts together.
        """
        return [r for part in parts for r in self.render(part, context)]

    def make_sender(self, client: httpx.AsyncClient) -> Sender | None:
        """A sender of its own (an official SDK client doing its I/O through `client`, the
        gateway's HTTP client, or a token to fetch first); None to have the gateway send the
        rendered requests."""
        return None

    def webhook_registration(self, url: str) -> ProviderRequest | None:
        """The provider call that points its webhooks at `url` (`gateway channels register`)."""
        return None

    def read_registration_response(self, status: int, body: bytes) -> str:
        """A one-line summary of the provider's answer to `webhook_registration`; SendError if refused."""
        if 200 <= status < 300:
            return f"HTTP {status}"
        raise SendError("permanent", str(status), body.decode("utf-8", "replace")[:500])

    @abc.abstractmethod
    def auth_headers(self) -> dict[str, str]: ...

    @abc.abstractmethod
    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        """The provider's id for an accepted send, or raise SendError (classified)."""

    @abc.abstractmethod
    def secrets(self) -> list[str]:
        """Every secret value of this instance, so logs can redact them."""
