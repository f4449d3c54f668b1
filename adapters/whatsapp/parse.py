"""WhatsApp webhooks → events: the typed payloads (payloads.py) read part by part.

Each of `entry[]`, `changes[]`, `messages[]`, `statuses[]` and `errors[]` is read on its own
(adapters/webhook_parts.py): one that cannot be read fails alone, with its JSON path.
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from adapters.base import (
    MAX_JSON_DEPTH,
    Admission,
    ParsedEvent,
    PayloadError,
    Reading,
    epoch_seconds,
    json_object,
    newest_time,
    request_key,
)
from adapters.payload_errors import json_kind, validation_reason
from adapters.webhook_parts import PartReader, adapted
from adapters.whatsapp import payloads as wa
from gateway import json_codec
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
    ContactsContent,
    FileContent,
    FormResponseContent,
    ImageContent,
    LocationContent,
    Media,
    StickerContent,
    TextContent,
    VideoContent,
)
from gateway.schema.content import Content as AnyContent

ChannelFor = Callable[[str | None], ChannelRef]
Categorise = Callable[[int], str]

_STATES = {"sent", "delivered", "read", "failed"}
_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_STATUS_EXTRAS = ("conversation", "pricing", "biz_opaque_callback_data")
_CONTEXT_EXTRAS = ("forwarded", "frequently_forwarded", "referred_product")


def webhook(body: bytes) -> wa.Webhook:
    """The envelope, or PayloadError: a body that is not a WhatsApp webhook fails as a whole."""
    return envelope_of(json_object(body))


def envelope_of(payload: dict[str, Any]) -> wa.Webhook:
    try:
        envelope = adapted(wa.WEBHOOK, payload)
    except ValidationError as exc:
        raise PayloadError(validation_reason(exc)) from None
    if envelope.get("object") != "whatsapp_business_account":
        raise PayloadError(f"not a WhatsApp webhook (object={envelope.get('object')!r})")
    return envelope


def admission(body: bytes) -> Admission:
    """The dedupe key and newest time, from the ids and times alone (the acknowledgement
    path): parts the normaliser will find unreadable are skipped, not refused, so the request
    is stored and its readable parts delivered."""
    keys: list[str] = []
    times: list[Any] = []  # messages' and statuses' `timestamp`: Unix seconds, as strings
    payload = json_object(body)
    entries = payload.get("entry")
    # The envelope as the model reads it, checked by hand: this runs on every acknowledgement,
    # and the model costs a sixth of it. Anything else is the model's to explain.
    if payload.get("object") != "whatsapp_business_account" or not isinstance(entries, list):
        entries = envelope_of(payload).get("entry")
    for entry in entries or ():
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else ():
            if not isinstance(change, dict):
                continue
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                keys.append(change_key("field", entry, change))
                continue
            messages, statuses = _dicts(value.get("messages")), _dicts(value.get("statuses"))
            keys += [message_key(m) for m in messages]
            keys += [status_key(s) for s in statuses]
            times += [item.get("timestamp") for item in messages + statuses]
            metadata = value.get("metadata")
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            keys += [change_key("error", entry, [number, e]) for e in _dicts(value.get("errors"))]
    return Admission(request_key(keys, body), newest_time(times))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def message_key(item: dict[str, Any]) -> str:
    return f"msg:{item.get('id')}"


def status_key(item: dict[str, Any]) -> str:
    # One status per state: "delivered" and "read" of the same message are different events.
    return f"status:{item.get('id')}:{item.get('status')}"


def change_key(prefix: str, entry: dict[str, Any], item: Any) -> str:
    """A key for a change that has no id of its own.

    The entry's id and time are part of it: Meta sends the same change again when the same
    thing happens again (a template approved a second time), and that is a new event.
    """
    data = json.dumps([entry.get("id"), entry.get("time"), item], sort_keys=True)
    return f"{prefix}:" + hashlib.sha256(data.encode()).hexdigest()


class WebhookReader:
    """Reads one webhook body for one WhatsApp channel instance."""

    def __init__(
        self, channel_for: ChannelFor, category: Categorise, received_at: datetime | None
    ) -> None:
        self.channel_for = channel_for
        self.category = category
        self.received_at = received_at

    def read(self, body: bytes, only: frozenset[str] | None = None) -> Reading:
        reader = PartReader(only)
        for i, raw_entry in enumerate(webhook(body).get("entry") or ()):
            entry = reader.typed(wa.ENTRY, f"entry[{i}]", raw_entry)
            if entry is None:
                continue
            for j, raw_change in enumerate(entry.get("changes") or ()):
                path = f"entry[{i}].changes[{j}]"
                change = reader.typed(wa.CHANGE, path, raw_change)
                if change is not None:
                    self._change(reader, path, raw_entry, raw_change, change)
        return reader.reading()

    def _change(
        self,
        reader: PartReader,
        path: str,
        raw_entry: dict[str, Any],
        raw_change: dict[str, Any],
        change: wa.Change,
    ) -> None:
        when = _entry_time(raw_entry, self.received_at)
        if change.get("field") != "messages":
            # Validated above already: read as it is, not validated a second time.
            reader.read_part(
                path, raw_change, lambda raw, _: [self._field(raw_entry, raw, change, when)]
            )
            return
        value = reader.typed(wa.VALUE, f"{path}.value", change.get("value") or {})
        if value is None:
            return
        metadata = value.get("metadata") or {}
        number = metadata.get("phone_number_id")
        shown = metadata.get("display_phone_number")
        to = _Addressing(self.channel_for(number), _business(number, shown))
        contacts = _contacts_by_id(value.get("contacts") or ())
        for k, raw in enumerate(value.get("messages") or ()):
            reader.read_typed(
                f"{path}.value.messages[{k}]",
                raw,
                wa.MESSAGE,
                lambda m, part, where: [self._message(m, part, to, contacts, where)],
            )
        for k, raw in enumerate(value.get("statuses") or ()):
            reader.read_typed(
                f"{path}.value.statuses[{k}]",
                raw,
                wa.STATUS,
                lambda s, part, where: [self._status(s, part, to, contacts, where)],
            )
        for k, raw in enumerate(value.get("errors") or ()):
            reader.read_typed(
                f"{path}.value.errors[{k}]",
                raw,
                wa.ERROR,
                lambda e, part, _: [_value_error(e, part, raw_entry, to, when)],
            )

    def _field(
        self, raw_entry: dict[str, Any], raw: dict[str, Any], change: wa.Change, when: datetime
    ) -> ParsedEvent:
        """A change of another field (template status, account update…): kept as a system
        event carrying what Meta sent."""
        draft = EventDraft(
            type="system",
            channel=self.channel_for(None),
            timestamp=when,
            system=System(kind=str(change.get("field"))),
            channel_data={"field": change.get("field"), "value": change.get("value")},
        )
        return ParsedEvent(draft, change_key("field", raw_entry, raw))

    def _message(
        self,
        item: wa.Message,
        raw: dict[str, Any],
        to: _Addressing,
        contacts: dict[str, wa.Contact],
        where: str,
    ) -> ParsedEvent:
        sender = _user(item.get("from"), item.get("from_user_id"), contacts)
        if sender is None:
            raise PayloadError(f"{where}.from: missing (and no from_user_id)")
        common: dict[str, Any] = {
            "channel": to.channel,
            "external_id": item["id"],
            "timestamp": _timestamp(item.get("timestamp"), f"{where}.timestamp"),
            "sender": sender,
            "recipient": to.business,
        }
        context = item.get("context")
        extras = _context_extras(context)
        if (referral := item.get("referral")) is not None:
            common["referral"] = _referral(referral)
        if group_id := item.get("group_id"):
            # Said in a WhatsApp group: `from` is the member, `group_id` the group, where a
            # reply goes (Group messages webhook reference:
            # https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/group/).
            extras["group_id"] = group_id
        if extras:
            common["channel_data"] = extras
        reply_to = context.get("id") if context else None
        draft = self._draft(item, raw, reply_to, common, where)
        return ParsedEvent(draft, message_key(raw))

    def _draft(
        self,
        item: wa.Message,
        raw: dict[str, Any],
        reply_to: str | None,
        common: dict[str, Any],
        where: str,
    ) -> EventDraft:
        kind = item.get("type")
        content = _content(item, kind, where)
        if content is not None:
            body = MessageBody(content=content, reply_to=reply_to)
            return EventDraft(type="message", message=body, **common)
        if kind == "interactive":
            interactive: wa.Interactive = _required(item, "interactive", where)
            return self._interactive(interactive, raw, reply_to, common, where)
        if kind == "button":
            button: wa.Button = _required(item, "button", where)
            payload = button.get("payload") or button.get("text")
            if payload is None:
                raise PayloadError(f"{where}.button.text: missing")
            postback = Postback(payload=payload, title=button.get("text"), reply_to=reply_to)
            return EventDraft(type="postback", postback=postback, **common)
        if kind == "reaction":
            data: wa.Reaction = _required(item, "reaction", where)
            reaction = Reaction(
                emoji=data.get("emoji") or None, message_external_id=data["message_id"]
            )
            return EventDraft(type="reaction", reaction=reaction, **common)
        if kind == "system":
            system = _required(item, "system", where)
            return EventDraft(type="system", system=_system(system), **common)
        if kind is None:
            raise PayloadError(f"{where}.type: missing")
        return self._unsupported(item, raw, kind, common)

    def _interactive(
        self,
        data: wa.Interactive,
        raw: dict[str, Any],
        reply_to: str | None,
        common: dict[str, Any],
        where: str,
    ) -> EventDraft:
        kind = data.get("type")
        part = {"interactive": raw.get("interactive")}
        if kind in ("button_reply", "list_reply"):
            reply: wa.Reply = _required(data, kind, f"{where}.interactive")
            if description := reply.get("description"):
                extra = {**(common.get("channel_data") or {}), "description": description}
                common = {**common, "channel_data": extra}
            postback = Postback(payload=reply["id"], title=reply.get("title"), reply_to=reply_to)
            return EventDraft(type="postback", postback=postback, **common)
        if kind == "nfm_reply":  # a WhatsApp Flow was completed
            flow: wa.FlowReply = _required(data, "nfm_reply", f"{where}.interactive")
            values = _flow_answers(flow, f"{where}.interactive.nfm_reply.response_json")
            if isinstance(values, str):  # this message alone cannot be read: say why, keep it
                return self._unsupported(None, part, "interactive:nfm_reply", common, values)
            form_id = str(values.pop("flow_token", flow.get("name") or "flow"))
            content = FormResponseContent(form_id=form_id, values=values)
            body = MessageBody(content=content, reply_to=reply_to)
            return EventDraft(type="message", message=body, **common)
        return self._unsupported(None, part, f"interactive:{kind}", common)

    def _unsupported(
        self,
        item: wa.Message | None,
        raw: dict[str, Any],
        kind: str,
        common: dict[str, Any],
        reason: str | None = None,
    ) -> EventDraft:
        """A message the gateway cannot represent, kept with the part as received."""
        error = self._event_error(item.get("errors") if item else None)
        if reason is None:
            title = error.title if error and error.title else None
            reason = title or f"message type {kind!r} is not supported"
            if error and error.detail:
                reason = f"{reason}: {error.detail}"
        unsupported = item.get("unsupported") if item else None
        provider_type = (unsupported.get("type") if unsupported else None) or kind
        data = {**(common.get("channel_data") or {}), "message": raw}
        return EventDraft(
            type="unsupported",
            unsupported=Unsupported(provider_type=provider_type, reason=reason),
            **{**common, "channel_data": data},
        )

    def _status(
        self,
        item: wa.Status,
        raw: dict[str, Any],
        to: _Addressing,
        contacts: dict[str, wa.Contact],
        where: str,
    ) -> ParsedEvent:
        # A send to a BSUID is reported with `recipient_user_id` (and `recipient_id` only when
        # Meta may share the phone number): BSUID docs, "Status messages webhooks".
        recipient_id = item.get("recipient_id")
        recipient = _user(recipient_id, item.get("recipient_user_id"), contacts)
        if item.get("recipient_type") == "group" and recipient_id:
            # A send to a group is reported with the group as `recipient_id` and
            # `recipient_type: group` (Group messaging: "Group message sent example").
            recipient = Party(id=recipient_id)
        common: dict[str, Any] = {
            "channel": to.channel,
            "external_id": item["id"],
            "timestamp": _timestamp(item.get("timestamp"), f"{where}.timestamp"),
            "sender": to.business,
            "recipient": recipient or Party(id=""),
        }
        extras = {k: raw[k] for k in _STATUS_EXTRAS if k in raw}
        if extras:
            common["channel_data"] = extras
        key = status_key(raw)
        state = item.get("status")
        if state not in _STATES:
            reason = f"status {state!r} is not tracked"
            unsupported = Unsupported(provider_type=f"status:{state}", reason=reason)
            return ParsedEvent(
                EventDraft(type="unsupported", unsupported=unsupported, **common), key
            )
        error = self._event_error(item.get("errors"))
        status = Status(external_id=item["id"], state=state, error=error)
        return ParsedEvent(EventDraft(type="status", status=status, **common), key)

    def _event_error(self, errors: list[wa.Error] | None) -> EventError | None:
        if not errors:
            return None
        first = errors[0]
        code = first.get("code")
        data = first.get("error_data")
        return EventError(
            code=str(code),
            title=first.get("title") or first.get("message"),
            detail=data.get("details") if data else None,
            retryable=code is not None and self.category(code) == "retry",
        )


class _Addressing:
    """The channel instance a change is for, and the business number as a party."""

    __slots__ = ("business", "channel")

    def __init__(self, channel: ChannelRef, business: Party) -> None:
        self.channel = channel
        self.business = business


@functools.lru_cache(maxsize=64)
def _business(number: str | None, shown: str | None) -> Party:
    """The business number a change is for, as a party: the same for every webhook to a
    number, so built once (a Party costs 15k instructions, a tenth of reading a message)."""
    return Party(id=number or "", phone=_plus(shown))


def _value_error(
    error: wa.Error,
    raw: dict[str, Any],
    raw_entry: dict[str, Any],
    to: _Addressing,
    when: datetime,
) -> ParsedEvent:
    """An out-of-band error of the change (`value.errors[]`): a system event."""
    key = change_key("error", raw_entry, [to.business.id or None, raw])
    draft = EventDraft(
        type="system",
        channel=to.channel,
        timestamp=when,
        recipient=to.business,
        system=System(kind="error", text=error.get("title") or error.get("message")),
        channel_data={"errors": [raw]},
    )
    return ParsedEvent(draft, key)


def _required(item: Mapping[str, Any], name: str, where: str) -> Any:
    """`item[name]`, which the message's type says is there; PayloadError naming it if not."""
    value = item.get(name)
    if value is None:
        kind = "a list" if name == "contacts" else "an object"
        said = f"expected {kind}, got null" if name in item else "missing"
        raise PayloadError(f"{where}.{name}: {said}")
    return value


