"""The web channel: the platform's own web and mobile apps, over a WebSocket to the gateway.

There is no provider: the gateway is the server. `render` puts each planned part in a frame
for the user's durable log; the sender (`make_sender`) appends it to the log and pushes it to
the user's connected devices (gateway/http/websocket.py); `parse` reads what the gateway stored
from a verified connection (adapters/web/frames.py) into the same events as every channel.
Protocol, close codes and limits: docs/web-channel.md.

Everything in the schema is shown natively, forms included (answered whole, in one
`form_response`), so the capability profile is as wide as the schema's own bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field, SecretStr, ValidationError, field_validator

from adapters.base import (
    Adapter,
    AddressForm,
    Admission,
    ChannelConfig,
    InboundRequest,
    OptIn,
    ParsedEvent,
    PayloadError,
    ProviderRequest,
    SendContext,
    Sender,
    SendError,
)
from adapters.web.frames import (
    FormResponseFrame,
    InboundBody,
    MessageFrame,
    PostbackFrame,
    TypingFrame,
)
from gateway.downgrade.profile import (
    ButtonsProfile,
    CarouselProfile,
    ListProfile,
    Profile,
    QuickRepliesProfile,
)
from gateway.schema import ChannelRef, EventDraft, MessageBody, Party, Postback, Status, System
from gateway.schema.content import Content as AnyContent
from gateway.schema.content import FormResponseContent
from gateway.schema.events import EventError
from gateway.schema.limits import (
    MAX_CARD_ACTIONS,
    MAX_CARDS,
    MAX_CHOICES,
    MAX_LABEL,
    MAX_PAYLOAD,
    MAX_ROWS,
    MAX_SECTIONS,
    MAX_TEXT,
)

if TYPE_CHECKING:
    import httpx

# The path of the one "request" a part becomes: the user's log, not a provider URL.
LOG_PATH = "/log"
# Every action kind the example page shows natively (docs/web-channel.md, "Frames").
ALL_KINDS = frozenset({"reply", "postback", "link", "call", "location_request", "buy", "share"})

CAPABILITIES = Profile(
    channel="web",
    # The schema's own bounds: nothing is cut or split that the schema accepts.
    text_max=MAX_TEXT,
    payload_max=MAX_PAYLOAD,
    caption_max=MAX_TEXT,
    media=frozenset({"image", "video", "audio", "file", "sticker"}),
    location=True,
    contacts=True,
    buttons=ButtonsProfile(
        max_actions=MAX_CHOICES,
        label_max=MAX_LABEL,
        text_max=MAX_TEXT,
        kinds=ALL_KINDS,
        header_max=MAX_LABEL,
        footer_max=MAX_LABEL,
        media=True,
    ),
    quick_replies=QuickRepliesProfile(max_items=MAX_CHOICES, label_max=MAX_LABEL, kinds=ALL_KINDS),
    location_request=True,
    list=ListProfile(
        max_rows=MAX_ROWS,
        max_sections=MAX_SECTIONS,
        row_title_max=MAX_LABEL,
        row_description_max=MAX_LABEL,
        section_title_max=MAX_LABEL,
        button_max=MAX_LABEL,
        text_max=MAX_TEXT,
        header_max=MAX_LABEL,
        footer_max=MAX_LABEL,
    ),
    carousel=CarouselProfile(
        max_cards=MAX_CARDS,
        title_max=MAX_LABEL,
        description_max=MAX_LABEL,
        max_actions=MAX_CARD_ACTIONS,
        label_max=MAX_LABEL,
        kinds=ALL_KINDS,
        text_max=MAX_TEXT,
        text_required=False,
    ),
    forms=True,
    notes={"web": "the platform's own app: every content type is shown natively"},
)


class WebConfig(ChannelConfig):
    type: Literal["web"]
    api_base_url: str = ""  # no provider: the gateway serves the socket itself
    # Writing a frame to a local socket costs microseconds: the dispatcher's pace is not the
    # limit a provider's API is.
    rate_limit_per_second: float = Field(default=5000.0, gt=0)
    token_secret: SecretStr = Field(description="HMAC key of the channel's user tokens")
    token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    # A message no device has acknowledged this long after it was sent is `failed`
    # (error `offline_timeout`), so failover can try the user's next channel.
    offline_wait_seconds: float = Field(default=300.0, gt=0)
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    frames_per_second: float = Field(default=20.0, gt=0)  # per connection, a burst of 2 s
    max_connections_per_user: int = Field(default=5, ge=1, le=100)
    # Seconds a new connection has to send its `auth` frame.
    auth_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("token_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        # HMAC-SHA256 keys shorter than its 32-byte output weaken it.
        if len(value.get_secret_value()) < 32:
            raise ValueError("token_secret must be at least 32 characters")
        return value


class WebOutbox(Protocol):
    """Where a web send goes: the user's durable log and their sockets (the gateway's)."""

    async def deliver(self, channel_id: str, request: ProviderRequest) -> str:
        """Append one part to the recipient's log and push it; its external id."""
        ...


