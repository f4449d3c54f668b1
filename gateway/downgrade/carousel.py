"""Carousels: the native carousel, one card per item, or numbered text (engine.py's order).

The native form is chosen when every card fits what the channel's carousel carries; a channel
whose cards must be alike (WhatsApp's media carousel) first gets a choice card's links and a
card's tap link as lines of its text. Functions of the engine's builder: they record
downgrades and add parts exactly as its methods do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.downgrade.choices import CHOOSE, Choice, numbered_line, reply_hint
from gateway.downgrade.media import media_kind
from gateway.downgrade.plain_text import action_line
from gateway.downgrade.plan import built, card_part, image_part
from gateway.downgrade.profile import CHOICE_KINDS, CarouselProfile
from gateway.downgrade.table import Form, always, first_fit
from gateway.schema.content import (
    Action,
    BuyAction,
    CarouselContent,
    CarouselItem,
    LinkAction,
    PostbackAction,
    ReplyAction,
    is_choice,
    payload_of,
)

if TYPE_CHECKING:
    from gateway.downgrade.engine import Builder


@dataclass
class _Carousel:
    """A carousel and what the native form would carry: its cards (payment buttons as URL
    buttons, links moved to card text where the cards need), why it cannot (None: it can),
    and whether every card fits its lengths already."""

    content: CarouselContent
    items: list[CarouselItem]
    moved: list[str]  # what became card text, noted once the native form is chosen
    problem: str | None
    fitting: bool


def plan_carousel(b: Builder, content: CarouselContent) -> None:
    first_fit(b, _for_native(b, content), CAROUSEL)


def _for_native(b: Builder, content: CarouselContent) -> _Carousel:
    native = b.profile.carousel
    items = content.items
    if native is not None and "buy" in {a.type for i in items for a in i.actions}:
        kinds = native.kinds  # payment buttons as URL buttons on the native carousel's cards
        items = [
            item.model_copy(update={"actions": [b.adapt(a, kinds) for a in item.actions]})
            if any(isinstance(a, BuyAction) for a in item.actions)
            else item
            for item in items
        ]
    moved: list[str] = []
    problem = None
    if native is not None and (not native.mixed_actions or not native.default_url):
        items, moved, problem = links_as_card_text(b, items)
    fitting = False
    if problem is None:
        problem, fitting = carousel_problem(b, items)
    return _Carousel(content, items, moved, problem, fitting)


def _native_fits(b: Builder, attempt: _Carousel) -> bool:
    return attempt.problem is None and b.profile.carousel is not None


def _build_native(b: Builder, attempt: _Carousel) -> None:
    for what in attempt.moved:
        b.note(what, "text", _CARD_TEXT_REASONS[what].format(channel=b.channel))
    native_carousel(b, attempt.content.text, attempt.items, attempt.fitting)


def _cards_fit(b: Builder, attempt: _Carousel) -> bool:
    return b.profile.buttons is not None and all(
        fits_card(b, item) for item in attempt.content.items
    )


def _build_cards(b: Builder, attempt: _Carousel) -> None:
    content = attempt.content
    b.note("carousel", "cards", attempt.problem or f"{b.channel} has no carousel")
    if content.text:
        b.text(content.text)
    for item in content.items:
        options = b.options(list(item.actions))
        opens = None if _linked(item) else item.default_url
        body = "\n".join(p for p in (item.title, item.description, opens) if p)
        b.offer("card", body, options, media=item.media)


def _build_numbered(b: Builder, attempt: _Carousel) -> None:
    b.note("carousel", "numbered_text", attempt.problem or f"{b.channel} has no carousel")
    numbered_carousel(b, attempt.content)


def native_carousel(b: Builder, text: str | None, items: list[CarouselItem], fitting: bool) -> None:
    native = b.profile.carousel
    assert native is not None
    count = -(-len(items) // native.max_cards)
    if count > 1:
        b.note(
            "carousel",
            f"{count} carousels",
            f"{len(items)} cards exceed {b.channel}'s {native.max_cards}",
        )
    step = native.max_cards
    groups = [items[i : i + step] for i in range(0, len(items), step)]
    if len(groups[-1]) < native.min_cards:  # too few left for a last carousel: even sizes
        size, extra = divmod(len(items), count)
        bounds = [i * size + min(i, extra) for i in range(count + 1)]
        groups = [items[bounds[i] : bounds[i + 1]] for i in range(count)]
    body: str | None = None
    if native.text_max is None:
        if text:
            b.text(text)
    elif text or native.text_required:  # the carousel's own body
        body = b.body(text or CHOOSE, native.text_max)
    for group in groups:
        b.result.parts.append(
            built(
                CarouselContent,
                type="carousel",
                text=body,
                quick_replies=[],
                items=group if fitting else [card(b, i) for i in group],
            )
        )


def links_as_card_text(
    b: Builder, items: list[CarouselItem]
) -> tuple[list[CarouselItem], list[str], str | None]:
    """Links a card cannot carry as buttons (beside choices, or its tap link) become lines
    of its description: the cards, what moved, or why the cards cannot take them."""
    native = b.profile.carousel
    assert native is not None
    moved: set[str] = set()
    cards: list[CarouselItem] = []
    unmixed = not native.mixed_actions
    for item in items:
        lines: list[str] = []
        actions = item.actions
        if unmixed:
            kept: list[Action] = []
            choices = False
            for action in actions:
                if type(action) is LinkAction:  # final: cheaper than a failing isinstance
                    lines.append(action_line(action))
                else:
                    choices = choices or is_choice(action)
                    kept.append(action)
            if lines and choices:
                moved.add("link")
                actions = kept
            else:
                lines = []
        if item.default_url and not native.default_url and not _linked(item):
            moved.add("default_url")
            lines.append(item.default_url)
        if not lines:
            cards.append(item)
            continue
        links = "\n".join(lines)
        description = f"{item.description}\n{links}" if item.description else links
        if len(description) > native.description_max:
            limit = native.description_max
            return items, [], f"a card's text and links exceed {b.channel}'s {limit}"
        cards.append(card_part(item, description, actions))
    return cards, sorted(moved), None


def carousel_problem(b: Builder, items: list[CarouselItem]) -> tuple[str | None, bool]:
    """Why the native carousel cannot carry these cards (None when it can), and whether
    every card fits its lengths already. One pass over the cards, then the rules over what it
    found: this runs for every carousel sent."""
    native = b.profile.carousel
    if native is None:
        return f"{b.channel} has no carousel", False
    if len(items) < native.min_cards:
        return f"{b.channel} carousels need at least {native.min_cards} cards", False
    survey = _Survey(native, items)
    if survey.longest > b.profile.payload_max:
        return b.payload_too_long(survey.longest), survey.fitting
    problem = _card_problem(b.channel, native, items, survey.cards) or survey.mismatch(b.channel)
    return problem, survey.fitting


class _Survey:
    """What the native carousel's rules ask about the cards, gathered in one pass: per card,
    its action count, how many are choices, and whether the carousel carries every kind; for
    all of them, whether they fit the lengths, the longest payload, and what must match across
    cards. A loop over every card and action of every send: profile fields read into locals."""

    def __init__(self, native: CarouselProfile, items: list[CarouselItem]) -> None:
        self.native = native
        kinds, label_max, by_kind = native.kinds, native.label_max, native.same_action_kinds
        title_max, description_max = native.title_max, native.description_max
        media_kinds_wanted = native.media_kinds is not None or native.same_media_kind
        fitting = True  # every title, description and label within its length
        longest = 0
        cards: list[tuple[int, int, bool]] = []  # (actions, choices, all native kinds)
        action_counts: set[int] = set()
        shapes: set[str] = set()  # each card's kinds of actions in order, choices alike
        media_kinds: set[str] = set()
        for item in items:
            description = item.description
            if len(item.title) > title_max or (description and len(description) > description_max):
                fitting = False
            native_kinds = True
            choices = 0
            shape = ""
            for action in item.actions:
                kind: str = action.type
                if len(action.title) > label_max:
                    fitting = False
                if kind not in kinds:
                    native_kinds = False
                if kind in CHOICE_KINDS:
                    choices += 1
                    kind = "choice"
                if by_kind:
                    shape += kind + ","
                payload = payload_of(action)
                if payload and len(payload) > longest:
                    longest = len(payload)
            count = len(item.actions)
            cards.append((count, choices, native_kinds))
            action_counts.add(count)
            if by_kind:
                shapes.add(shape)
            if item.media is not None and media_kinds_wanted:
                media_kinds.add(media_kind(item.media))
        self.fitting, self.longest, self.cards = fitting, longest, cards
        self.action_counts, self.shapes, self.media_kinds = action_counts, shapes, media_kinds

    def mismatch(self, channel: str) -> str | None:
        """Why the cards, each fine alone, do not go together (None when they do)."""
        native = self.native
        if native.same_action_count and len(self.action_counts) > 1:
            return f"{channel} carousel cards must all have as many actions"
        if native.same_action_kinds and len(self.shapes) > 1:
            return f"{channel} carousel cards must all have the same buttons"
        if native.media_kinds is not None and not self.media_kinds <= native.media_kinds:
            allowed = " or ".join(sorted(native.media_kinds))
            return f"{channel} carousel cards take only {allowed} media"
        if native.same_media_kind and len(self.media_kinds) > 1:
            return f"{channel} carousel cards must all carry one kind of media"
        return None


def _card_problem(
    channel: str,
    native: CarouselProfile,
    items: list[CarouselItem],
    cards: list[tuple[int, int, bool]],
) -> str | None:
    """Why the native carousel cannot carry the first card it cannot (None when it carries
    every one)."""
    links_max = native.max_link_buttons
    for item, (count, choices, native_kinds) in zip(items, cards, strict=True):
        if item.media is None and native.media_required:
            return f"{channel} carousel cards need an image"
        if count > native.max_actions:
            return f"a card has more than {native.max_actions} actions"
        if count < native.min_actions:
            return f"{channel} carousel cards need a button each"
        if not native_kinds:
            cannot = ", ".join(sorted({a.type for a in item.actions} - native.kinds))
            return f"{channel} cards cannot carry {cannot}"
        if not native.mixed_actions and 0 < choices < count:
            return f"{channel} cards carry choices or links, not both"
        if links_max is not None and choices == 0 and count > links_max:
            return f"{channel} cards carry at most {links_max} link"
    return None


def card(b: Builder, item: CarouselItem) -> CarouselItem:
    """The card within the carousel's lengths; the very same object when it fits already."""
    native = b.profile.carousel
    assert native is not None
    title = b.label(item.title, native.title_max, "card title")
    description = (
        b.label(item.description, native.description_max, "card description")
        if item.description
        else None
    )
    actions = [b.titled(a, native.label_max, "card button") for a in item.actions]
    changed = any(new is not old for new, old in zip(actions, item.actions, strict=True))
    if title == item.title and description == item.description and not changed:
        return item
    return item.model_copy(update={"title": title, "description": description, "actions": actions})