def _content(item: wa.Message, kind: str | None, where: str) -> AnyContent | None:
    """The message content of a text, media, location or contacts message; None otherwise."""
    if kind == "text":
        return TextContent(text=_required(item, "text", where)["body"])
    if kind in _MEDIA_TYPES:
        return _media(kind, _required(item, kind, where), f"{where}.{kind}")
    if kind == "location":
        loc: wa.Location = _required(item, "location", where)
        return LocationContent(
            latitude=loc["latitude"],
            longitude=loc["longitude"],
            name=loc.get("name"),
            address=loc.get("address"),
            url=loc.get("url"),
        )
    if kind == "contacts":
        return ContactsContent(contacts=_required(item, "contacts", where))
    return None


def _media(kind: str, item: wa.MediaObject, where: str) -> AnyContent:
    url = item.get("url") or item.get("link")
    media_id = item.get("id")
    if not url and media_id is None:  # without a link the media is known by its id alone
        raise PayloadError(f"{where}.id: missing")
    media = Media(
        provider_media_id=media_id,
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


def _system(system: wa.System) -> System:
    return System(
        kind=system.get("type") or "system",
        text=system.get("body"),
        # user_changed_user_id names the new BSUID in `user_id` and no phone number.
        # https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/system/
        new_id=system.get("wa_id") or system.get("new_wa_id") or system.get("user_id"),
    )


def _context_extras(context: wa.Context | None) -> dict[str, Any]:
    """What a reply's `context` says beyond the id it quotes, as far as it was sent."""
    if context is None:
        return {}
    fields: Mapping[str, Any] = context
    return {k: fields[k] for k in _CONTEXT_EXTRAS if k in fields}


def _referral(data: wa.Referral) -> Referral:
    source_type = data.get("source_type")
    return Referral(
        source="ad" if source_type == "ad" else source_type,
        source_type=source_type,
        source_id=data.get("source_id"),
        source_url=data.get("source_url"),
        headline=data.get("headline"),
        body=data.get("body"),
        media_url=data.get("image_url") or data.get("video_url"),
        click_id=data.get("ctwa_clid"),
    )


def _timestamp(value: Any, where: str) -> datetime:
    """A `timestamp`: Unix seconds as a string of digits (a number is read too)."""
    try:
        return epoch_seconds(int(value))
    except PayloadError as exc:  # out of range: before ValueError, which it is too
        raise PayloadError(f"{where}: {exc}") from None
    except (TypeError, ValueError, OverflowError):
        raise PayloadError(f"{where}: bad timestamp {value!r}") from None


def _entry_time(entry: dict[str, Any], received_at: datetime | None) -> datetime:
    """The entry's own time; else when the request arrived; the epoch only if neither is known."""
    value = entry.get("time")
    if value:
        try:
            return epoch_seconds(int(value))
        except (TypeError, ValueError, OverflowError, PayloadError):
            pass
    return received_at or datetime.fromtimestamp(0, UTC)


def _plus(number: str | None) -> str | None:
    if not number:
        return None
    return number if number.startswith("+") else "+" + number


def _is_phone(value: str) -> bool:
    """A wa_id that is a phone number: digits only (a BSUID has a period and letters)."""
    return value.isascii() and value.isdigit()


def _contacts_by_id(contacts: Iterable[wa.Contact]) -> dict[str, wa.Contact]:
    """`contacts[]` of a change by each id it carries: `wa_id` (when Meta shares the phone
    number) and `user_id` (the BSUID)."""
    found: dict[str, wa.Contact] = {}
    for contact in contacts:
        for key in (contact.get("wa_id"), contact.get("user_id")):
            if key:
                found[key] = contact
    return found


def _user(
    address: str | None, user_id: str | None, contacts: dict[str, wa.Contact]
) -> Party | None:
    """A WhatsApp user from a message's `from` / `from_user_id` (a status's `recipient_id` /
    `recipient_user_id`) and their `contacts[]` entry; None when neither id is there.

    `id` stays the phone number (wa_id) whenever Meta sends one, so people the gateway already
    knows keep their id; a user known only by a BSUID (a username hiding the number) gets the
    BSUID. The BSUID rides along as `user_id` in both cases, and `phone` is set only from a
    phone number, never from an id that is not one. A non-numeric `from` is a BSUID.
    """
    address, user_id = address or None, user_id or None
    contact = contacts.get(address or "") or contacts.get(user_id or "") or wa.Contact()
    if address and not _is_phone(address):
        address, user_id = None, user_id or address
    user_id = user_id or contact.get("user_id") or None
    wa_id = contact.get("wa_id") or ""
    phone = address or (wa_id if _is_phone(wa_id) else None)
    party_id = phone or user_id
    if party_id is None:
        return None
    profile = contact.get("profile") or wa.Profile()
    return Party(
        id=party_id,
        name=profile.get("name"),
        phone=_plus(phone),
        user_id=user_id,
        username=profile.get("username"),
    )


def _flow_answers(reply: wa.FlowReply, where: str) -> dict[str, Any] | str:
    """A completed Flow's answers, or why they cannot be read. Meta sends them as a string of
    JSON holding one object (flow_token and the Flow's fields).
    https://developers.facebook.com/docs/whatsapp/flows/reference/responsemsgwebhook
    """
    text = reply.get("response_json") or "{}"
    if not isinstance(text, str):
        return f"{where}: expected a string of JSON, got {json_kind(text)}"
    try:  # read as the webhook itself is: bounded nesting, no lone surrogates left
        values = json_codec.loads_bounded(text.encode(), MAX_JSON_DEPTH)
    except ValueError as exc:
        if "nested too deeply" in str(exc):
            return f"{where}: {exc}"
        return f"{where}: expected a JSON object, got text that is not JSON"
    if not isinstance(values, dict):
        return f"{where}: expected a JSON object, got {json_kind(values)}"
    return values