class _WebSender:
    def __init__(self, outbox: WebOutbox | None, channel_id: str) -> None:
        self.outbox = outbox
        self.channel_id = channel_id

    async def send(self, request: ProviderRequest) -> str:
        if self.outbox is None:
            raise SendError("retry", "web_not_ready", "the web channel's sockets are not served")
        return await self.outbox.deliver(self.channel_id, request)

    async def aclose(self) -> None:
        return None


class WebAdapter(Adapter):
    type = "web"
    config_model = WebConfig
    # Webhooks never reach this channel: nothing is posted to /webhooks/<id> that could be
    # trusted, so the header is one no request carries and every such request is refused 401.
    signature_header = "X-Web-Channel-Has-No-Webhooks"
    capabilities = CAPABILITIES
    # The user opened the app and wrote: nothing else opts a web user in or out.
    opt_ins = (OptIn("message"), OptIn("postback"))
    # A user id as the platform names its users (the token carries the same).
    address = AddressForm(
        r"[A-Za-z0-9_.:@-]{1,128}",
        "1 to 128 letters, digits or _ . : @ -",
        "docs/web-channel.md",
    )

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        assert isinstance(config, WebConfig)
        self.web_config = config
        self.outbox: WebOutbox | None = None  # set by the gateway that serves the sockets

    # --- inbound: what the gateway stored from a verified connection ---------------------
    def verify(self, request: InboundRequest) -> bool:
        return False

    def dedupe_key(self, body: bytes) -> str:
        return _read(body).dedupe_key()

    def admission(self, body: bytes) -> Admission:
        stored = _read(body)
        return Admission(stored.dedupe_key(), stored.at)

    def parse(self, body: bytes) -> list[ParsedEvent]:
        stored = _read(body)
        return [ParsedEvent(self._draft(stored), stored.dedupe_key())]

    def _draft(self, stored: InboundBody) -> EventDraft:
        channel = ChannelRef(id=self.config.id, type=self.type)
        when = datetime.fromtimestamp(stored.at, UTC)
        user = Party(id=stored.user)
        note = stored.status
        if note is not None:
            error = None
            if note.error_code is not None:
                error = EventError(code=note.error_code, title=note.error_title)
            status = Status(
                message_id=None, external_id=note.external_id, state=note.state, error=error
            )
            return EventDraft(
                type="status",
                channel=channel,
                external_id=note.external_id,
                timestamp=when,
                recipient=user,
                status=status,
            )
        frame = stored.frame
        common: dict[str, Any] = {"channel": channel, "timestamp": when, "sender": user}
        if isinstance(frame, TypingFrame):
            return EventDraft(
                type="system", system=System(kind="typing", text=frame.state), **common
            )
        if isinstance(frame, PostbackFrame):
            postback = Postback(payload=frame.payload, title=frame.title, reply_to=frame.reply_to)
            return EventDraft(type="postback", external_id=frame.id, postback=postback, **common)
        if isinstance(frame, FormResponseFrame):
            content: AnyContent = FormResponseContent(form_id=frame.form_id, values=frame.values)
            return EventDraft(
                type="message", external_id=frame.id, message=MessageBody(content=content), **common
            )
        assert isinstance(frame, MessageFrame)
        return EventDraft(
            type="message",
            external_id=frame.id,
            message=MessageBody(content=frame.content),
            **common,
        )

    # --- outbound: a frame for the user's log --------------------------------------------
    def render(self, content: AnyContent, context: SendContext) -> list[ProviderRequest]:
        return self.render_parts([content], context)

    def render_parts(self, parts: list[AnyContent], context: SendContext) -> list[ProviderRequest]:
        # The part's position makes the log entry idempotent: a send retried after a crash
        # finds the entry it wrote and pushes nothing twice.
        return [
            ProviderRequest(
                "PUSH",
                LOG_PATH,
                json={
                    "user": context.recipient_id,
                    "message_id": context.message_id,
                    "part": position,
                    "content": part.model_dump(mode="json", exclude_none=True),
                },
            )
            for position, part in enumerate(parts)
        ]

    def make_sender(self, client: httpx.AsyncClient) -> Sender | None:
        return _WebSender(self.outbox, self.config.id)

    def auth_headers(self) -> dict[str, str]:
        return {}

    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        raise SendError("permanent", "no_provider", "the web channel sends through its log")

    def secrets(self) -> list[str]:
        return [self.web_config.token_secret.get_secret_value()]


def _read(body: bytes) -> InboundBody:
    try:
        return InboundBody.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise PayloadError(f"{where}: {first['msg']}") from None
