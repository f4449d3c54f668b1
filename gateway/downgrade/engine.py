"""The downgrade engine: one rich message becomes parts a channel shows natively.

Pure: `plan(content, profile)` reads only the channel's capability profile and returns the
parts to render (each one within the profile's limits), every downgrade with its reason, and
the numbered choices whose text answers must map back to postbacks.

Which form each content type takes is a preference table, richest first (after Bot Framework's
card → suggested actions → numbered): preferences.py, documented in docs/architecture.md
("Downgrade preferences"). Within a form:
- actions: link and buy become URL buttons where buttons take links, else lines of text;
  call a call button or the number in text; location_request a location quick reply or
  prompt, else a text prompt; share where native, else its link in text, else dropped.
Labels longer than a limit are shortened at a word boundary with an ellipsis; the payload
still carries the meaning, and the numbered text keeps the full title.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.downgrade.choice_forms import CHOICES, QUICK_REPLIES, Attached, Offer, Option
from gateway.downgrade.choices import CHOOSE, Choice, numbered_line, reply_hint
from gateway.downgrade.plain_text import action_line
from gateway.downgrade.plan import built, text_part
from gateway.downgrade.preferences import PREFERENCES
from gateway.downgrade.profile import Profile
from gateway.downgrade.split_text import split_text
from gateway.downgrade.table import first_fit
from gateway.schema.content import (
    Action,
    ButtonsContent,
    BuyAction,
    LinkAction,
    ListItem,
    LocationRequestAction,
    Media,
    ReplyAction,
    is_choice,
)
from gateway.schema.content import Content as AnyContent

ELLIPSIS = "…"


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

    # --- content types: each walks its preference table (preferences.py) -------------
    def add(self, content: AnyContent) -> None:
        first_fit(self, content, PREFERENCES[content.type])

    # --- choices ------------------------------------------------------------------------
    def adapt(self, action: Action, kinds: frozenset[str]) -> Action:
        """A payment link is a URL button where the channel has URL buttons but no payments."""
        if isinstance(action, BuyAction) and "buy" not in kinds and "link" in kinds:
            self.note("buy", "link", f"{self.channel} has no payment button; a URL button pays")
            return LinkAction(title=action.title, url=action.url)
        return action

    def options(self, actions: list[Action]) -> list[Option]:
        """Choices (with a payload) and other actions, in the sender's order."""
        kinds = self.profile.buttons.kinds if self.profile.buttons else frozenset()
        options: list[Option] = []
        for action in actions:
            if is_choice(action):
                options.append(Option(action.title, action.payload or action.title, None, action))
            else:
                options.append(Option(action.title, None, None, self.adapt(action, kinds)))
        return options

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
        options: list[Option],
        *,
        header: str | None = None,
        footer: str | None = None,
        media: Media | None = None,
        reason: str | None = None,
    ) -> None:
        """Choices in the richest form that fits (preferences.CHOICES)."""
        offer = Offer(source, text, options, header, footer, media, reason)
        first_fit(self, offer, CHOICES)

    def long_payload(self, payloads: list[str | None]) -> str | None:
        """Why native elements cannot carry these payloads (None when they can)."""
        longest = max((len(p) for p in payloads if p), default=0)
        return self.payload_too_long(longest) if longest > self.profile.payload_max else None

    def payload_too_long(self, longest: int) -> str:
        limit = self.profile.payload_max
        return f"a payload is {longest} characters; {self.channel} carries at most {limit}"

    def why_not_buttons(self, options: list[Option], kinds: set[str], media: Media | None) -> str:
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
        self, options: list[Option], kinds: set[str], media: Media | None
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

    def numbered(self, body: str, options: list[Option]) -> None:
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
        options: list[Option],
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
        """Quick replies attached to content, in the richest form that fits
        (choice_forms.QUICK_REPLIES)."""
        if actions:
            first_fit(self, Attached(actions, f"{source_type} quick_replies"), QUICK_REPLIES)

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

    def titled(self, action: Action, limit: int, what: str) -> Action:
        title = self.label(action.title, limit, what)
        return action if title == action.title else action.model_copy(update={"title": title})
