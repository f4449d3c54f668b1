"""Capability profiles: what one channel can show natively, as data.

Each adapter declares a `Profile` beside its limits (with the provider doc link next to each
number); the downgrade engine reads nothing else about a channel. `None` for a feature means
"not native": the engine renders it another way. Operators can narrow a profile per channel
instance in config (`capabilities:`), never widen it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from gateway.schema.content import CHOICE_TYPES

# Actions the engine knows; a feature lists the kinds it can carry natively.
CHOICE_KINDS = frozenset(CHOICE_TYPES)


@dataclass(frozen=True)
class ButtonsProfile:
    max_actions: int
    label_max: int
    text_max: int
    kinds: frozenset[str] = CHOICE_KINDS
    header_max: int | None = None  # None: no header; the engine puts it in the text
    footer_max: int | None = None
    media: bool = False  # an image or video header


@dataclass(frozen=True)
class QuickRepliesProfile:
    max_items: int
    label_max: int
    kinds: frozenset[str] = CHOICE_KINDS


@dataclass(frozen=True)
class ListProfile:
    max_rows: int
    max_sections: int
    row_title_max: int
    row_description_max: int
    section_title_max: int
    button_max: int
    text_max: int
    header_max: int | None = None
    footer_max: int | None = None


@dataclass(frozen=True)
class CarouselProfile:
    max_cards: int
    title_max: int
    description_max: int
    max_actions: int
    label_max: int
    kinds: frozenset[str] = CHOICE_KINDS | {"link"}
    min_cards: int = 1
    media_required: bool = False
    same_action_count: bool = False  # LINE: every column has as many actions as the others
    # The rules WhatsApp's media carousel adds (all off elsewhere):
    # cards carry choices or links, not both: a choice card's links become lines of its text
    mixed_actions: bool = True
    max_link_buttons: int | None = None  # links on a card without choices (None: max_actions)
    min_actions: int = 0  # every card needs at least this many buttons
    same_action_kinds: bool = False  # every card carries the same kinds of actions, in order
    media_kinds: frozenset[str] | None = None  # image, video (None: any media)
    same_media_kind: bool = False  # every card's media of one kind
    default_url: bool = True  # a card can open a link when tapped; else it is a line of text
    # The carousel carries the message's text (a required body) within this many characters;
    # None: the text goes as a message of its own before the carousel.
    text_max: int | None = None
    # The carried text must be there (WhatsApp's body): a carousel without text gets one.
    text_required: bool = True


@dataclass(frozen=True)
class Profile:
    channel: str
    text_max: int
    payload_max: int = 1000
    media: frozenset[str] = frozenset()  # image, video, audio, file, sticker
    location: bool = False
    contacts: bool = False
    buttons: ButtonsProfile | None = None
    quick_replies: QuickRepliesProfile | None = None
    list: ListProfile | None = None
    carousel: CarouselProfile | None = None
    location_request: bool = False  # a native "send your location" prompt
    # A form shown whole, answered in one submission (the web channel); else the dispatcher
    # asks its fields one at a time as a conversation (gateway/forms.py).
    forms: bool = False
    caption_max: int = 1024  # 0: media carry no caption; it goes as a text of its own
    templates: bool = False
    window_hours: float | None = None  # free-form messages only this long after the user's last
    messages_per_request: int = 1
    # Buttons and quick replies are one keyboard (Viber): together at most quick_replies.max_items.
    shared_keyboard: bool = False
    notes: dict[str, str] = field(default_factory=dict, compare=False)

    def narrowed(self, overrides: dict[str, Any]) -> Profile:
        """This profile with features turned off (`carousel: false`) or counts lowered."""
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            current = getattr(self, name)
            if isinstance(current, bool):
                changes[name] = current and bool(value)
            elif isinstance(current, frozenset) and isinstance(value, list | tuple | set):
                changes[name] = current & frozenset(value)
            elif value is False:
                changes[name] = frozenset() if isinstance(current, frozenset) else None
            elif (
                isinstance(value, int) and isinstance(current, int) and not isinstance(value, bool)
            ):
                changes[name] = min(value, current)
            elif (
                isinstance(value, dict)
                and current is not None
                and hasattr(current, "__dataclass_fields__")
            ):
                known = {f.name for f in fields(current)}
                changes[name] = replace(
                    current,
                    # A limit this channel does not have (None: no such element) stays so.
                    **{
                        k: min(v, getattr(current, k))
                        for k, v in value.items()
                        if k in known and getattr(current, k) is not None
                    },
                )
        return replace(self, **changes)
