"""Which group conversation an inbound event belongs to, and who gets a copy of a message:
decisions free of I/O, which the store applies in the transaction of the event
(docs/conversations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.schema import ParticipantRef

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

    def ref(self) -> ParticipantRef:
        return ParticipantRef(
            id=self.id, role=self.role, display_name=self.display_name, user_id=self.user_id
        )


@dataclass(frozen=True)
class Membership:
    """An open conversation the sender of an inbound event is present in, as that seat."""

    seat: Seat
    mode: str
    last_active_at: float


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
    """Who gets a copy: everyone present but the author, or only those named in `only`."""
    wanted = set(only) if only is not None else None
    return [
        s for s in seats if s.present and s.id != author_id and (wanted is None or s.id in wanted)
    ]


# A participant's inbound content of these types is kept for the backend, not relayed: an
# answer to a form, a template (only a business sends one).
NOT_RELAYED = frozenset({"form_response", "template"})


def relay_targets(
    mode: str, seats: Sequence[Seat], author_id: str, content_type: str = "text"
) -> list[Seat]:
    """Who a participant's own message is relayed to: in `relay` mode every other participant
    present; in `hub` mode nobody (the backend answers whom it wants)."""
    if mode != "relay" or content_type in NOT_RELAYED:
        return []
    return recipients(seats, author_id)
