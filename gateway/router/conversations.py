"""Which group conversation an inbound event belongs to, and who gets a copy of a message:
decisions free of I/O, which the store applies in the transaction of the event
(docs/conversations.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.downgrade.choices import Choice, match_choice, numbered_line
from gateway.schema import ParticipantRef

# The channel id of a participant reached through the API only (an agent at a console): no
# channel has it (channel ids are non-empty), so no copy is sent to them and no inbound event
# is theirs. Their provider id is their participant id, which keeps it unique.
API_ONLY = ""

# What a participant sends that belongs to their conversation: what they say and what they
# tap. Reactions, opt-outs and the rest stay in their 1:1 conversation.
ROUTED_TYPES = frozenset({"message", "postback"})


@dataclass(frozen=True)
class Seat:
    """A participant as the router sees them: who they are and where they are reached."""

    id: str
    conversation_id: str
    channel_id: str
    provider_id: str
    role: str
    display_name: str
    user_id: str | None = None
    present: bool = True  # False once they left
    observer: bool = False  # silent until they speak
    # A member of a provider group (LINE group or room, WhatsApp group): the group's id. They
    # are reached through the group's own seat, whose messages they all see, never privately.
    via_group: str | None = None

    @property
    def api_only(self) -> bool:
        return self.channel_id == API_ONLY

    def ref(self, *, presence: bool = False) -> ParticipantRef:
        """How events and history name them; with `presence`, whether they observe silently
        (what participant.joined and conversation.created say)."""
        return ParticipantRef(
            id=self.id,
            role=self.role,
            display_name=self.display_name,
            user_id=self.user_id,
            observer=True if presence and self.observer else None,
        )


@dataclass(frozen=True)
class Membership:
    """An open conversation the sender of an inbound event is present in, as that seat."""

    seat: Seat
    mode: str
    last_active_at: float
    controller: str | None = None  # the backend in control of it (gateway/router/control.py)


@dataclass(frozen=True)
class RoutingPolicy:
    """The config's `conversations` settings the inbound routing reads (docs/conversations.md)."""

    # A person was last addressed in a conversation this recently: their next message goes
    # there. Half an hour covers a reply to an order update; after that, asking is safer
    # than guessing (conversations.route_by_recency_seconds).
    recency_seconds: float = 1800.0
    # How long a held message waits for the answer to "Which chat is this for?" before it
    # goes to the most recently active of the conversations offered
    # (conversations.route_question_seconds).
    question_seconds: float = 600.0
    # The API key that owns the conversations of provider groups (LINE groups and rooms,
    # WhatsApp groups): conversations.provider_groups_owner, else the first API key.
    provider_groups_owner: str = ""


DEFAULT_ROUTING = RoutingPolicy()


@dataclass(frozen=True)
class RouteFacts:
    """What the store knows about an inbound event's sender, for `conversation_for`."""

    now: float
    # The conversation of the message the event quotes or answers (its reply context), when
    # that message is a relayed copy or a conversation message sent to this person.
    replied_in: str | None = None
    # When each conversation last addressed this person (the last copy queued to them there)
    # or had a message of theirs.
    last_addressed: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Routed:
    """The event joins `membership`'s conversation; `rule` says which rule decided."""

    membership: Membership
    rule: str


@dataclass(frozen=True)
class Ask:
    """No rule decided: hold the event and ask the person which of `options` it is for
    (most recently active first)."""

    options: list[Membership]


Rule = Callable[[Sequence[Membership], RouteFacts, RoutingPolicy], Membership | None]


def _only_one(
    open_ones: Sequence[Membership], _facts: RouteFacts, _policy: RoutingPolicy
) -> Membership | None:
    return open_ones[0] if len(open_ones) == 1 else None


def _reply_context(
    open_ones: Sequence[Membership], facts: RouteFacts, _policy: RoutingPolicy
) -> Membership | None:
    """The provider's reply context: WhatsApp `context.id`, Messenger `reply_to.mid`, LINE
    `quotedMessageId` name the message quoted; a copy of ours names its conversation."""
    return next((m for m in open_ones if m.seat.conversation_id == facts.replied_in), None)


def _recency(
    open_ones: Sequence[Membership], facts: RouteFacts, policy: RoutingPolicy
) -> Membership | None:
    """The conversation the person was last addressed in, within the policy's time."""
    recent = [
        (at, m.seat.conversation_id, m)
        for m in open_ones
        if (at := facts.last_addressed.get(m.seat.conversation_id)) is not None
        and facts.now - at <= policy.recency_seconds
    ]
    return max(recent, key=lambda r: (r[0], r[1]))[2] if recent else None


# In order: the first rule that names a conversation decides (issue 22, item 5).
RULES: tuple[tuple[str, Rule], ...] = (
    ("only_one", _only_one),
    ("reply_context", _reply_context),
    ("recency", _recency),
)


def by_activity(memberships: Sequence[Membership]) -> list[Membership]:
    """Most recently active first (ties: the newest conversation id, ids being time-ordered)."""
    return sorted(
        memberships, key=lambda m: (m.last_active_at, m.seat.conversation_id), reverse=True
    )


