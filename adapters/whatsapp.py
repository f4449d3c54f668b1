"""WhatsApp Business Cloud API.

Webhooks: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
Send API: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
Errors:   https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import SecretStr

from adapters import whatsapp_rich as rich
from adapters.base import (
    MAX_JSON_DEPTH,
    AddressForm,
    Admission,
    ParsedEvent,
    PayloadError,
    ProviderRequest,
    SendContext,
    SendError,
    answer_json,
    epoch_seconds,
    json_object,
    newest_time,
    provider_id,
    request_key,
    retry_after_seconds,
)
from adapters.meta import (
    GraphAdapter,
    GraphConfig,
    graph_error,
)
from gateway import json_codec
from gateway.downgrade.plain_text import to_text
from gateway.downgrade.profile import (
    CHOICE_KINDS,
    ButtonsProfile,
    CarouselProfile,
    ListProfile,
    Profile,
)
from gateway.downgrade.split_text import split_text
from gateway.schema import (
    ChannelRef,
    EventDraft,
    EventError,
    MessageBody,
    Party,
    Postback,
    Reaction,
    Referral,
    Status,
    System,
    Unsupported,
)
from gateway.schema.content import (
    AudioContent,
    ButtonsContent,
    CarouselContent,
    ContactsContent,
    FileContent,
    FormResponseContent,
    ImageContent,
    ListContent,
    LocationContent,
    Media,
    StickerContent,
    TemplateContent,
    TextContent,
    VideoContent,
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
# or into numbered text. Limits as Meta documents them (see adapters/whatsapp_rich.py too).
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
    # Media carousel (whatsapp_rich): 2-10 cards, each an image or video (one kind for all),
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

_STATES = {"sent", "delivered", "read", "failed"}
_MEDIA_TYPES = {"image", "video", "audio", "document", "sticker"}


class WhatsAppConfig(GraphConfig):
    routed_by = "phone_number_id"

    type: Literal["whatsapp"]
    api_base_url: str = "https://graph.facebook.com/v21.0"
    rate_limit_per_second: float = 80.0  # default Cloud API throughput per number
    phone_number_id: str
    access_token: SecretStr


def _timestamp(value: Any) -> datetime:
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadError(f"bad timestamp {value!r}") from exc
    return epoch_seconds(seconds)


def error_category(code: int) -> Literal["retry", "permanent", "unreachable"]:
    if code in RETRY_CODES:
        return "retry"
    if code in UNREACHABLE_CODES:
        return "unreachable"
    return "permanent"


def _event_error(errors: Any) -> EventError | None:
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    code = first.get("code")
    data = first.get("error_data")
    return EventError(
        code=str(code),
        title=first.get("title") or first.get("message"),
        detail=data.get("details") if isinstance(data, dict) else None,
        retryable=isinstance(code, int) and error_category(code) == "retry",
    )


def _media(kind: str, item: dict[str, Any]) -> AnyContent:
    url = item.get("url") or item.get("link")
    media = Media(
        # Without a link the media is known by its id alone: read as item["id"], a missing one
        # is reported by its path (entry[0]...image.id: missing), not as a model's complaint.
        provider_media_id=item.get("id") if url else item["id"],
        url=url,
        mime_type=item.get("mime_type"),
        sha256=item.get("sha256"),
        filename=item.get("filename"),
    )
    caption = item.get("caption")
    if kind == "image":
        return ImageContent(media=media, caption=caption)
    if kind == "video":
        return VideoContent(media=media, caption=caption)
    if kind == "audio":
        return AudioContent(media=media, voice=bool(item.get("voice")))
    if kind == "sticker":
        return StickerContent(media=media, animated=bool(item.get("animated")))
    return FileContent(media=media, caption=caption)


def _contacts(items: list[dict[str, Any]]) -> ContactsContent:
    # The payload's own list goes to the model, so a refusal (an empty one) names its path.
    return ContactsContent.model_validate({"contacts": items})


def _referral(data: dict[str, Any]) -> Referral:
    return Referral(
        source="ad" if data.get("source_type") == "ad" else data.get("source_type"),
        source_type=data.get("source_type"),
        source_id=data.get("source_id"),
        source_url=data.get("source_url"),
        headline=data.get("headline"),
        body=data.get("body"),
        media_url=data.get("image_url") or data.get("video_url"),
        click_id=data.get("ctwa_clid"),
    )


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
        # On the hot path: read only the ids and times, with the same key rules as `parse`.
        payload = json_object(body)
        if payload.get("object") != "whatsapp_business_account":
            raise PayloadError(f"not a WhatsApp webhook (object={payload.get('object')!r})")
        keys = []
        times: list[Any] = []  # messages' and statuses' `timestamp`: Unix seconds, as strings
        for entry in _list(payload.get("entry"), "entry"):
            for change in _list(entry.get("changes"), "entry[].changes"):
                value = change.get("value")
                if change.get("field") != "messages" or not isinstance(value, dict):
                    keys.append(_change_key("field", entry, change))
                    continue
                keys += [
                    _message_key(m) for m in value.get("messages") or [] if isinstance(m, dict)
                ]
                keys += [_status_key(s) for s in value.get("statuses") or [] if isinstance(s, dict)]
                times += [
                    item.get("timestamp")
                    for field in ("messages", "statuses")
                    for item in value.get(field) or []
                    if isinstance(item, dict)
                ]
                phone_number_id = (value.get("metadata") or {}).get("phone_number_id")
                keys += [
                    _change_key("error", entry, [phone_number_id, e])
                    for e in value.get("errors") or []
                ]
        return Admission(request_key(keys, body), newest_time(times))

    def parse(self, body: bytes) -> list[ParsedEvent]:
        return self._events(json_object(body), None)

    def parse_received(self, body: bytes, received_at: datetime) -> list[ParsedEvent]:
        # Changes without a time of their own (value-level errors with no entry time) are
        # stamped with the request's arrival instead of the epoch.
        return self._events(json_object(body), received_at)

    def _events(self, payload: dict[str, Any], received_at: datetime | None) -> list[ParsedEvent]:
        if payload.get("object") != "whatsapp_business_account":
            raise PayloadError(f"not a WhatsApp webhook (object={payload.get('object')!r})")
        events: list[ParsedEvent] = []
        for i, entry in enumerate(_list(payload.get("entry"), "entry")):
            for j, change in enumerate(_list(entry.get("changes"), "entry[].changes")):
                where = f"entry[{i}].changes[{j}].value"
                events += self._change(entry, change, received_at, where)
        return events

    def _change(
        self,
        entry: dict[str, Any],
        change: dict[str, Any],
        received_at: datetime | None,
        where: str,
    ) -> list[ParsedEvent]:
        when = _entry_time(entry, received_at)
        value = change.get("value") or {}
        field = change.get("field")
        if field != "messages":
            key = _change_key("field", entry, change)
            draft = EventDraft(
                type="system",
                channel=self._channel(None),
                timestamp=when,
                system=System(kind=str(field)),
                channel_data={"field": field, "value": value},
            )
            return [ParsedEvent(draft, key)]
        metadata = value.get("metadata") or {}
        channel = self._channel(metadata.get("phone_number_id"))
        business = Party(
            id=str(metadata.get("phone_number_id", "")),
            phone=_plus(metadata.get("display_phone_number")),
        )
        contacts = _contacts_by_id(value.get("contacts") or [])
        events = [
            self._message(m, channel, business, contacts, f"{where}.messages[{k}]")
            for k, m in enumerate(value.get("messages") or [])
        ]
        events += [
            self._status(s, channel, business, contacts) for s in value.get("statuses") or []
        ]
        for error in value.get("errors") or []:
            key = _change_key("error", entry, [metadata.get("phone_number_id"), error])
            draft = EventDraft(
                type="system",
                channel=channel,
                timestamp=when,
                recipient=business,
                system=System(kind="error", text=error.get("title") or error.get("message")),
                channel_data={"errors": [error]},
            )
            events.append(ParsedEvent(draft, key))
        return events

    def _channel(self, phone_number_id: str | None) -> ChannelRef:
        channel_id = self.routed_channel_id(phone_number_id)
        return ChannelRef(id=channel_id, type=self.type)

    def _message(
        self,
        item: dict[str, Any],
        channel: ChannelRef,
        business: Party,
        contacts: dict[str, dict[str, Any]],
        where: str,
    ) -> ParsedEvent:
        sender = _user(item.get("from"), item.get("from_user_id"), contacts)
        if sender is None:
            raise PayloadError(f"{where}.from: missing (and no from_user_id)")
        kind = item.get("type")
        common: dict[str, Any] = {
            "channel": channel,
            "external_id": item["id"],
            "timestamp": _timestamp(item.get("timestamp")),
            "sender": sender,
            "recipient": business,
        }
        context = item.get("context") or {}
        reply_to = context.get("id")
        extras = {k: context[k] for k in ("forwarded", "frequently_forwarded") if k in context}
        if "referred_product" in context:
            extras["referred_product"] = context["referred_product"]
        if item.get("referral"):
            common["referral"] = _referral(item["referral"])
        if item.get("group_id"):
            # Said in a WhatsApp group: `from` is the member, `group_id` the group, where a
            # reply goes (Group messages webhook reference:
            # https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/group/).
            extras["group_id"] = str(item["group_id"])
        if extras:
            common["channel_data"] = extras

        draft: EventDraft
        if kind == "text":
            content: AnyContent = TextContent(text=item["text"]["body"])
            draft = EventDraft(
                type="message", message=MessageBody(content=content, reply_to=reply_to), **common
            )
        elif kind in _MEDIA_TYPES:
            content = _media(kind, item[kind])
            draft = EventDraft(
                type="message", message=MessageBody(content=content, reply_to=reply_to), **common
            )
        elif kind == "location":
            loc = item["location"]
            content = LocationContent(
                latitude=loc["latitude"],
                longitude=loc["longitude"],
                name=loc.get("name"),
                address=loc.get("address"),
                url=loc.get("url"),
            )
            draft = EventDraft(
                type="message", message=MessageBody(content=content, reply_to=reply_to), **common
            )
        elif kind == "contacts":
            content = _contacts(item["contacts"])
            draft = EventDraft(
                type="message", message=MessageBody(content=content, reply_to=reply_to), **common
            )
        elif kind == "interactive":
            draft = self._interactive(item["interactive"], reply_to, common, where)
        elif kind == "button":
            button = item["button"]
            postback = Postback(
                payload=button.get("payload") or button["text"],
                title=button.get("text"),
                reply_to=reply_to,
            )
            draft = EventDraft(type="postback", postback=postback, **common)
        elif kind == "reaction":
            reaction = item["reaction"]
            draft = EventDraft(
                type="reaction",
                reaction=Reaction(
                    emoji=reaction.get("emoji") or None, message_external_id=reaction["message_id"]
                ),
                **common,
            )
        elif kind == "system":
            system = item["system"]
            draft = EventDraft(
                type="system",
                system=System(
                    kind=system.get("type", "system"),
                    text=system.get("body"),
                    # user_changed_user_id names the new BSUID in `user_id` and no phone number.
                    # https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/system/
                    new_id=system.get("wa_id") or system.get("new_wa_id") or system.get("user_id"),
                ),
                **common,
            )
        elif kind is None:
            raise PayloadError("message without a type")
        else:
            draft = self._unsupported(item, str(kind), common)
        return ParsedEvent(draft, _message_key(item))

    def _interactive(
        self, data: dict[str, Any], reply_to: str | None, common: dict[str, Any], where: str
    ) -> EventDraft:
        kind = data.get("type")
        if kind in ("button_reply", "list_reply"):
            reply = data[kind]
            extra = {"description": reply["description"]} if reply.get("description") else None
            if extra:
                common = {**common, "channel_data": {**(common.get("channel_data") or {}), **extra}}
            postback = Postback(payload=reply["id"], title=reply.get("title"), reply_to=reply_to)
            return EventDraft(type="postback", postback=postback, **common)
        if kind == "nfm_reply":  # a WhatsApp Flow was completed
            reply = data["nfm_reply"]
            values = _flow_answers(reply, f"{where}.interactive.nfm_reply.response_json")
            if isinstance(values, str):  # this message alone cannot be read: say why, keep it
                item = {"interactive": data}
                return self._unsupported(item, "interactive:nfm_reply", common, reason=values)
            content = FormResponseContent(
                form_id=str(values.pop("flow_token", reply.get("name", "flow"))), values=values
            )
            return EventDraft(
                type="message", message=MessageBody(content=content, reply_to=reply_to), **common
            )
        return self._unsupported({"interactive": data}, f"interactive:{kind}", common)

    def _unsupported(
        self,
        item: dict[str, Any],
        kind: str,
        common: dict[str, Any],
        *,
        reason: str | None = None,
    ) -> EventDraft:
        error = _event_error(item.get("errors"))
        unsupported_type = (item.get("unsupported") or {}).get("type")
        if reason is None:
            reason = (
                error.title if error and error.title else f"message type {kind!r} is not supported"
            )
            if error and error.detail:
                reason = f"{reason}: {error.detail}"
        data = {**(common.get("channel_data") or {}), "message": item}
        common = {**common, "channel_data": data}
        return EventDraft(
            type="unsupported",
            unsupported=Unsupported(provider_type=unsupported_type or kind, reason=reason),
            **common,
        )

    def _status(
        self,
        item: dict[str, Any],
        channel: ChannelRef,
        business: Party,
        contacts: dict[str, dict[str, Any]],
    ) -> ParsedEvent:
        state = item.get("status")
        # A send to a BSUID is reported with `recipient_user_id` (and `recipient_id` only when
        # Meta may share the phone number): BSUID docs, "Status messages webhooks".
        recipient = _user(item.get("recipient_id"), item.get("recipient_user_id"), contacts)
        if item.get("recipient_type") == "group" and item.get("recipient_id"):
            # A send to a group is reported with the group as `recipient_id` and
            # `recipient_type: group` (Group messaging: "Group message sent example").
            recipient = Party(id=str(item["recipient_id"]))
        common: dict[str, Any] = {
            "channel": channel,
            "external_id": item["id"],
            "timestamp": _timestamp(item.get("timestamp")),
            "sender": business,
            "recipient": recipient or Party(id=""),
        }
        extras = {
            k: item[k] for k in ("conversation", "pricing", "biz_opaque_callback_data") if k in item
        }
        if extras:
            common["channel_data"] = extras
        key = _status_key(item)
        if state not in _STATES:
            draft = EventDraft(
                type="unsupported",
                unsupported=Unsupported(
                    provider_type=f"status:{state}", reason=f"status {state!r} is not tracked"
                ),
                **common,
            )
            return ParsedEvent(draft, key)
        status = Status(external_id=item["id"], state=state, error=_event_error(item.get("errors")))
        return ParsedEvent(EventDraft(type="status", status=status, **common), key)

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
            return [{**base, "type": kind, kind: media}] + [self._text(base, t) for t in extra_text]
        if isinstance(content, LocationContent):
            location: dict[str, Any] = {
                "latitude": content.latitude,
                "longitude": content.longitude,
            }
            location |= {
                k: v for k, v in (("name", content.name), ("address", content.address)) if v
            }
            return [{**base, "type": "location", "location": location}]
        if isinstance(content, TemplateContent):
            template: dict[str, Any] = {
                "name": content.template.name,
                "language": {"code": content.template.language},
            }
            if content.template.components:
                template["components"] = content.template.components
            return [{**base, "type": "template", "template": template}]
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
        return {**base, **rich.text_message(body)}

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


def _message_key(item: dict[str, Any]) -> str:
    return f"msg:{item.get('id')}"


def _status_key(item: dict[str, Any]) -> str:
    # One status per state: "delivered" and "read" of the same message are different events.
    return f"status:{item.get('id')}:{item.get('status')}"


def _entry_time(entry: dict[str, Any], received_at: datetime | None) -> datetime:
    """The entry's own time; else when the request arrived; the epoch only if neither is known."""
    value = entry.get("time")
    if value:
        try:
            return epoch_seconds(int(value))
        except (TypeError, ValueError, OverflowError, PayloadError):
            pass
    return received_at or datetime.fromtimestamp(0, UTC)


