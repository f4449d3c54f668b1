"""Facebook Messenger Platform (Send API + Page webhooks).

Webhooks: https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events
          (models in payloads.py, read into events by parse.py)
Send API: https://developers.facebook.com/docs/messenger-platform/reference/send-api/
Window:   https://developers.facebook.com/docs/messenger-platform/send-messages/message-tags
Errors:   https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import SecretStr

from adapters.base import (
    AddressForm,
    Admission,
    ErrorCategory,
    ParsedEvent,
    ProviderRequest,
    Reading,
    SendContext,
    SendError,
    answer_json,
    provider_id,
    retry_after_seconds,
)
from adapters.messenger import parse as inbound
from adapters.messenger import render as rich
from adapters.meta_graph import (
    GraphAdapter,
    GraphConfig,
    graph_error,
)
from gateway.downgrade.profile import (
    ButtonsProfile,
    CarouselProfile,
    Profile,
    QuickRepliesProfile,
)
from gateway.schema.content import Content as AnyContent

MAX_TEXT = rich.MAX_TEXT  # message.text: 2000 characters (link in render.py)
# Standard messaging window and the HUMAN_AGENT tag's 7 days:
# https://developers.facebook.com/docs/messenger-platform/send-messages/message-tags
WINDOW_SECONDS = 24 * 3600
HUMAN_AGENT_SECONDS = 7 * 24 * 3600
MESSAGE_TAGS = frozenset(
    {"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"}
)

# Choices carried natively: postback buttons and text quick replies; URL and call buttons too.
BUTTON_KINDS = frozenset({"reply", "postback", "link", "call"})

# Everything Messenger shows natively; the engine renders the rest another way. Limits:
CAPABILITIES = Profile(
    channel="messenger",
    text_max=MAX_TEXT,
    # Postback button and quick reply payloads: "1000 character limit"
    # https://developers.facebook.com/docs/messenger-platform/reference/buttons/postback
    payload_max=1000,
    # Attachments by URL or attachment_id (max 25 MB per file, unverified); a sticker goes as
    # its image: https://developers.facebook.com/docs/messenger-platform/send-messages#sending_attachments
    media=frozenset({"image", "video", "audio", "file", "sticker"}),
    # Attachments carry no caption: the engine sends any caption as a text part of its own.
    caption_max=0,
    # Button template: text "UTF-8-encoded text of up to 640 characters", "Set of 1-3 buttons",
    # no header, footer or image:
    # https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/template/button
    # Button titles "20 character limit" (postback, URL and call buttons):
    # https://developers.facebook.com/docs/messenger-platform/reference/buttons/postback
    # https://developers.facebook.com/docs/messenger-platform/reference/buttons/url
    # https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/buttons/call
    buttons=ButtonsProfile(max_actions=3, label_max=20, text_max=640, kinds=BUTTON_KINDS),
    # "A maximum of 13 quick replies", title "20 character limit"; content_type text only:
    # the location quick reply was deprecated on July 29, 2019 and removed for all versions
    # on October 29, 2019 (so location_request stays off and is asked for in text):
    # https://developers.facebook.com/docs/messenger-platform/reference/buttons/quick-replies/
    quick_replies=QuickRepliesProfile(max_items=13, label_max=20),
    # Generic template: "Maximum of 10 elements", title and subtitle "80 character limit",
    # "Maximum of 3 buttons per element":
    # https://developers.facebook.com/documentation/business-messaging/messenger-platform/send-messages/template/generic
    carousel=CarouselProfile(
        max_cards=10,
        title_max=80,
        description_max=80,
        max_actions=3,
        label_max=20,
        kinds=BUTTON_KINDS,
    ),
    # No native list (the generic and button templates are the structured messages the
    # template docs list; the old list template is not relied on): lists become quick
    # replies, else numbered text.
    list=None,
    location_request=False,
    window_hours=WINDOW_SECONDS / 3600,
    notes={
        "sticker": "sent as an image attachment (the Send API has no sticker by id)",
        "location": "no native send: a text with a maps link",
        "location_request": "location quick reply removed in 2019: a text prompt",
        "list": "no native list: quick replies, else numbered text",
        "buy": "a URL button to the payment link",
        "window": "outside 24 h only with options.messaging_tag (HUMAN_AGENT up to 7 days)",
    },
)

# Error codes: https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes
RETRY_CODES = frozenset({1200, 2, 4, 613})
# (code, subcode) pairs that override the code alone.
RETRY_PAIRS = frozenset({(4, 2018354), (9, 2018352), (2, 2018344)})
PERMANENT_PAIRS = frozenset({(1, 1357046)})
# 551 "This person isn't available right now": that send fails, and no more. Messenger has
# no unsubscribe webhook; STOP NOTIFICATIONS (messaging_optins) stops marketing messages only,
# so nothing sets a lasting opt-out here (gateway/consent.py).
# https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_optins
UNREACHABLE_CODES = frozenset({551})
UNREACHABLE_PAIRS = frozenset({(100, 2018001)})  # no matching user found
RETRY_GENERIC = frozenset({1})  # "API Unknown": possibly temporary downtime

_ENVELOPE = frozenset({"sender", "recipient", "timestamp"})


class MessengerConfig(GraphConfig):
    routed_by = "page_id"

    type: Literal["messenger"]
    api_base_url: str = "https://graph.facebook.com/v21.0"
    # 300 calls/s per Page for text but 10/s for audio and video, and more than 40 msg/s
    # triggers high-volume limits (Messenger Platform rate limiting): stay well below.
    rate_limit_per_second: float = 40.0
    page_id: str
    page_access_token: SecretStr


def error_category(code: int, subcode: int | None = None) -> ErrorCategory:
    pair = (code, subcode)
    if pair in RETRY_PAIRS:
        return "retry"
    if pair in UNREACHABLE_PAIRS or code in UNREACHABLE_CODES:
        return "unreachable"
    if pair in PERMANENT_PAIRS:
        return "permanent"
    if code in RETRY_CODES or code in RETRY_GENERIC:
        return "retry"
    return "permanent"


class MessengerAdapter(GraphAdapter):
    type = "messenger"
    config_model = MessengerConfig
    capabilities = CAPABILITIES
    # The page-scoped id (PSID) webhooks name the user by: digits.
    address = AddressForm(
        r"[0-9]{1,64}",
        "a page-scoped user id (PSID): digits, such as 6291474124214458",
        "https://developers.facebook.com/docs/messenger-platform/reference/send-api/",
    )
    config: MessengerConfig

    def routing_id(self) -> str:
        return self.config.page_id

    # --- inbound -------------------------------------------------------------------
    def dedupe_key(self, body: bytes) -> str:
        return self.admission(body).key

    def admission(self, body: bytes) -> Admission:
        return inbound.admission(body)

    def parse(self, body: bytes) -> list[ParsedEvent]:
        return self.read(body, None).all_events()

    def read(
        self, body: bytes, received_at: datetime | None, only: frozenset[str] | None = None
    ) -> Reading:
        return inbound.WebhookReader(self.channel_for).read(body, only)

    # --- outbound ------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        # Graph takes the Page token as a bearer header: it stays out of URLs and access logs.
        return {"Authorization": f"Bearer {self.config.page_access_token.get_secret_value()}"}

    def render(self, content: AnyContent, context: SendContext) -> list[ProviderRequest]:
        messaging = messaging_fields(context)
        recipient = {"id": context.recipient_id}
        return [
            ProviderRequest(
                "POST",
                "/me/messages",
                json={"recipient": recipient, **messaging, "message": message},
            )
            for message in rich.messages(content)
        ]

    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        payload = answer_json(body)
        if 200 <= status < 300:
            message_id = provider_id(payload.get("message_id"))
            if message_id:
                return message_id
            raise SendError("retry", str(status), "accepted without a message_id")
        code, title, _details = graph_error(payload)
        error = payload.get("error")
        subcode = error.get("error_subcode") if isinstance(error, dict) else None
        subcode = subcode if isinstance(subcode, int) else None
        label = f"{code}/{subcode}" if code and subcode else str(code or status)
        retry_after = retry_after_seconds(headers)
        category = error_category(code, subcode) if code else "permanent"
        if status == 429 or status >= 500:
            category = "retry"
        raise SendError(category, label, title, retry_after=retry_after)

    def secrets(self) -> list[str]:
        return [
            self.config.page_access_token.get_secret_value(),
            self.config.app_secret.get_secret_value(),
            self.config.verify_token.get_secret_value(),
        ]


def messaging_fields(context: SendContext) -> dict[str, str]:
    """`messaging_type` (and `tag`) for a send now, or SendError when the window is closed."""
    age = context.now - context.last_inbound_at if context.last_inbound_at is not None else None
    if age is not None and age <= WINDOW_SECONDS:
        return {"messaging_type": "RESPONSE"}
    tag = context.messaging_tag
    since = f"{age / 3600:.0f} hours ago" if age is not None else "never"
    if tag is None:
        raise SendError(
            "permanent",
            "window_closed",
            "Messenger's 24-hour standard messaging window is closed (the recipient last wrote"
            f" {since}); free-form messages are only allowed within 24 hours of the user's last"
            " message. Outside it, set options.messaging_tag to a message tag for a permitted"
            " non-promotional update (" + ", ".join(sorted(MESSAGE_TAGS)) + "; HUMAN_AGENT"
            " up to 7 days after the user's last message).",
        )
    if tag not in MESSAGE_TAGS:
        raise SendError(
            "permanent",
            "invalid_tag",
            f"{tag!r} is not a Messenger message tag; use one of "
            + ", ".join(sorted(MESSAGE_TAGS)),
        )
    if tag == "HUMAN_AGENT" and (age is None or age > HUMAN_AGENT_SECONDS):
        raise SendError(
            "permanent",
            "window_closed",
            "the HUMAN_AGENT tag only allows replies up to 7 days after the user's last message"
            f" (the recipient last wrote {since}); wait for the user to write again.",
        )
    return {"messaging_type": "MESSAGE_TAG", "tag": tag}


ADAPTER = MessengerAdapter
