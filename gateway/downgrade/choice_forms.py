"""Choices: buttons, a list's rows offered as choices, quick replies that found no room.

The forms to try, richest first (CHOICES), each with the capability it needs; docs/architecture.md
("Downgrade preferences") shows the table. An `Offer` is what is to be shown: the options
(choices with a payload, and other actions kept as they are) with their text around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.downgrade.choices import CHOOSE
from gateway.downgrade.plan import image_part
from gateway.downgrade.profile import CHOICE_KINDS
from gateway.downgrade.table import Form, always
from gateway.schema.content import (
    Action,
    ButtonsContent,
    ListContent,
    ListItem,
    ListSection,
    Media,
    ReplyAction,
    TextContent,
    payload_of,
)

if TYPE_CHECKING:
    from gateway.downgrade.engine import Builder


class Option:
    """One thing to pick: a choice (payload) or another action kept as it is."""

    __slots__ = ("action", "description", "kind", "payload", "title")

    def __init__(
        self,
        title: str,
        payload: str | None = None,
        description: str | None = None,
        action: Action | None = None,
    ) -> None:
        self.title = title
        self.payload = payload
        self.description = description
        self.action = action
        self.kind: str = action.type if action is not None else "reply"


class Offer:
    """Options to show with their text; `reason` says why they are not in their own native
    form already (a list's rows offered as choices, quick replies that found no room).
    A plain class with one pass over the options: every send with choices makes one."""

    __slots__ = (
        "choices",
        "described",
        "footer",
        "header",
        "kinds",
        "longest",
        "media",
        "options",
        "reason",
        "source",
        "split",
        "text",
    )

    def __init__(
        self,
        source: str,
        text: str,
        options: list[Option],
        header: str | None = None,
        footer: str | None = None,
        media: Media | None = None,
        reason: str | None = None,
    ) -> None:
        self.source, self.text, self.options = source, text, options
        self.header, self.footer, self.media, self.reason = header, footer, media, reason
        kinds: set[str] = set()
        choices: list[Option] = []  # the options with a payload
        described = False
        longest = 0  # the longest payload
        for option in options:
            kinds.add(option.kind)
            if option.description:
                described = True
            payload = option.payload
            if payload is not None:
                choices.append(option)
                if len(payload) > longest:
                    longest = len(payload)
        self.kinds, self.choices, self.described, self.longest = kinds, choices, described, longest
        self.split: tuple[frozenset[str], list[Option], list[Option]] | None = None

    @property
    def framed(self) -> str:
        return "\n".join(p for p in (self.header, self.text, self.footer) if p)

    def others(self, kinds: frozenset[str]) -> tuple[list[Option], list[Option]]:
        """The options of these kinds, and the rest (kept: a form's test and its build ask
        the same question)."""
        if self.split is None or self.split[0] is not kinds:
            native: list[Option] = []
            rest: list[Option] = []
            for option in self.options:
                (native if option.kind in kinds else rest).append(option)
            self.split = (kinds, native, rest)
        return self.split[1], self.split[2]


def _payload_too_long(b: Builder, offer: Offer) -> bool:
    return offer.longest > b.profile.payload_max


def _numbered_for_payload(b: Builder, offer: Offer) -> None:
    b.note(offer.source, "numbered_text", b.payload_too_long(offer.longest))
    b.numbered(offer.framed, offer.choices)


def _buttons_may_show(b: Builder, offer: Offer) -> bool:
    buttons = b.profile.buttons
    return buttons is not None and not offer.described and (offer.media is None or buttons.media)


def _all_buttons(b: Builder, offer: Offer) -> bool:
    buttons = b.profile.buttons
    return (
        buttons is not None
        and _buttons_may_show(b, offer)
        and len(offer.options) <= buttons.max_actions
        and offer.kinds <= buttons.kinds
    )


def _build_buttons(b: Builder, offer: Offer) -> None:
    if offer.reason:
        b.note(offer.source, "buttons", offer.reason)
    b.native_buttons(offer.text, offer.options, offer.header, offer.footer, offer.media)


def _quick_replies_with_actions(b: Builder, offer: Offer) -> bool:
    """Choices and other actions quick replies can all carry (a location request)."""
    quick = b.profile.quick_replies
    return (
        quick is not None
        and not offer.described
        and offer.media is None
        and len(offer.options) <= quick.max_items
        and offer.kinds <= quick.kinds
        and bool(offer.kinds - CHOICE_KINDS)
    )


def _build_quick_replies_with_actions(b: Builder, offer: Offer) -> None:
    reason = offer.reason or b.why_not_buttons(offer.options, offer.kinds, offer.media)
    b.note(offer.source, "quick_replies", reason)
    b.text(offer.framed or CHOOSE)
    b.attach_quick_replies(
        [
            o.action or ReplyAction(title=o.title, payload=o.payload or o.title)
            for o in offer.options
        ]
    )


def _choices_as_buttons(b: Builder, offer: Offer) -> bool:
    """Every choice a button; the actions a button cannot be (a call where there are no call
    buttons) become lines of text under them."""
    buttons = b.profile.buttons
    if buttons is None or not _buttons_may_show(b, offer):
        return False
    native, others = offer.others(buttons.kinds)
    return (
        bool(native)
        and len(native) <= buttons.max_actions
        and all(o.payload is None for o in others)
    )


def _build_choices_as_buttons(b: Builder, offer: Offer) -> None:
    buttons = b.profile.buttons
    assert buttons is not None
    native, others = offer.others(buttons.kinds)
    extra: list[str] = []
    asks: list[Action] = []  # native location requests, sent after the buttons
    for option in others:
        action = option.action
        assert action is not None
        if action.type == "location_request" and b.profile.location_request:
            asks.append(action)
            continue
        b.note(action.type, "text", f"{b.channel} buttons cannot be {action.type} actions")
        extra += b.action_text(action)
    if offer.reason:
        b.note(offer.source, "buttons", offer.reason)
    body = "\n".join(p for p in (offer.text, *extra) if p)
    b.native_buttons(body or CHOOSE, native, offer.header, offer.footer, offer.media)
    for action in asks:
        b.action_text(action)


def _lead_in(b: Builder, offer: Offer) -> tuple[str, str]:
    """What every text-borne form starts with: why the choices are not buttons, the media
    part, and the body with other actions as lines of text."""
    why = offer.reason or b.why_not_buttons(offer.options, offer.kinds, offer.media)
    if offer.described:
        hidden = b.hidden_by_descriptions(offer.options, offer.kinds, offer.media)
        why = f"{why}; {hidden}" if hidden else why
    if offer.media is not None:
        b.add(image_part(offer.media))
    lines: list[str] = []
    for option in offer.options:
        if option.payload is None and option.action is not None:
            lines += b.action_text(option.action)
    body = "\n".join(p for p in (offer.header, offer.text, *lines, offer.footer) if p)
    return why, body


def _choice_quick_replies(b: Builder, offer: Offer) -> bool:
    quick = b.profile.quick_replies
    count = len(offer.choices)
    return quick is not None and 0 < count <= quick.max_items and not offer.described


def _build_choice_quick_replies(b: Builder, offer: Offer) -> None:
    why, body = _lead_in(b, offer)
    b.note(offer.source, "quick_replies", why)
    b.text(body)
    b.attach_quick_replies(
        [ReplyAction(title=o.title, payload=o.payload or o.title) for o in offer.choices]
    )


def _choice_list(b: Builder, offer: Offer) -> bool:
    native = b.profile.list
    count = len(offer.choices)
    return native is not None and 0 < count <= native.max_rows and count == len(offer.options)


def _build_choice_list(b: Builder, offer: Offer) -> None:
    native = b.profile.list
    assert native is not None
    why, body = _lead_in(b, offer)
    b.note(offer.source, "list", why)
    rows = [b.row(ListItem(title=o.title, payload=o.payload or o.title)) for o in offer.choices]
    text = b.body(body or CHOOSE, native.text_max)
    b.result.parts.append(ListContent(text=text, sections=[ListSection(items=rows)]))


def _build_numbered(b: Builder, offer: Offer) -> None:
    why, body = _lead_in(b, offer)
    choices = offer.choices
    b.note(offer.source, "numbered_text" if choices else "text", why)
    b.numbered(body, choices)


_PAYLOAD_TOO_LONG = Form(
    "numbered_text", "payloads within payload_max", _payload_too_long, _numbered_for_payload
)
_BUTTONS = Form("buttons", "buttons: count, kinds, media", _all_buttons, _build_buttons)
_QUICK_WITH_ACTIONS = Form(
    "quick_replies",
    "quick_replies: count, kinds (a location request)",
    _quick_replies_with_actions,
    _build_quick_replies_with_actions,
)
_BUTTONS_AND_LINES = Form(
    "buttons", "buttons for every choice", _choices_as_buttons, _build_choices_as_buttons
)
_QUICK_REPLIES = Form(
    "quick_replies", "quick_replies: count", _choice_quick_replies, _build_choice_quick_replies
)
_LIST = Form("list", "list: rows, choices only", _choice_list, _build_choice_list)
_NUMBERED = Form("numbered_text", "nothing", always, _build_numbered)

# A payload no native element carries goes as numbered text first of all: the typed answer
# maps back to it (router/numbered_answers.py).
CHOICES: tuple[Form[Offer], ...] = (
    _PAYLOAD_TOO_LONG,
    _BUTTONS,
    _QUICK_WITH_ACTIONS,
    _BUTTONS_AND_LINES,
    _QUICK_REPLIES,
    _LIST,
    _NUMBERED,
)
# A list's rows as choices once the native list could not carry them: no list again.
LIST_AS_CHOICES: tuple[Form[Offer], ...] = tuple(f for f in CHOICES if f is not _LIST)


# --- quick replies attached to any content -------------------------------------------------
@dataclass
class Attached:
    """Quick replies a content carries, and what to call them in a downgrade."""

    actions: list[Action]
    source: str  # "text quick_replies", "buttons quick_replies"...


def _quick_replies_fit(b: Builder, attached: Attached) -> bool:
    quick, actions = b.profile.quick_replies, attached.actions
    return (
        quick is not None
        and len(actions) <= quick.max_items
        and {a.type for a in actions} <= quick.kinds
        and not b.long_payload([payload_of(a) for a in actions])
    )


def _keyboard_shared(b: Builder) -> int:
    """How many of the channel's one keyboard's buttons the last part's buttons take."""
    last = b.result.parts[-1] if b.result.parts else None
    if b.profile.shared_keyboard and isinstance(last, ButtonsContent):
        return len(last.actions)
    return 0


def _room_on_keyboard(b: Builder, attached: Attached) -> bool:
    quick = b.profile.quick_replies
    return (
        _quick_replies_fit(b, attached)
        and quick is not None
        and _keyboard_shared(b) + len(attached.actions) <= quick.max_items
    )


def _attach(b: Builder, attached: Attached) -> None:
    b.attach_quick_replies(attached.actions)


def _numbered_for_keyboard(b: Builder, attached: Attached) -> None:
    """One keyboard holds the buttons and the quick replies: no room for both."""
    quick = b.profile.quick_replies
    assert quick is not None
    reason = f"{b.channel}'s keyboard holds {quick.max_items} buttons in all"
    b.note(attached.source, "numbered_text", reason)
    b.numbered("", [o for o in b.options(attached.actions) if o.payload is not None])


def _attached_as_choices(b: Builder, attached: Attached) -> None:
    actions, quick = attached.actions, b.profile.quick_replies
    if quick is None:
        reason = f"{b.channel} has no quick replies"
    elif len(actions) > quick.max_items:
        reason = f"{len(actions)} quick replies exceed {b.channel}'s {quick.max_items}"
    else:
        cannot = ", ".join(sorted({a.type for a in actions} - quick.kinds))
        reason = f"{b.channel} quick replies cannot be {cannot}"
    options = b.options(actions)
    last = b.result.parts[-1] if b.result.parts else None
    if isinstance(last, TextContent):
        # Text followed by choices reads best as one message: the text, then the choices.
        b.result.parts.pop()
        b.offer(attached.source, last.text, options, reason=reason)
        return
    b.offer(attached.source, "", options, reason=reason)


QUICK_REPLIES: tuple[Form[Attached], ...] = (
    Form(
        "quick_replies",
        "quick_replies: count, kinds, payloads; room on a shared keyboard",
        _room_on_keyboard,
        _attach,
    ),
    Form(
        "numbered_text",
        "quick_replies, but a shared keyboard full",
        _quick_replies_fit,
        _numbered_for_keyboard,
    ),
    Form("choices", "see CHOICES", always, _attached_as_choices),
)