def fits_card(b: Builder, item: CarouselItem) -> bool:
    buttons = b.profile.buttons
    assert buttons is not None
    native = [a for a in item.actions if a.type in buttons.kinds]
    # Other actions (a link where buttons take only replies) go as text in the card.
    others_are_text = all(
        a.type not in CHOICE_KINDS for a in item.actions if a.type not in buttons.kinds
    )
    return (
        0 < len(native) <= buttons.max_actions
        and others_are_text
        and (item.media is None or buttons.media)
    )


def numbered_carousel(b: Builder, content: CarouselContent) -> None:
    lines = [content.text] if content.text else []
    add = lines.append  # a loop over every card and action of the carousel: kept lean
    made: list[Choice] = []
    parts, choices = b.result.parts, b.result.choices
    number = len(choices)
    images = "image" in b.profile.media
    for item in content.items:
        media = item.media
        url = media.url if media is not None else None
        if media is not None and url and images:
            parts.append(image_part(media))
        picks: list[ReplyAction | PostbackAction] = []
        links = [item.default_url] if item.default_url and not _linked(item) else []
        for action in item.actions:
            if is_choice(action):
                picks.append(action)
            else:
                links += b.action_text(action)
        if url and not images:
            links.append(url)
        detail = item.description
        if len(picks) == 1:
            pick = picks[0]
            number += 1
            choice = Choice(number, item.title, pick.payload or pick.title)
            add(numbered_line(choice, detail))
            made.append(choice)
        else:
            add(f"• {item.title} - {detail}" if detail else f"• {item.title}")
            for pick in picks:
                number += 1
                choice = Choice(number, f"{item.title}: {pick.title}", pick.payload or pick.title)
                add(f"   {numbered_line(choice)}")
                made.append(choice)
        for link in links:
            add(f"   {link}")
    choices += made
    if made:
        add(reply_hint(made))
    b.text("\n".join(lines))


_CARD_TEXT_REASONS = {
    "link": "{channel} carousel cards carry choices or links, not both",
    "default_url": "{channel} carousel cards open no link when tapped",
}


def _linked(item: CarouselItem) -> bool:
    """The card's tap link is one of its link buttons too (said once in text is enough)."""
    return any(type(a) is LinkAction and a.url == item.default_url for a in item.actions)


CAROUSEL: tuple[Form[_Carousel], ...] = (
    Form("native", "carousel, every card within its rules", _native_fits, _build_native),
    Form("cards", "buttons fitting each card", _cards_fit, _build_cards),
    Form("numbered_text", "nothing", always, _build_numbered),
)
