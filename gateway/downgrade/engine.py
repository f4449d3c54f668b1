"""The downgrade engine: one rich message becomes parts a channel shows natively.

Pure: `plan(content, profile)` reads only the channel's capability profile and returns the
parts to render (each one within the profile's limits), every downgrade with its reason, and
the numbered choices whose text answers must map back to postbacks.

Preference orders, richest first (after Bot Framework's card → suggested actions → numbered):
- choices (buttons, quick replies): native buttons → native quick replies → native list →
  numbered text.
- list: native list → quick replies → buttons → numbered text (descriptions keep it numbered:
  a quick reply or button cannot show them).
- carousel (carousel.py): native carousel (split into several when there are more cards than
  allowed) → one card per item (media + text + buttons) → numbered text with links, images
  sent as media parts where the channel takes media.
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
from typing import NamedTuple

from gateway.downgrade import carousel
from gateway.downgrade.choices import CHOOSE, Choice, numbered_line, reply_hint
from gateway.downgrade.plain_text import action_line, map_link, to_text
from gateway.downgrade.plan import built, image_part, text_part
from gateway.downgrade.profile import CHOICE_KINDS, Profile
from gateway.downgrade.split_text import split_text
from gateway.schema.content import (
    Action,
    ButtonsContent,
    BuyAction,
    CarouselContent,
    ContactsContent,
    FormContent,
    FormResponseContent,
    LinkAction,
    ListContent,
    ListItem,
    ListSection,
    LocationContent,
    LocationRequestAction,
    Media,
    MediaContent,
    ReplyAction,
    TemplateContent,
    TextContent,
    is_choice,
    payload_of,
)
from gateway.schema.content import Content as AnyContent

ELLIPSIS = "…"
# Media kinds as a reason names them ("messenger images have no caption").
_PLURALS = {"audio": "audio messages"}


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
    builder = Builder(profile)
    builder.add(content)
    builder.quick_replies(list(content.quick_replies), content.type)
    return builder.result


class Builder:
    """One plan in the making: the parts so far, the downgrades and numbered choices (the
    carousel module works on it too)."""

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
            self.result.parts.append(text_part(chunk))

    @property
    def channel(self) -> str:
        return self.profile.channel

    # --- content types ------------------------------------------------------------------
    def add(self, content: AnyContent) -> None:
        # Exact types (the schema's are final): a failed isinstance on a model is slow.
        if type(content) is TextContent:
            self.text(content.text)
        elif type(content) is ButtonsContent:
            self.buttons(content)
        elif type(content) is ListContent:
            self.add_list(content)
        elif type(content) is CarouselContent:
            self.carousel(content)
        elif type(content) is LocationContent:
            self.location(content)
        elif type(content) is ContactsContent:
            if self.profile.contacts:
                self.result.parts.append(content.model_copy(update={"quick_replies": []}))
            else:
                self.note("contacts", "text", f"{self.channel} cannot send contact cards")
                self.text(to_text(content.model_copy(update={"quick_replies": []})))
        elif type(content) is TemplateContent:
            self.template(content)
        elif type(content) is FormContent:
            if not self.profile.forms:
                raise PlanError("a form is sent as a conversation, one field at a time")
            self.result.parts.append(content.model_copy(update={"quick_replies": []}))
        elif type(content) is FormResponseContent:
            self.text(to_text(content))
        else:
            self.media(content)

    def media(self, content: MediaContent) -> None:
        media, caption = content.media, content.caption
        if content.type in self.profile.media:
            if caption and len(caption) > self.profile.caption_max:
                self.note("caption", "text", self.caption_reason(content.type))
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

    def caption_reason(self, kind: str) -> str:
        limit = self.profile.caption_max
        if limit == 0:  # the channel's media carry no caption at all (Messenger)
            return f"{self.channel} {_PLURALS.get(kind, kind + 's')} have no caption"
        return f"longer than {limit} characters"

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
            if is_choice(action):
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
            self.result.parts.append(text_part(chunk))
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
        long_payload = self.payload_too_long(longest) if longest > profile.payload_max else None
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
        if described:
            hidden = self.hidden_by_descriptions(options, kinds, media)
            why = f"{why}; {hidden}" if hidden else why
        if media is not None:
            self.media(image_part(media))
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
        return self.payload_too_long(longest) if longest > self.profile.payload_max else None

    def payload_too_long(self, longest: int) -> str:
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

    def hidden_by_descriptions(
        self, options: list[_Option], kinds: set[str], media: Media | None
    ) -> str | None:
        """Which native choices would have carried these rows but for their descriptions (None
        when none would: the descriptions are then not why they stay numbered text)."""
        buttons, quick = self.profile.buttons, self.profile.quick_replies
        would_fit = []
        if (
            buttons
            and len(options) <= buttons.max_actions
            and kinds <= buttons.kinds
            and (media is None or buttons.media)
        ):
            would_fit.append("buttons")
        if quick and media is None and len(options) <= quick.max_items:
            would_fit.append("quick replies")
        if not would_fit:
            return None
        return f"{self.channel} {' and '.join(would_fit)} cannot show the row descriptions"

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
        payloads = [payload_of(a) for a in actions]
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
            self.result.parts.append(text_part(CHOOSE))
        last = self.result.parts[-1]
        if last.quick_replies:  # choices offered here already (buttons beyond the count)
            if len(last.quick_replies) + len(labelled) <= quick.max_items:
                labelled = [*last.quick_replies, *labelled]
            else:
                self.result.parts.append(text_part(CHOOSE))
                last = self.result.parts[-1]
        self.result.parts[-1] = last.model_copy(update={"quick_replies": labelled})

    # --- carousel -----------------------------------------------------------------------
    def carousel(self, content: CarouselContent) -> None:
        carousel.plan_carousel(self, content)

    def titled(self, action: Action, limit: int, what: str) -> Action:
        title = self.label(action.title, limit, what)
        return action if title == action.title else action.model_copy(update={"title": title})
