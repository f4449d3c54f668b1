"""Status routing: what a provider's delivery report does, which of our messages it names, and
whether it moves that message on. Pure: the store reads the message a report's provider id
belongs to (or, for a watermark, the messages it covers), then persists what this decides
(gateway/store/writes.py; reports that race ahead of their send: gateway/store/held.py).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from gateway.schema import STATE_RANK, Event, ParticipantRef, Status


class SentMessage(NamedTuple):
    """Our message a provider id belongs to."""

    id: str
    conversation_id: str | None
    state: str
    participant_id: str | None  # a relayed copy's recipient participant


# What the store does with a provider's status report:
# - watermark: it covers every message to its recipient up to a time (Messenger's `watermark`);
# - hold: it names a provider id of no send of ours recorded yet (the send may still wait for
#   the provider's answer), or a part of a message of ours that waits for a retry of the rest
#   (applied, it would move the message on from `queued` and the retry would send nothing);
# - apply: it names our message, which it may move on;
# - pass: it names no provider id (a send that never reached the provider): it goes to the
#   backends as it is.
StatusRoute = Literal["watermark", "hold", "apply", "pass"]


def status_route(status: Status, sent: SentMessage | None) -> StatusRoute:
    """What to do with an inbound status, given the message of ours its provider id belongs
    to (`sent`, None when none is recorded)."""
    if status.watermark is not None and status.external_id is None:
        return "watermark"
    if status.external_id is not None and (sent is None or sent.state == "queued"):
        return "hold"
    return "apply" if sent is not None else "pass"


# A held status, looked at again: `release` (still no message of ours after the hold: it goes
# to the backends without a message id), `hold` (its message's parts were recorded for a retry
# meanwhile) or `apply`.
HeldRoute = Literal["release", "hold", "apply"]


def held_route(sent: SentMessage | None) -> HeldRoute:
    """What to do with a held status chosen for settling (gateway/store/held.py)."""
    if sent is None:
        return "release"
    return "hold" if sent.state == "queued" else "apply"


# `forward`: the report moves the message on; `same`: the provider confirms what we recorded;
# `stale`: it reports a state the message has passed (recorded in its history, nothing more).
StateChange = Literal["forward", "same", "stale"]


def state_change(current: str, reported: str) -> StateChange:
    """What a report of `reported` does to a message now in `current` (states only move on:
    STATE_RANK)."""
    if STATE_RANK[reported] == STATE_RANK[current]:
        return "same"
    return "stale" if STATE_RANK[reported] < STATE_RANK[current] else "forward"


def status_error(status: Status) -> tuple[dict[str, Any] | None, str | None]:
    """A failed send's error to keep on the message, and its line in the message's history."""
    if status.error is None:
        return None, None
    return status.error.model_dump(), f"{status.error.code}: {status.error.title}"


def named_status(event: Event, sent: SentMessage, participant: ParticipantRef | None) -> Event:
    """The status event as backends get it: naming our message, its conversation and, for a
    relayed copy, the participant it went to."""
    assert event.status is not None
    status = event.status.model_copy(update={"message_id": sent.id, "participant": participant})
    return event.model_copy(update={"status": status, "conversation_id": sent.conversation_id})


# A watermark moves these states forward (never a queued or failed message).
WATERMARK_FROM: dict[str, tuple[str, ...]] = {
    "delivered": ("sent",),
    "read": ("sent", "delivered"),
}


def watermark_moves(event: Event) -> tuple[str, ...]:
    """The states of the messages to its recipient that a watermark moves forward: none when
    it names no recipient or reports a state a watermark does not give."""
    assert event.status is not None
    if event.recipient is None:
        return ()
    return WATERMARK_FROM.get(event.status.state, ())


def covered_status(
    event: Event,
    sent: SentMessage,
    external_id: str | None,
    participant: ParticipantRef | None,
    event_id: str,
) -> Event:
    """One message's status event from a watermark that covers it (its own id, and the
    provider id of the message's first part)."""
    named = named_status(event, sent, participant)
    assert named.status is not None
    status = named.status.model_copy(update={"external_id": external_id})
    return named.model_copy(update={"id": event_id, "status": status, "external_id": external_id})
