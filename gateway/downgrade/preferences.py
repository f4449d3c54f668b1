"""Preference tables: for each content type, the forms to try, richest first.

`first_fit` (table.py) walks a table and builds the first form whose capability the channel
has; every table ends with a form that always fits (text, or a refusal the send reports). The
tables are documented in docs/architecture.md ("Downgrade preferences"); the choices' table is
in choice_forms.py, the carousel's in carousel.py.
Every form's `build` records the downgrade it makes, so a plan says what changed and why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.downgrade import carousel
from gateway.downgrade.choice_forms import CHOICES, LIST_AS_CHOICES, Offer, Option
from gateway.downgrade.plain_text import map_link, to_text
from gateway.downgrade.table import Form, PlanError, always, first_fit
from gateway.schema.content import (
    ButtonsContent,
    ContactsContent,
    ListContent,
    ListSection,
    LocationContent,
    MediaContent,
    TemplateContent,
    TextContent,
)

if TYPE_CHECKING:
    from gateway.downgrade.engine import Builder

# Media kinds as a reason names them ("messenger images have no caption").
_PLURALS = {"audio": "audio messages"}


def _native_list(b: Builder, content: ListContent) -> bool:
    native = b.profile.list
    rows = [item for section in content.sections for item in section.items]
    return (
        native is not None
        and len(rows) <= native.max_rows
        and not b.long_payload([item.payload for item in rows])
    )


def _build_native_list(b: Builder, content: ListContent) -> None:
    native = b.profile.list
    assert native is not None
    sections = content.sections
    if len(sections) > native.max_sections:
        b.note(
            "list sections",
            "one section",
            f"{len(sections)} sections exceed {b.channel}'s {native.max_sections}",
        )
        sections = [ListSection(items=[item for section in sections for item in section.items])]
    text = b.body(content.text, native.text_max)
    b.result.parts.append(
        ListContent(
            text=text,
            button=b.label(content.button, native.button_max, "list button"),
            header=b.optional(content.header, native.header_max, "list header"),
            footer=b.optional(content.footer, native.footer_max, "list footer"),
            sections=[
                ListSection(
                    title=b.label(s.title, native.section_title_max, "section title")
                    if s.title
                    else None,
                    items=[b.row(item) for item in s.items],
                )
                for s in sections
            ],
        )
    )


def _list_as_choices(b: Builder, content: ListContent) -> None:
    native = b.profile.list
    rows = [item for section in content.sections for item in section.items]
    reason = b.long_payload([item.payload for item in rows]) or (
        f"{len(rows)} rows exceed {b.channel}'s {native.max_rows}"
        if native
        else f"{b.channel} has no list"
    )
    options = [Option(i.title, i.payload, i.description) for i in rows]
    text = "\n".join(p for p in (content.header, content.text) if p)
    offer = Offer("list", text, options, footer=content.footer, reason=reason)
    first_fit(b, offer, LIST_AS_CHOICES)


def _buttons_as_choices(b: Builder, content: ButtonsContent) -> None:
    offer = Offer(
        "buttons",
        content.text,
        b.options(list(content.actions)),
        header=content.header,
        footer=content.footer,
        media=content.media,
    )
    first_fit(b, offer, CHOICES)


def _has(capability: str) -> Callable[[Builder, Any], bool]:
    def fits(b: Builder, _content: object) -> bool:
        return bool(getattr(b.profile, capability))

    return fits


def _as_it_is(b: Builder, content: Any) -> None:
    b.result.parts.append(content.model_copy(update={"quick_replies": []}))


def _native_media(b: Builder, content: MediaContent) -> None:
    caption, limit = content.caption, b.profile.caption_max
    if not caption or len(caption) <= limit:
        b.result.parts.append(content.model_copy(update={"quick_replies": []}))
        return
    if limit == 0:  # the channel's media carry no caption at all (Messenger)
        reason = f"{b.channel} {_PLURALS.get(content.type, content.type + 's')} have no caption"
    else:
        reason = f"longer than {limit} characters"
    b.note("caption", "text", reason)
    b.result.parts.append(content.model_copy(update={"caption": None, "quick_replies": []}))
    b.text(caption)


def _has_media_kind(b: Builder, content: MediaContent) -> bool:
    return content.type in b.profile.media


def _media_has_url(_b: Builder, content: MediaContent) -> bool:
    return bool(content.media.url)


def _media_as_link(b: Builder, content: MediaContent) -> None:
    b.note(content.type, "text_link", f"{b.channel} cannot send {content.type}")
    b.text("\n".join(p for p in (content.caption, content.media.url) if p))


def _refuse_media_id(b: Builder, content: MediaContent) -> None:
    raise PlanError(f"{content.type} has only a provider media id, which {b.channel} cannot use")


def _location_as_link(b: Builder, content: LocationContent) -> None:
    b.note("location", "text_link", f"{b.channel} cannot send a location pin")
    label = ", ".join(p for p in (content.name, content.address) if p)
    link = content.url or map_link(content.latitude, content.longitude)
    b.text(f"{label}\n{link}" if label else link)


def _contacts_as_text(b: Builder, content: ContactsContent) -> None:
    b.note("contacts", "text", f"{b.channel} cannot send contact cards")
    b.text(to_text(content.model_copy(update={"quick_replies": []})))


def _has_fallback(_b: Builder, content: TemplateContent) -> bool:
    return content.fallback is not None


def _template_fallback(b: Builder, content: TemplateContent) -> None:
    fallback = content.fallback
    assert fallback is not None
    b.note("template", fallback.type, f"{b.channel} has no templates")
    b.add(fallback)
    b.quick_replies(list(fallback.quick_replies), fallback.type)


def _refuse_template(b: Builder, _content: TemplateContent) -> None:
    raise PlanError(f"{b.channel} has no templates and the template has no fallback")


def _refuse_form(_b: Builder, _content: object) -> None:
    raise PlanError("a form is sent as a conversation, one field at a time")


def _as_text(b: Builder, content: Any) -> None:
    b.text(content.text if type(content) is TextContent else to_text(content))


_LIST_NATIVE = Form(
    "native", "list: rows, payloads within payload_max", _native_list, _build_native_list
)

_MEDIA: tuple[Form[Any], ...] = (
    Form(
        "native",
        "media: the kind (caption_max, else the caption as text)",
        _has_media_kind,
        _native_media,
    ),
    Form("text_link", "a URL (not a provider media id)", _media_has_url, _media_as_link),
    Form("refused", "nothing", always, _refuse_media_id),
)

# Every content type's table, richest form first. Quick replies attached to any content have
# theirs in the engine (`Builder.quick_replies`): native, else numbered, else as choices.
PREFERENCES: dict[str, tuple[Form[Any], ...]] = {
    "text": (Form("text", "nothing (split at text_max)", always, _as_text),),
    "buttons": (Form("choices", "see CHOICES", always, _buttons_as_choices),),
    "list": (_LIST_NATIVE, Form("choices", "see LIST_AS_CHOICES", always, _list_as_choices)),
    "carousel": (Form("carousel", "see carousel.CAROUSEL", always, carousel.plan_carousel),),
    "location": (
        Form("native", "location", _has("location"), _as_it_is),
        Form("text_link", "nothing", always, _location_as_link),
    ),
    "contacts": (
        Form("native", "contacts", _has("contacts"), _as_it_is),
        Form("text", "nothing", always, _contacts_as_text),
    ),
    "template": (
        Form("native", "templates", _has("templates"), _as_it_is),
        Form("fallback", "the template's fallback content", _has_fallback, _template_fallback),
        Form("refused", "nothing", always, _refuse_template),
    ),
    "form": (
        Form("native", "forms (a channel that shows a form whole: web)", _has("forms"), _as_it_is),
        Form("refused", "nothing: a form is a conversation", always, _refuse_form),
    ),
    "form_response": (Form("text", "nothing", always, _as_text),),
    **{kind: _MEDIA for kind in ("image", "video", "audio", "file", "sticker")},
}
