"""WhatsApp Business Cloud API.

Webhooks: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
          (models in payloads.py, read into events by parse.py)
Send API: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
Errors:   https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import SecretStr

from adapters.base import (
    AddressForm,
    Admission,
    ParsedEvent,
    ProviderRequest,
    Reading,
    SendContext,
    SendError,
    answer_json,
    provider_id,
    retry_after_seconds,
)
from adapters.meta_graph import (
    GraphAdapter,
    GraphConfig,
    graph_error,
)
from adapters.whatsapp import parse as inbound
from adapters.whatsapp import render as rich
from gateway.downgrade.plain_text import to_text
from gateway.downgrade.profile import (
    CHOICE_KINDS,
    ButtonsProfile,
    CarouselProfile,
    ListProfile,
    Profile,
)
from gateway.downgrade.split_text import split_text
from gateway.schema.content import (
    ButtonsContent,
    CarouselContent,
    ContactsContent,
    ListContent,
    LocationContent,
    MediaContent,
    TemplateContent,
    TextContent,
    is_media,
)
from gateway.schema.content import Content as AnyContent

# Text body limit: https://developers.facebook.com/docs/whatsapp/cloud-api/messages/text-messages
MAX_TEXT = 4096
# Caption limit for image/video/document (Cloud API messages reference, media object).
MAX_CAPTION = 1024

# Media kinds and sizes: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types
MEDIA_LIMITS: dict[str, tuple[tuple[str, ...], int]] = {
    "image": (("image/jpeg", "image/png"), 5 * 1024 * 1024),
    "video": (("video/mp4", "video/3gpp"), 16 * 1024 * 1024),
    "audio": (
        ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"),
        16 * 1024 * 1024,
    ),
    "document": ((), 100 * 1024 * 1024),
    "sticker": (("image/webp",), 500 * 1024),
}

# The customer service window: free-form messages only this long after the customer's last one.
# https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-messages#customer-service-windows
WINDOW_SECONDS = 24 * 3600

# What WhatsApp shows natively; the downgrade engine turns everything else into these parts
# or into numbered text. Limits as Meta documents them (see adapters/whatsapp/render.py too).
CAPABILITIES = Profile(
    channel="whatsapp",
    text_max=MAX_TEXT,
    caption_max=MAX_CAPTION,
    # Button ids "Maximum 256 characters", list row ids "Maximum 200 characters": the smaller.
    # https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages
    payload_max=rich.ROW_ID_MAX,
    media=frozenset({"image", "video", "audio", "file", "sticker"}),
    location=True,
    contacts=True,
    # Reply buttons: "up to three", label "Maximum 20 characters", body 1024, footer 60, header
    # text (60) or image / video / document. Replies only: a URL button is a message of its own
    # (cta_url) and cannot sit beside reply buttons, so links and calls stay lines of text.
    # https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages
    buttons=ButtonsProfile(
        max_actions=rich.BUTTONS_MAX,
        label_max=rich.BUTTON_TITLE_MAX,
        text_max=rich.BUTTON_BODY_MAX,
        kinds=CHOICE_KINDS,
        header_max=rich.HEADER_MAX,
        footer_max=rich.FOOTER_MAX,
        media=True,
    ),
    # No quick replies: choices become reply buttons (up to 3), else a list (up to 10).
    quick_replies=None,
    # "up to 10 sections, with up to 10 rows for all sections combined"; button 20, section and
    # row title 24, row description 72, body 4096, header (text only) 60, footer 60.
    # https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages
    list=ListProfile(
        max_rows=rich.LIST_ROWS_MAX,
        max_sections=rich.LIST_SECTIONS_MAX,
        row_title_max=rich.ROW_TITLE_MAX,
        row_description_max=rich.ROW_DESCRIPTION_MAX,
        section_title_max=rich.SECTION_TITLE_MAX,
        button_max=rich.LIST_BUTTON_MAX,
        text_max=rich.LIST_BODY_MAX,
        header_max=rich.HEADER_MAX,
        footer_max=rich.FOOTER_MAX,
    ),
    # Media carousel (render.py): 2-10 cards, each an image or video (one kind for all),
    # "*title*" and description in a 160-character body, and either quick-reply buttons or one
    # URL button, the same on every card. A choice card's links and a card's tap link become
    # lines of its description; cards that cannot be made alike go one reply-buttons message
    # per item instead.
    # https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-media-carousel-messages
    carousel=CarouselProfile(
        max_cards=rich.CAROUSEL_CARDS_MAX,
        min_cards=rich.CAROUSEL_CARDS_MIN,
        title_max=rich.CARD_TITLE_MAX,
        description_max=rich.CARD_DESCRIPTION_MAX,
        max_actions=rich.CARD_BUTTONS_MAX,
        label_max=rich.BUTTON_TITLE_MAX,
        kinds=CHOICE_KINDS | {"link"},
        media_required=True,
        same_action_count=True,
        mixed_actions=False,
        max_link_buttons=1,
        min_actions=1,
        same_action_kinds=True,
        media_kinds=frozenset({"image", "video"}),
        same_media_kind=True,
        default_url=False,
        text_max=rich.CAROUSEL_BODY_MAX,
    ),
    # Location request message: body text and WhatsApp's own "Send location" button.
    # https://developers.facebook.com/docs/whatsapp/cloud-api/messages/location-request-messages
    location_request=True,
    window_hours=WINDOW_SECONDS / 3600,
    # Message templates: https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates
    templates=True,
    notes={
        "quick_replies": "reply buttons (up to 3), else a list (up to 10), else numbered text",
        "carousel": "a media carousel; else one reply-buttons message per item",
        "link": "a line of text (cta_url cannot be mixed with reply buttons)",
        "call": "the number in text",
        "buy": "the payment link in text",
        "location_request": "a location request message (body + WhatsApp's Send location)",
        "window": "free-form only within 24 h of the user's last message; templates any time",
    },
)

# A business-scoped user id (BSUID), how Meta names a user who may hide their phone number behind
# a username: "a two-letter ISO country code, a period, and up to 128 alphanumeric characters"
# (BR.1502576394655843); a parent BSUID, shared by a managed business's portfolios, adds "ENT."
# (US.ENT.11815799212886844830). Webhooks carry it as messages[].from_user_id, contacts[].user_id
# and statuses[].recipient_user_id; a send takes it as `recipient` instead of `to`.
# https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[0-9A-Za-z]{1,128}")

# Error codes: https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
RETRY_CODES = frozenset(
    {1, 2, 4, 613, 80007, 130429, 131000, 131016, 131049, 131056, 131057, 133016}
)
# The user cannot be reached (not on WhatsApp, blocked, opted out of marketing). That send
# fails; none is a lasting opt-out: WhatsApp has no opt-out webhook, and 131050 stops
# marketing templates only, never replies to the user (gateway/consent.py).
UNREACHABLE_CODES = frozenset({131026, 131050})


class WhatsAppConfig(GraphConfig):
    routed_by = "phone_number_id"

    type: Literal["whatsapp"]
    api_base_url: str = "https://graph.facebook.com/v21.0"
    rate_limit_per_second: float = 80.0  # default Cloud API throughput per number
    phone_number_id: str
    access_token: SecretStr


def error_category(code: int) -> Literal["retry", "permanent", "unreachable"]:
    if code in RETRY_CODES:
        return "retry"
    if code in UNREACHABLE_CODES:
        return "unreachable"
    return "permanent"


class WhatsAppAdapter(GraphAdapter):
    type = "whatsapp"
    config_model = WhatsAppConfig
    capabilities = CAPABILITIES
    # A phone number, with or without its +, or a business-scoped user id: a country code, a
    # period, an optional ENT. for a portfolio's parent id, up to 128 alphanumerics (providers.md
    # §1.5: US.ENT.11815799212886844830).
    address = AddressForm(
        r"\+?[1-9][0-9]{6,14}|[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}",
        "a phone number in international form (digits, + optional, such as 16505551234) or a"
        " business-scoped user id (such as US.ENT.11815799212886844830)",
        "https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages",
    )
    config: WhatsAppConfig

    def routing_id(self) -> str:
        return self.config.phone_number_id

    # --- inbound -------------------------------------------------------------------
    def dedupe_key(self, body: bytes) -> str:
        return self.admission(body).key

    def admission(self, body: bytes) -> Admission:
        return inbound.admission(body)

    def parse(self, body: bytes) -> list[ParsedEvent]:
        return self._reader(None).read(body).all_events()

    def parse_received(self, body: bytes, received_at: datetime) -> list[ParsedEvent]:
        return self.read(body, received_at).all_events()

    def read(
        self, body: bytes, received_at: datetime | None, only: frozenset[str] | None = None
    ) -> Reading:
        # Changes without a time of their own (value-level errors with no entry time) are
        # stamped with the request's arrival instead of the epoch.
        return self._reader(received_at).read(body, only)

    def _reader(self, received_at: datetime | None) -> inbound.WebhookReader:
        return inbound.WebhookReader(self.channel_for, error_category, received_at)

    # --- outbound ------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.access_token.get_secret_value()}"}

    def render(self, content: AnyContent, context: SendContext) -> list[ProviderRequest]:
        if not isinstance(content, TemplateContent) and not window_open(context):
            raise SendError(
                "permanent",
                "window_closed",
                "WhatsApp allows free-form messages only within 24 hours of the customer's last"
                " message; send a template (content type 'template', or options.template as the"
                " fallback for this message)",
            )
        path = f"/{self.config.phone_number_id}/messages"
        return [
            ProviderRequest("POST", path, json=body)
            for body in self._bodies(context.recipient_id, content)
        ]

    def render_parts(self, parts: list[AnyContent], context: SendContext) -> list[ProviderRequest]:
        arranged = rich.place_location_requests(parts)
        return [r for part in arranged for r in self.render(part, context)]

    def _bodies(self, to: str, content: AnyContent) -> list[dict[str, Any]]:
        base: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **_addressed(to),
        }
        if is_media(content):
            return _media_bodies(base, content)
        if isinstance(content, LocationContent):
            return [{**base, "type": "location", "location": _location(content)}]
        if isinstance(content, TemplateContent):
            return [{**base, "type": "template", "template": _template(content)}]
        if isinstance(content, ContactsContent):
            contacts = [
                c.model_dump(exclude_none=True, exclude_defaults=True) for c in content.contacts
            ]
            return [{**base, "type": "contacts", "contacts": contacts}]
        if isinstance(content, ListContent):
            return [{**base, **rich.interactive_list(content)}]
        if isinstance(content, CarouselContent):
            return [{**base, **rich.carousel(content)}]
        if isinstance(content, ButtonsContent) and _choices_only(content):
            return [{**base, **m} for m in rich.reply_buttons(content)]
        if isinstance(content, ButtonsContent) and rich.is_location_request(content):
            return [{**base, **m} for m in rich.location_request(content.text)]
        text = (
            content.text
            if isinstance(content, TextContent) and not content.quick_replies
            else to_text(content)
        )
        return [self._text(base, chunk) for chunk in split_text(text, MAX_TEXT)]

    @staticmethod
    def _text(base: dict[str, Any], body: str) -> dict[str, Any]:
        return _text_body(base, body)

    def read_send_response(self, status: int, body: bytes, headers: Mapping[str, str]) -> str:
        payload = answer_json(body)
        if 200 <= status < 300:
            messages = payload.get("messages")
            first = messages[0] if isinstance(messages, list) and messages else None
            message_id = provider_id(first.get("id")) if isinstance(first, dict) else None
            if message_id:
                return message_id
            raise SendError("retry", str(status), "accepted without a message id")
        code, title, details = graph_error(payload)
        retry_after = retry_after_seconds(headers)
        if status == 429 or status >= 500:
            return _raise(SendError("retry", str(code or status), title, retry_after=retry_after))
        text = f"{title}: {details}" if details else title
        return _raise(
            SendError(error_category(code), str(code or status), text, retry_after=retry_after)
        )

    def secrets(self) -> list[str]:
        return [
            self.config.access_token.get_secret_value(),
            self.config.app_secret.get_secret_value(),
            self.config.verify_token.get_secret_value(),
        ]


def _choices_only(content: ButtonsContent) -> bool:
    return all(a.type in ("reply", "postback") for a in content.actions)


def window_open(context: SendContext) -> bool:
    """Inside the customer service window: the customer wrote within the last 24 hours."""
    last = context.last_inbound_at
    return last is not None and context.now - last < WINDOW_SECONDS


def _raise(error: SendError) -> str:
    raise error


def _addressed(to: str) -> dict[str, str]:
    """The send body's address: a BSUID goes in `recipient`, a phone number in `to`, and a
    group id in `to` with `recipient_type: group`.

    "Use `recipient` to send to a BSUID or parent BSUID"; given both, Meta follows `to`.
    https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
    "The recipient_type field now supports group as well as individual. The to field now
    supports the group ID that is obtained when using the Groups API."
    https://developers.facebook.com/documentation/business-messaging/whatsapp/groups/groups-messaging/
    """
    if BSUID.fullmatch(to):
        return {"recipient": to}
    return {"recipient_type": "group", "to": to} if is_group(to) else {"to": to}


# A group id from the Groups API: an opaque base64 string, such as
# `Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD` (Group messaging docs). A phone
# number is digits, a BSUID has a period: neither looks like one.
GROUP_ID = re.compile(r"[A-Za-z0-9_=+/-]{20,}")


def is_group(to: str) -> bool:
    return GROUP_ID.fullmatch(to) is not None and not _is_phone(to.removeprefix("+"))


def _is_phone(value: str) -> bool:
    """A wa_id that is a phone number: digits only (a BSUID has a period and letters)."""
    return value.isascii() and value.isdigit()


def _text_body(base: dict[str, Any], body: str) -> dict[str, Any]:
    return {**base, **rich.text_message(body)}


def _media_bodies(base: dict[str, Any], content: MediaContent) -> list[dict[str, Any]]:
    """A media message; a caption the kind cannot carry (audio, sticker) or one too long
    follows as text."""
    kind = "document" if content.type == "file" else content.type
    media: dict[str, Any] = (
        {"id": content.media.provider_media_id}
        if content.media.provider_media_id
        else {"link": content.media.url}
    )
    caption = content.caption
    extra_text: list[str] = []
    if caption and kind in ("image", "video", "document"):
        if len(caption) > MAX_CAPTION:
            extra_text, caption = split_text(caption, MAX_TEXT), None
        else:
            media["caption"] = caption
    elif caption:
        extra_text = split_text(caption, MAX_TEXT)
    if kind == "document" and content.media.filename:
        media["filename"] = content.media.filename
    return [{**base, "type": kind, kind: media}] + [_text_body(base, t) for t in extra_text]


def _location(content: LocationContent) -> dict[str, Any]:
    location: dict[str, Any] = {"latitude": content.latitude, "longitude": content.longitude}
    return location | {k: v for k, v in (("name", content.name), ("address", content.address)) if v}


def _template(content: TemplateContent) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": content.template.name,
        "language": {"code": content.template.language},
    }
    if content.template.components:
        template["components"] = content.template.components
    return template


ADAPTER = WhatsAppAdapter
