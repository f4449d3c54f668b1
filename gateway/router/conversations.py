"""Which group conversation an inbound event belongs to, and who gets a copy of a message:
decisions free of I/O, which the store applies in the transaction of the event
(docs/conversations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def conversation_for(memberships: Sequence[Membership]) -> Membership | None:
    """The conversation an inbound message from a participant goes to: the most recently
    active of the open ones they are present in (ties: the newest conversation id, ids being
    time-ordered). None keeps them in their 1:1 conversation. Reply context and a numbered
    question are to come first here (issue 22, item 5)."""
    open_ones = [m for m in memberships if m.seat.present]
    if not open_ones:
        return None
    return max(open_ones, key=lambda m: (m.last_active_at, m.seat.conversation_id))


def recipients(
    seats: Sequence[Seat],
    author_id: str | None,
    only: Sequence[str] | None = None,
) -> list[Seat]:
    """Who gets a copy: everyone present but the author, or only those named in `only`. A
    participant reached through the API only gets none: the backend reads the history."""
    wanted = set(only) if only is not None else None
    return [
        s
        for s in seats
        if s.present and not s.api_only and s.id != author_id and (wanted is None or s.id in wanted)
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
    others = recipients(seats, author_id)
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
