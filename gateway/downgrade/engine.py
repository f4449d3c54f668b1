"""The downgrade engine: one rich message becomes parts a channel shows natively.

Pure: `plan(content, profile)` reads only the channel's capability profile and returns the
parts to render (each one within the profile's limits), every downgrade with its reason, and
the numbered choices whose text answers must map back to postbacks.

Preference orders, richest first (after Bot Framework's card → suggested actions → numbered):
- choices (buttons, quick replies): native buttons → native quick replies → native list →
  numbered text.
- list: native list → quick replies → buttons → numbered text (descriptions keep it numbered:
  a quick reply or button cannot show them).
- carousel: native carousel (split into several when there are more cards than allowed) →
  one card per item (media + text + buttons) → numbered text with links, images sent as
  media parts where the channel takes media.
- media, location, contacts: native → text with the link, place or names.
- template: native template → its fallback content.
- actions: link and buy become URL buttons where buttons take links, else lines of text;
  call a call button or the number in text; location_request a location quick reply or
  prompt, else a text prompt; share where native, else its link in text, else dropped.
Labels longer than a limit are shortened at a word boundary with an ellipsis; the payload
still carries the meaning, and the numbered text keeps the full title.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel

from gateway.downgrade.choices import Choice, numbered_line, reply_hint
from gateway.downgrade.media import media_kind
from gateway.downgrade.profile import CHOICE_KINDS, Profile
from gateway.plaintext import action_line, map_link, to_text
from gateway.schema.content import (
    Action,
    ButtonsContent,
    BuyAction,
    CarouselContent,
    CarouselItem,
    ContactsContent,
    FormContent,
    FormResponseContent,
    ImageContent,
    LinkAction,
    ListContent,
    ListItem,
    ListSection,
    LocationContent,
    LocationRequestAction,
    Media,
    MediaContent,
    PostbackAction,
    ReplyAction,
    TemplateContent,
    TextContent,
)
from gateway.schema.content import Content as AnyContent
from gateway.text import split_text

_M = TypeVar("_M", bound=BaseModel)

ELLIPSIS = "…"
# The body of choices offered with no text of their own (quick replies on an image, say).
CHOOSE = "Please choose:"


class Downgrade(NamedTuple):  # a tuple: recorded for every card of a carousel downgraded
    source: str
    result: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source} → {self.result}: {self.reason}"


@dataclass
class Plan:
    parts: list[AnyContent] = field(default_factory=list)
    downgrades: list[Downgrade] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)


class PlanError(ValueError):
    """The content cannot reach this channel at all (the send fails with this reason)."""


class _Option:
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


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + ELLIPSIS


def plan(content: AnyContent, profile: Profile) -> Plan:
    builder = _Builder(profile)
    builder.add(content)
    builder.quick_replies(list(content.quick_replies), content.type)
    return builder.result


class _Builder:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.result = Plan()

    # --- bookkeeping --------------------------------------------------------------------
    def note(self, source: str, result: str, reason: str) -> None:
        self.result.downgrades.append(Downgrade(source, result, reason))

    def label(self, text: str, limit: int, what: str) -> str:
        short = shorten(text, limit)
        if short != text:
            self.note(what, "shortened", f"{text!r} is longer than {limit} characters")
        return short

    def choice(self, title: str, payload: str) -> Choice:
        made = Choice(len(self.result.choices) + 1, title, payload)
        self.result.choices.append(made)
        return made

    def text(self, body: str) -> None:
        if not body:
            return
        for chunk in split_text(body, self.profile.text_max):
            self.result.parts.append(_text(chunk))

    @property
    def channel(self) -> str:
        return self.profile.channel

    # --- content types ------------------------------------------------------------------
    def add(self, content: AnyContent) -> None:
        if isinstance(content, TextContent):
            self.text(content.text)
        elif isinstance(content, ButtonsContent):
            self.buttons(content)
        elif isinstance(content, ListContent):
            self.add_list(content)
        elif isinstance(content, CarouselContent):
            self.carousel(content)
        elif isinstance(content, LocationContent):
            self.location(content)
        elif isinstance(content, ContactsContent):
            if self.profile.contacts:
                self.result.parts.append(content.model_copy(update={"quick_replies": []}))
            else:
                self.note("contacts", "text", f"{self.channel} cannot send contact cards")
                self.text(to_text(content.model_copy(update={"quick_replies": []})))
        elif isinstance(content, TemplateContent):
            self.template(content)
        elif isinstance(content, FormContent):
            raise PlanError("a form is sent as a conversation, one field at a time")
        elif isinstance(content, FormResponseContent):
            self.text(to_text(content))
        else:
            self.media(content)

    def media(self, content: MediaContent) -> None:
        media, caption = content.media, content.caption
        if content.type in self.profile.media:
            if caption and len(caption) > self.profile.caption_max:
                self.note("caption", "text", f"longer than {self.profile.caption_max} characters")
                self.result.parts.append(
                    content.model_copy(update={"caption": None, "quick_replies": []})
                )
                self.text(caption)
                return
            self.result.parts.append(content.model_copy(update={"quick_replies": []}))
            return
        if not media.url:
            raise PlanError(
                f"{content.type} has only a provider media id, which {self.channel} cannot use"
            )
        self.note(content.type, "text_link", f"{self.channel} cannot send {content.type}")
        self.text("\n".join(p for p in (caption, media.url) if p))

    def location(self, content: LocationContent) -> None:
        if self.profile.location:
            self.result.parts.append(content.model_copy(update={"quick_replies": []}))
            return
        self.note("location", "text_link", f"{self.channel} cannot send a location pin")
        label = ", ".join(p for p in (content.name, content.address) if p)
        link = content.url or map_link(content.latitude, content.longitude)
        self.text(f"{label}\n{link}" if label else link)

    def template(self, content: TemplateContent) -> None:
        if self.profile.templates:
            self.result.parts.append(content.model_copy(update={"quick_replies": []}))
            return
        if content.fallback is None:
            raise PlanError(f"{self.channel} has no templates and the template has no fallback")
        self.note("template", content.fallback.type, f"{self.channel} has no templates")
        self.add(content.fallback)
        self.quick_replies(list(content.fallback.quick_replies), content.fallback.type)

    # --- choices ------------------------------------------------------------------------
    def adapt(self, action: Action, kinds: frozenset[str]) -> Action:
        """A payment link is a URL button where the channel has URL buttons but no payments."""
        if isinstance(action, BuyAction) and "buy" not in kinds and "link" in kinds:
            self.note("buy", "link", f"{self.channel} has no payment button; a URL button pays")
            return LinkAction(title=action.title, url=action.url)
        return action

    def options(self, actions: list[Action]) -> list[_Option]:
        """Choices (with a payload) and other actions, in the sender's order."""
        kinds = self.profile.buttons.kinds if self.profile.buttons else frozenset()
        options: list[_Option] = []
        for action in actions:
            if isinstance(action, ReplyAction | PostbackAction):
                options.append(_Option(action.title, action.payload or action.title, None, action))
            else:
                options.append(_Option(action.title, None, None, self.adapt(action, kinds)))
        return options

    def buttons(self, content: ButtonsContent) -> None:
        options = self.options(list(content.actions))
        self.offer(
            "buttons",
            content.text,
            options,
            header=content.header,
            footer=content.footer,
            media=content.media,
        )

    def add_list(self, content: ListContent) -> None:
        sections = content.sections
        rows = [item for section in sections for item in section.items]
        native = self.profile.list
        long_payload = self.long_payload([item.payload for item in rows])
        if native and len(rows) <= native.max_rows and not long_payload:
            if len(sections) > native.max_sections:
                self.note(
                    "list sections",
                    "one section",
                    f"{len(sections)} sections exceed {self.channel}'s {native.max_sections}",
                )
                sections = [ListSection(items=rows)]
            text_parts = self.body(content.text, native.text_max)
            self.result.parts.append(
                ListContent(
                    text=text_parts,
                    button=self.label(content.button, native.button_max, "list button"),
                    header=self.optional(content.header, native.header_max, "list header"),
                    footer=self.optional(content.footer, native.footer_max, "list footer"),
                    sections=[
                        ListSection(
                            title=self.label(s.title, native.section_title_max, "section title")
                            if s.title
                            else None,
                            items=[self.row(item) for item in s.items],
                        )
                        for s in sections
                    ],
                )
            )
            return
        reason = long_payload or (
            f"{len(rows)} rows exceed {self.channel}'s {native.max_rows}"
            if native
            else f"{self.channel} has no list"
        )
        options = [_Option(i.title, i.payload, i.description) for i in rows]
        text = "\n".join(p for p in (content.header, content.text) if p)
        self.offer("list", text, options, footer=content.footer, reason=reason, skip_list=True)

    def row(self, item: ListItem) -> ListItem:
        native = self.profile.list
        assert native is not None
        return ListItem(
            title=self.label(item.title, native.row_title_max, "list row title"),
            payload=item.payload,
            description=self.optional(
                item.description, native.row_description_max, "list row description"
            ),
        )

    def optional(self, text: str | None, limit: int | None, what: str) -> str | None:
        if not text:
            return None
        if limit is None:
            self.note(what, "dropped", f"{self.channel} has no place for it")
            return None
        return self.label(text, limit, what)

    def body(self, text: str, limit: int) -> str:
        """The part of `text` that fits a rich element; what comes before goes as text."""
        if len(text) <= limit:
            return text
        chunks = split_text(text, limit)
        self.note("body", "text", f"longer than {limit} characters; sent before the choices")
        for chunk in chunks[:-1]:
            self.result.parts.append(_text(chunk))
        return chunks[-1]

    def offer(
        self,
        source: str,
        text: str,
        options: list[_Option],
        *,
        header: str | None = None,
        footer: str | None = None,
        media: Media | None = None,
        reason: str | None = None,
        skip_list: bool = False,
    ) -> None:
        """Choices in the richest form that fits: buttons → quick replies → list → numbered."""
        profile = self.profile
        kinds: set[str] = set()
        described = False
        longest = 0
        for option in options:
            kinds.add(option.kind)
            if option.description:
                described = True
            if option.payload and len(option.payload) > longest:
                longest = len(option.payload)
        long_payload = self._too_long(longest) if longest > profile.payload_max else None
        if long_payload:
            self.note(source, "numbered_text", long_payload)
            self.numbered(
                "\n".join(p for p in (header, text, footer) if p),
                [o for o in options if o.payload is not None],
            )
            return
        buttons = profile.buttons
        if (
            buttons
            and not described
            and len(options) <= buttons.max_actions
            and kinds <= buttons.kinds
            and (media is None or buttons.media)
        ):
            if reason:
                self.note(source, "buttons", reason)
            self.native_buttons(text, options, header, footer, media)
            return
        quick = profile.quick_replies
        if (
            quick
            and not described
            and media is None
            and len(options) <= quick.max_items
            and kinds <= quick.kinds
            and kinds - CHOICE_KINDS
        ):
            # Choices and other actions quick replies can all carry (a location request).
            self.note(
                source, "quick_replies", reason or self.why_not_buttons(options, kinds, media)
            )
            self.text("\n".join(p for p in (header, text, footer) if p) or CHOOSE)
            self.attach_quick_replies(
                [
                    o.action or ReplyAction(title=o.title, payload=o.payload or o.title)
                    for o in options
                ]
            )
            return
        if buttons and not described and (media is None or buttons.media):
            native = [o for o in options if o.kind in buttons.kinds]
            others = [o for o in options if o.kind not in buttons.kinds]
            # Actions a button cannot be (a call where there are no call buttons) become lines
            # of text under native buttons, as long as every choice is still a button.
            if (
                native
                and len(native) <= buttons.max_actions
                and all(o.payload is None for o in others)
            ):
                extra: list[str] = []
                asks: list[Action] = []  # native location requests, sent after the buttons
                for option in others:
                    action = option.action
                    assert action is not None
                    if action.type == "location_request" and profile.location_request:
                        asks.append(action)
                        continue
                    self.note(
                        action.type,
                        "text",
                        f"{self.channel} buttons cannot be {action.type} actions",
                    )
                    extra += self.action_text(action)
                if reason:
                    self.note(source, "buttons", reason)
                body = "\n".join(p for p in (text, *extra) if p)
                self.native_buttons(body or CHOOSE, native, header, footer, media)
                for action in asks:
                    self.action_text(action)
                return
        why = reason or self.why_not_buttons(options, kinds, media)
        if media is not None:
            self.media(_image(media))
        lines: list[str] = []
        choices = [o for o in options if o.payload is not None]
        for option in options:
            if option.payload is None and option.action is not None:
                lines += self.action_text(option.action)
        body = "\n".join(p for p in (header, text, *lines, footer) if p)
        if quick and choices and not described and len(choices) <= quick.max_items:
            self.note(source, "quick_replies", why)
            self.text(body)
            self.attach_quick_replies(
                [ReplyAction(title=o.title, payload=o.payload or o.title) for o in choices]
            )
            return
        native_list = profile.list
        if (
            native_list
            and not skip_list
            and choices
            and len(choices) <= native_list.max_rows
            and len(choices) == len(options)
        ):
            self.note(source, "list", why)
            list_body = self.body(body or CHOOSE, native_list.text_max)
            self.result.parts.append(
                ListContent(
                    text=list_body,
                    sections=[
                        ListSection(
                            items=[
                                self.row(ListItem(title=o.title, payload=o.payload or o.title))
                                for o in choices
                            ]
                        )
                    ],
                )
            )
            return
        self.note(source, "numbered_text" if choices else "text", why)
        self.numbered(body, choices)

    def long_payload(self, payloads: list[str | None]) -> str | None:
        """Why native elements cannot carry these payloads (None when they can)."""
        longest = max((len(p) for p in payloads if p), default=0)
        return self._too_long(longest) if longest > self.profile.payload_max else None

    def _too_long(self, longest: int) -> str:
        limit = self.profile.payload_max
        return f"a payload is {longest} characters; {self.channel} carries at most {limit}"

    def why_not_buttons(self, options: list[_Option], kinds: set[str], media: Media | None) -> str:
        buttons = self.profile.buttons
        if buttons is None:
            return f"{self.channel} has no buttons"
        if any(o.description for o in options):
            return "buttons cannot show descriptions"
        if len(options) > buttons.max_actions:
            return f"{len(options)} choices exceed {self.channel}'s {buttons.max_actions} buttons"
        if media is not None and not buttons.media:
            return f"{self.channel} buttons cannot carry media"
        unsupported = ", ".join(sorted(kinds - buttons.kinds))
        return f"{self.channel} buttons cannot be {unsupported} actions"

    def numbered(self, body: str, options: list[_Option]) -> None:
        lines = [body] if body else []
        made = []
        for option in options:
            assert option.payload is not None
            choice = self.choice(option.title, option.payload)
            made.append(choice)
            lines.append(numbered_line(choice, option.description))
        if made:
            lines.append(reply_hint(made))
        self.text("\n".join(lines))

    def native_buttons(
        self,
        text: str,
        options: list[_Option],
        header: str | None,
        footer: str | None,
        media: Media | None,
    ) -> None:
        buttons = self.profile.buttons
        assert buttons is not None
        text = text or CHOOSE
        actions: list[Action] = []
        for option in options:
            action = option.action or ReplyAction(title=option.title, payload=option.payload or "")
            actions.append(self.titled(action, buttons.label_max, "button label"))
        if header and buttons.header_max is None:
            text, header = f"{header}\n{text}", None
        if footer and buttons.footer_max is None:
            text, footer = f"{text}\n{footer}", None
        self.result.parts.append(
            built(  # every piece is validated content already
                ButtonsContent,
                type="buttons",
                text=self.body(text, buttons.text_max),
                actions=actions,
                header=self.label(header, buttons.header_max or 0, "header") if header else None,
                footer=self.label(footer, buttons.footer_max or 0, "footer") if footer else None,
                media=media,
                quick_replies=[],
            )
        )

    def action_text(self, action: Action) -> list[str]:
        if action.type == "share" and not getattr(action, "url", None):
            self.note("share", "dropped", f"{self.channel} cannot share and there is no link")
            return []
        if action.type == "location_request":
            if self.profile.location_request:
                self.result.parts.append(
                    ButtonsContent(
                        text=action.title, actions=[LocationRequestAction(title=action.title)]
                    )
                )
                return []
            return [f"{action.title}: reply with your address, or share your location"]
        return [action_line(action)]

    # --- quick replies ------------------------------------------------------------------
    def quick_replies(self, actions: list[Action], source_type: str) -> None:
        if not actions:
            return
        quick = self.profile.quick_replies
        kinds = {a.type for a in actions}
        payloads = [_payload_of(a) for a in actions]
        last = self.result.parts[-1] if self.result.parts else None
        shared = (
            len(last.actions)
            if self.profile.shared_keyboard and isinstance(last, ButtonsContent)
            else 0
        )
        if (
            quick
            and len(actions) <= quick.max_items
            and kinds <= quick.kinds
            and not self.long_payload(payloads)
        ):
            if shared + len(actions) <= quick.max_items:
                self.attach_quick_replies(actions)
                return
            # One keyboard holds the buttons and the quick replies: no room for both.
            self.note(
                f"{source_type} quick_replies",
                "numbered_text",
                f"{self.channel}'s keyboard holds {quick.max_items} buttons in all",
            )
            self.numbered("", [o for o in self.options(actions) if o.payload is not None])
            return
        options = self.options(actions)
        reason = (
            f"{self.channel} has no quick replies"
            if quick is None
            else f"{len(actions)} quick replies exceed {self.channel}'s {quick.max_items}"
            if len(actions) > quick.max_items
            else f"{self.channel} quick replies cannot be {', '.join(sorted(kinds - quick.kinds))}"
        )
        if isinstance(last, TextContent):
            # Text followed by choices reads best as one message: the text, then the choices.
            self.result.parts.pop()
            self.offer(f"{source_type} quick_replies", last.text, options, reason=reason)
            return
        self.offer(f"{source_type} quick_replies", "", options, reason=reason)

    def attach_quick_replies(self, actions: list[Action]) -> None:
        quick = self.profile.quick_replies
        assert quick is not None
        labelled: list[Action] = [self.titled(a, quick.label_max, "quick reply") for a in actions]
        if not self.result.parts:
            self.result.parts.append(_text(CHOOSE))
        last = self.result.parts[-1]
        if last.quick_replies:  # choices offered here already (buttons beyond the count)
            if len(last.quick_replies) + len(labelled) <= quick.max_items:
                labelled = [*last.quick_replies, *labelled]
            else:
                self.result.parts.append(_text(CHOOSE))
                last = self.result.parts[-1]
        self.result.parts[-1] = last.model_copy(update={"quick_replies": labelled})

    # --- carousel -----------------------------------------------------------------------
    def carousel(self, content: CarouselContent) -> None:
        native = self.profile.carousel
        items = content.items
        if any(isinstance(a, BuyAction) for item in items for a in item.actions):
            kinds = native.kinds if native else frozenset()
            items = [
                item.model_copy(update={"actions": [self.adapt(a, kinds) for a in item.actions]})
                if any(isinstance(a, BuyAction) for a in item.actions)
                else item
                for item in items
            ]
        moved: list[str] = []  # what became card text, noted once the native form is chosen
        problem = None
        if native is not None and (not native.mixed_actions or not native.default_url):
            items, moved, problem = self.links_as_card_text(items)
        fitting = False
        if problem is None:
            problem, fitting = self.carousel_problem(items)
        if problem is None and native is not None:
            for what in moved:
                self.note(what, "text", _CARD_TEXT_REASONS[what].format(channel=self.channel))
            self.native_carousel(content.text, items, fitting)
            return
        items = list(content.items)
        buttons = self.profile.buttons
        if buttons is not None and all(self.fits_card(item) for item in items):
            self.note("carousel", "cards", problem or f"{self.channel} has no carousel")
            if content.text:
                self.text(content.text)
            for item in items:
                options = self.options(list(item.actions))
                opens = None if _linked(item) else item.default_url
                body = "\n".join(p for p in (item.title, item.description, opens) if p)
                self.offer("card", body, options, media=item.media)
            return
        self.note("carousel", "numbered_text", problem or f"{self.channel} has no carousel")
        self.numbered_carousel(content)

    def native_carousel(self, text: str | None, items: list[CarouselItem], fitting: bool) -> None:
        native = self.profile.carousel
        assert native is not None
        count = -(-len(items) // native.max_cards)
        if count > 1:
            self.note(
                "carousel",
                f"{count} carousels",
                f"{len(items)} cards exceed {self.channel}'s {native.max_cards}",
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
                self.text(text)
        else:  # the carousel's own (required) body
            body = self.body(text or CHOOSE, native.text_max)
        for group in groups:
            self.result.parts.append(
                built(
                    CarouselContent,
                    type="carousel",
                    text=body,
                    quick_replies=[],
                    items=group if fitting else [self.card(i) for i in group],
                )
            )

    def links_as_card_text(
        self, items: list[CarouselItem]
    ) -> tuple[list[CarouselItem], list[str], str | None]:
        """Links a card cannot carry as buttons (beside choices, or its tap link) become lines
        of its description: the cards, what moved, or why the cards cannot take them."""
        native = self.profile.carousel
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
                    if isinstance(action, LinkAction):
                        lines.append(action_line(action))
                    else:
                        choices = choices or action.type in CHOICE_KINDS
                        kept.append(action)
                if lines and choices:
                    moved.add("link")
                    actions = kept
                else:
                    lines = []
            if item.default_url and not native.default_url:
                moved.add("default_url")
                if not _linked(item):
                    lines.append(item.default_url)
            if not lines:
                cards.append(item)
                continue
            links = "\n".join(lines)
            description = f"{item.description}\n{links}" if item.description else links
            if len(description) > native.description_max:
                limit = native.description_max
                return items, [], f"a card's text and links exceed {self.channel}'s {limit}"
            cards.append(
                built(
                    CarouselItem,
                    title=item.title,
                    description=description,
                    media=item.media,
                    actions=actions,
                    default_url=None,
                )
            )
        return cards, sorted(moved), None

    def carousel_problem(self, items: list[CarouselItem]) -> tuple[str | None, bool]:
        """Why the native carousel cannot carry these cards (None when it can), and whether
        every card fits its lengths already. One pass: this runs for every carousel sent."""
        native = self.profile.carousel
        if native is None:
            return f"{self.channel} has no carousel", False
        if len(items) < native.min_cards:
            return f"{self.channel} carousels need at least {native.min_cards} cards", False
        # Profile fields as locals: this loop runs over every card and action of every send.
        kinds, label_max = native.kinds, native.label_max
        title_max, description_max = native.title_max, native.description_max
        max_actions, mixed = native.max_actions, native.mixed_actions
        by_kind = native.same_action_kinds
        media_kinds_wanted = native.media_kinds is not None or native.same_media_kind
        card_problem: str | None = None
        fitting = True
        longest = 0
        action_counts = set()
        shapes: set[str] = set()
        media_kinds: set[str] = set()
        for item in items:
            actions = item.actions
            action_counts.add(len(actions))
            description = item.description
            if len(item.title) > title_max or (description and len(description) > description_max):
                fitting = False
            native_kinds = True
            choices = 0
            shape = ""  # the card's kinds of actions in order, choices all alike
            for action in actions:
                kind = action.type
                if len(action.title) > label_max:
                    fitting = False
                if kind not in kinds:
                    native_kinds = False
                if kind in CHOICE_KINDS:
                    choices += 1
                    shape += "choice,"
                else:
                    shape += kind + ","
                if isinstance(action, _PAYLOAD_TYPES) and action.payload:
                    longest = max(longest, len(action.payload))
            if by_kind:
                shapes.add(shape)
            if card_problem is not None:
                continue
            media = item.media
            if media is not None and media_kinds_wanted:
                media_kinds.add(media_kind(media))
            if media is None and native.media_required:
                card_problem = f"{self.channel} carousel cards need an image"
            elif len(actions) > max_actions:
                card_problem = f"a card has more than {max_actions} actions"
            elif len(actions) < native.min_actions:
                card_problem = f"{self.channel} carousel cards need a button each"
            elif not native_kinds:
                cannot = ", ".join(sorted({a.type for a in actions} - kinds))
                card_problem = f"{self.channel} cards cannot carry {cannot}"
            elif not mixed and 0 < choices < len(actions):
                card_problem = f"{self.channel} cards carry choices or links, not both"
            elif (
                native.max_link_buttons is not None
                and choices == 0
                and len(actions) > native.max_link_buttons
            ):
                card_problem = f"{self.channel} cards carry at most {native.max_link_buttons} link"
        if longest > self.profile.payload_max:
            return self._too_long(longest), fitting
        if card_problem is None:
            if native.same_action_count and len(action_counts) > 1:
                card_problem = f"{self.channel} carousel cards must all have as many actions"
            elif native.same_action_kinds and len(shapes) > 1:
                card_problem = f"{self.channel} carousel cards must all have the same buttons"
            elif native.media_kinds is not None and not media_kinds <= native.media_kinds:
                allowed = " or ".join(sorted(native.media_kinds))
                card_problem = f"{self.channel} carousel cards take only {allowed} media"
            elif native.same_media_kind and len(media_kinds) > 1:
                card_problem = f"{self.channel} carousel cards must all carry one kind of media"
        return card_problem, fitting

    def card(self, item: CarouselItem) -> CarouselItem:
        """The card within the carousel's lengths; the very same object when it fits already."""
        native = self.profile.carousel
        assert native is not None
        title = self.label(item.title, native.title_max, "card title")
        description = (
            self.label(item.description, native.description_max, "card description")
            if item.description
            else None
        )
        actions = [self.titled(a, native.label_max, "card button") for a in item.actions]
        changed = any(new is not old for new, old in zip(actions, item.actions, strict=True))
        if title == item.title and description == item.description and not changed:
            return item
        return item.model_copy(
            update={"title": title, "description": description, "actions": actions}
        )

    def titled(self, action: Action, limit: int, what: str) -> Action:
        title = self.label(action.title, limit, what)
        return action if title == action.title else action.model_copy(update={"title": title})

    def fits_card(self, item: CarouselItem) -> bool:
        buttons = self.profile.buttons
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

    def numbered_carousel(self, content: CarouselContent) -> None:
        lines = [content.text] if content.text else []
        made: list[Choice] = []
        parts, choices = self.result.parts, self.result.choices
        images = "image" in self.profile.media
        for item in content.items:
            media = item.media
            url = media.url if media is not None else None
            if media is not None and url and images:
                parts.append(_image(media))
            picks: list[ReplyAction | PostbackAction] = []
            links = [item.default_url] if item.default_url and not _linked(item) else []
            for action in item.actions:
                if isinstance(action, (ReplyAction, PostbackAction)):  # tuple: faster than union
                    picks.append(action)
                else:
                    links += self.action_text(action)
            if url and not images:
                links.append(url)
            detail = item.description
            if len(picks) == 1:
                pick = picks[0]
                choice = Choice(
                    len(choices) + len(made) + 1, item.title, pick.payload or pick.title
                )
                lines.append(numbered_line(choice, detail))
                made.append(choice)
            else:
                lines.append(f"• {item.title} - {detail}" if detail else f"• {item.title}")
                for pick in picks:
                    title = f"{item.title}: {pick.title}"
                    choice = Choice(len(choices) + len(made) + 1, title, pick.payload or pick.title)
                    lines.append(f"   {numbered_line(choice)}")
                    made.append(choice)
            for link in links:
                lines.append(f"   {link}")
        choices += made
        if made:
            lines.append(reply_hint(made))
        self.text("\n".join(lines))


# Parts built from content that was validated already: constructing them again without
# validation keeps planning cheap (it runs for every send and every preview). `built` is
# `model_construct` given every field, without its per-field default handling (half the cost);
# tests/test_downgrade_engine.py checks it equals a validated model.
def built(cls: type[_M], **fields: Any) -> _M:
    names = _FIELD_NAMES.get(cls) or _FIELD_NAMES.setdefault(cls, tuple(cls.__pydantic_fields__))
    if len(fields) != len(names):
        raise TypeError(f"{cls.__name__} needs every field: {', '.join(names)}")
    made = _new(cls)
    # In declaration order, as validation makes it: serialised JSON follows this order.
    _set(made, "__dict__", {name: fields[name] for name in names})
    _set(made, "__pydantic_fields_set__", set(fields))
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


_FIELD_NAMES: dict[type[BaseModel], tuple[str, ...]] = {}
_new = object.__new__
_set = object.__setattr__


# The two parts every plan makes most, built without even `built`'s checks (a carousel on SMS
# makes ten images): fields in declaration order, as validation leaves them;
# tests/test_downgrade_engine.py checks both equal validated models, JSON included.
def _text(text: str) -> TextContent:
    made = _new(TextContent)
    _set(made, "__dict__", {"quick_replies": [], "type": "text", "text": text})
    _set(made, "__pydantic_fields_set__", {"type", "text", "quick_replies"})
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


def _image(media: Media) -> ImageContent:
    made = _new(ImageContent)
    fields = {"quick_replies": [], "media": media, "caption": None, "type": "image"}
    _set(made, "__dict__", fields)
    _set(made, "__pydantic_fields_set__", {"type", "media", "caption", "quick_replies"})
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


_CARD_TEXT_REASONS = {
    "link": "{channel} carousel cards carry choices or links, not both",
    "default_url": "{channel} carousel cards open no link when tapped",
}


def _linked(item: CarouselItem) -> bool:
    """The card's tap link is one of its link buttons too (said once in text is enough)."""
    return any(isinstance(a, LinkAction) and a.url == item.default_url for a in item.actions)


# Actions that carry a payload; a tuple, not a union: isinstance checks it twice as fast.
_PAYLOAD_TYPES = (ReplyAction, PostbackAction, BuyAction)


def _payload_of(action: Action) -> str | None:
    # Not getattr(action, "payload", None): on a pydantic model a missing attribute raises
    # inside __getattr__ first, which costs more than the whole rest of a card.
    return action.payload if isinstance(action, ReplyAction | PostbackAction | BuyAction) else None


def _payload(action: Any) -> str:
    return str(_payload_of(action) or action.title)