def conversation_for(
    memberships: Sequence[Membership],
    facts: RouteFacts,
    policy: RoutingPolicy = DEFAULT_ROUTING,
) -> Routed | Ask | None:
    """Where an inbound message from a participant goes, by the first rule of RULES that
    decides among the open conversations they are present in; else ask them. None keeps
    them in their 1:1 conversation."""
    # A user present twice in one conversation (two of their identities) counts it once.
    by_conversation: dict[str, Membership] = {}
    for m in memberships:
        if m.seat.present:
            by_conversation.setdefault(m.seat.conversation_id, m)
    open_ones = list(by_conversation.values())
    if not open_ones:
        return None
    for name, rule in RULES:
        chosen = rule(open_ones, facts, policy)
        if chosen is not None:
            return Routed(chosen, name)
    return Ask(by_activity(open_ones))


def label_of(conversation_id: str, metadata: Mapping[str, Any] | None) -> str:
    """How the question names a conversation: its metadata's `title`, else `subject`, else
    its id."""
    for key in ("title", "subject"):
        value = (metadata or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return conversation_id


QUESTION = "Which chat is this for?"


def question_choices(labels: Sequence[tuple[str, str]]) -> list[Choice]:
    """The numbered choices of the question, from (conversation id, label) pairs."""
    return [Choice(n, text, cid) for n, (cid, text) in enumerate(labels, start=1)]


def question_text(choices: Sequence[Choice]) -> str:
    """`Which chat is this for? 1. Order #1234 2. Community`, one choice a line, with how
    to answer: a number works on every channel."""
    lines = [numbered_line(c) for c in choices]
    return "\n".join([QUESTION, *lines, "Reply with the number."])


def answered(text: str, choices: Sequence[Choice]) -> str | None:
    """The conversation id an answer to the question picks ("2", "two", or a label), or None."""
    picked = match_choice(text, list(choices))
    return picked.payload if picked is not None else None


def after_timeout(options: Sequence[Membership]) -> Membership | None:
    """Where held messages go when the question was not answered in time: the most recently
    active of the conversations offered that are still open; None: the 1:1 conversation."""
    still = [m for m in options if m.seat.present]
    return by_activity(still)[0] if still else None


def recipients(
    seats: Sequence[Seat],
    author_id: str | None,
    only: Sequence[str] | None = None,
) -> list[Seat]:
    """Who gets a copy: everyone present but the author, or only those named in `only`. A
    participant reached through the API only gets none: the backend reads the history.
    Members of a provider group get none of their own: the copy to the group reaches them."""
    wanted = set(only) if only is not None else None
    return [
        s
        for s in seats
        if s.present
        and not s.api_only
        and s.id != author_id
        and s.via_group is None
        and (wanted is None or s.id in wanted)
    ]


# A participant's inbound content of these types is kept for the backend, not relayed: an
# answer to a form, a template (only a business sends one).
NOT_RELAYED = frozenset({"form_response", "template"})


def relay_targets(
    mode: str, seats: Sequence[Seat], author_id: str, content_type: str = "text"
) -> list[Seat]:
    """Who a participant's own message is relayed to: in `relay` mode every other participant
    present; in `hub` mode only silent observers, who receive everything (the backend
    answers the others as it wants)."""
    if content_type in NOT_RELAYED:
        return []
    author = next((s for s in seats if s.id == author_id), None)
    own_group = (author.channel_id, author.via_group) if author and author.via_group else None
    # A provider group's members all see each other natively: nothing goes back to the group.
    others = [s for s in recipients(seats, author_id) if (s.channel_id, s.provider_id) != own_group]
    return others if mode == "relay" else [s for s in others if s.observer]


def announced_to(mode: str, seats: Sequence[Seat], participant: Seat) -> list[Seat]:
    """Who is told that `participant` joined or left: in `relay` mode everyone else present,
    never about a silent observer. In `hub` mode no one: the participants do not hear each
    other, and the backend tells whom it wants."""
    if mode != "relay" or participant.observer:
        return []
    return recipients(seats, participant.id)


# Language-neutral defaults of conversations.announcements (config): `{name}` is the
# participant's display name, `{role}` their role; the label relayed messages carry.
JOINED_TEMPLATE = "{name} ({role}) joined"
LEFT_TEMPLATE = "{name} ({role}) left"


@dataclass(frozen=True)
class Announcements:
    """The lines announcing a visible participant (config conversations.announcements); an
    empty one announces nothing."""

    joined: str = JOINED_TEMPLATE
    left: str = LEFT_TEMPLATE


DEFAULT_ANNOUNCEMENTS = Announcements()


def announcement(template: str, participant: Seat) -> str:
    """The line announcing `participant`: the template with their name and role."""
    return template.replace("{name}", participant.display_name).replace("{role}", participant.role)


def provider_group(channel_data: Mapping[str, Any] | None) -> str | None:
    """The provider group an inbound event was said in (a LINE group or room, a WhatsApp
    group), as the adapter put it in `channel_data`; None for a person's own chat."""
    data = channel_data or {}
    for key in ("group_id", "room_id"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None
