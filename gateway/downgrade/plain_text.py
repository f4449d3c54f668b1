"""Plain-text rendering of any content: the last step of every downgrade, and the preview.

Choices are numbered so a reply such as "2" can be mapped back to its payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.schema.content import (
    Action,
    ButtonsContent,
    BuyAction,
    CallAction,
    CarouselContent,
    ContactsContent,
    FormContent,
    FormResponseContent,
    LinkAction,
    ListContent,
    LocationContent,
    LocationRequestAction,
    MediaContent,
    ShareAction,
    TemplateContent,
    TextContent,
    is_choice,
)
from gateway.schema.content import Content as AnyContent


def map_link(latitude: float, longitude: float) -> str:
    return f"https://maps.google.com/?q={latitude:.6f},{longitude:.6f}"


def action_line(action: Action) -> str:
    if isinstance(action, LinkAction):
        return f"{action.title}: {action.url}"
    if isinstance(action, CallAction):
        return f"{action.title}: {action.phone}"
    if isinstance(action, BuyAction):
        return f"{action.title} ({action.amount} {action.currency}): {action.url}"
    if isinstance(action, ShareAction):
        return f"{action.title}: {action.url}" if action.url else action.title
    if isinstance(action, LocationRequestAction):
        return f"{action.title} (share your location)"
    return action.title


def numbered(lines: list[str], start: int = 1) -> list[str]:
    return [f"{i}. {line}" for i, line in enumerate(lines, start)]


def to_text(content: AnyContent) -> str:
    """A faithful plain-text version of `content`; nothing the sender wrote is left out."""
    parts = _LINES[content.type](content)
    if content.quick_replies:
        parts += numbered([action_line(a) for a in content.quick_replies])
    return "\n".join(parts)


def _text(content: TextContent) -> list[str]:
    return [content.text]


def _location(content: LocationContent) -> list[str]:
    label = ", ".join(p for p in (content.name, content.address) if p)
    link = content.url or map_link(content.latitude, content.longitude)
    return [(label + "\n" if label else "") + link]


def _contacts(content: ContactsContent) -> list[str]:
    parts = []
    for contact in content.contacts:
        bits = [contact.name.formatted_name]
        bits += [p.phone for p in contact.phones] + [e.email for e in contact.emails]
        parts.append(" ".join(bits))
    return parts


def _buttons(content: ButtonsContent) -> list[str]:
    parts = [p for p in (content.header, content.text) if p]
    if content.media and content.media.url:
        parts.append(content.media.url)
    parts += numbered([action_line(a) for a in content.actions])
    if content.footer:
        parts.append(content.footer)
    return parts


def _list(content: ListContent) -> list[str]:
    parts = [p for p in (content.header, content.text) if p]
    items = [i for s in content.sections for i in s.items]
    parts += numbered([f"{i.title} - {i.description}" if i.description else i.title for i in items])
    if content.footer:
        parts.append(content.footer)
    return parts


def _carousel(content: CarouselContent) -> list[str]:
    parts = [content.text] if content.text else []
    lines = []
    for item in content.items:
        line = item.title + (f" - {item.description}" if item.description else "")
        links = [item.default_url] if item.default_url else []
        links += [action_line(a) for a in item.actions if not is_choice(a)]
        if item.media and item.media.url:
            links.append(item.media.url)
        lines.append(line + "".join(f"\n   {link}" for link in links))
    return parts + numbered(lines)


def _form(content: FormContent) -> list[str]:
    return [content.title] + ([content.text] if content.text else [])


def _form_response(content: FormResponseContent) -> list[str]:
    return [f"{k}: {v}" for k, v in content.values.items()]


def _template(content: TemplateContent) -> list[str]:
    return [to_text(content.fallback) if content.fallback else content.template.name]


def _media(content: MediaContent) -> list[str]:
    parts = [content.caption] if content.caption else []
    return [*parts, content.media.url or f"[{content.type}]"]


# Each content type's lines (quick replies are numbered after them, for every type).
_LINES: dict[str, Callable[[Any], list[str]]] = {
    "text": _text,
    "location": _location,
    "contacts": _contacts,
    "buttons": _buttons,
    "list": _list,
    "carousel": _carousel,
    "form": _form,
    "form_response": _form_response,
    "template": _template,
    **{kind: _media for kind in ("image", "video", "audio", "file", "sticker")},
}