def _change_key(prefix: str, entry: dict[str, Any], item: Any) -> str:
    """A key for a change that has no id of its own.

    The entry's id and time are part of it: Meta sends the same change again when the same
    thing happens again (a template approved a second time), and that is a new event.
    """
    data = json.dumps([entry.get("id"), entry.get("time"), item], sort_keys=True)
    return f"{prefix}:" + hashlib.sha256(data.encode()).hexdigest()


def _plus(number: Any) -> str | None:
    if not number:
        return None
    text = str(number)
    return text if text.startswith("+") else "+" + text


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


def _contacts_by_id(contacts: list[Any]) -> dict[str, dict[str, Any]]:
    """`contacts[]` of a change by each id it carries: `wa_id` (when Meta shares the phone
    number) and `user_id` (the BSUID)."""
    found: dict[str, dict[str, Any]] = {}
    for contact in contacts:
        for key in ("wa_id", "user_id"):
            if contact.get(key):
                found[str(contact[key])] = contact
    return found


def _user(address: Any, user_id: Any, contacts: dict[str, dict[str, Any]]) -> Party | None:
    """A WhatsApp user from a message's `from` / `from_user_id` (a status's `recipient_id` /
    `recipient_user_id`) and their `contacts[]` entry; None when neither id is there.

    `id` stays the phone number (wa_id) whenever Meta sends one, so people the gateway already
    knows keep their id; a user known only by a BSUID (a username hiding the number) gets the
    BSUID. The BSUID rides along as `user_id` in both cases, and `phone` is set only from a
    phone number, never from an id that is not one. A non-numeric `from` is a BSUID.
    """
    address = str(address) if address else None
    user_id = str(user_id) if user_id else None
    contact = contacts.get(address or "") or contacts.get(user_id or "") or {}
    if address and not _is_phone(address):
        address, user_id = None, user_id or address
    user_id = user_id or (str(contact["user_id"]) if contact.get("user_id") else None)
    wa_id = str(contact.get("wa_id") or "")
    phone = address or (wa_id if _is_phone(wa_id) else None)
    party_id = phone or user_id
    if party_id is None:
        return None
    profile = contact.get("profile") or {}
    return Party(
        id=party_id,
        name=profile.get("name"),
        phone=_plus(phone),
        user_id=user_id,
        username=profile.get("username"),
    )


def _flow_answers(reply: dict[str, Any], where: str) -> dict[str, Any] | str:
    """A completed Flow's answers, or why they cannot be read. Meta sends them as a string of
    JSON holding one object (flow_token and the Flow's fields).
    https://developers.facebook.com/docs/whatsapp/flows/reference/responsemsgwebhook
    """
    text = reply.get("response_json") or "{}"
    if not isinstance(text, str):
        return f"{where}: expected a string of JSON, got {_json_kind(text)}"
    try:  # read as the webhook itself is: bounded nesting, no lone surrogates left
        values = json_codec.loads_bounded(text.encode(), MAX_JSON_DEPTH)
    except ValueError as exc:
        if "nested too deeply" in str(exc):
            return f"{where}: {exc}"
        return f"{where}: expected a JSON object, got text that is not JSON"
    if not isinstance(values, dict):
        return f"{where}: expected a JSON object, got {_json_kind(values)}"
    return values


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"


def _list(value: Any, name: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{name} is not a list of objects")
    for item in value:  # a loop, not all(): this runs twice per webhook on the ack path
        if not isinstance(item, dict):
            raise PayloadError(f"{name} is not a list of objects")
    return value


ADAPTER = WhatsAppAdapter
