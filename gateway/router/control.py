"""Which backend controls a group conversation, and who gets its events: decisions free of
I/O (docs/conversations.md, "Control").

The names follow Messenger's handover protocol
(https://developers.facebook.com/docs/messenger-platform/handover-protocol/): the app in
control (`pass_thread_control` hands it on, `take_thread_control` takes it,
`release_thread_control` gives it back to the Primary Receiver) gets `messages`, the others
`standby`. Here the Primary Receiver is `conversations.default_controller`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The events of a conversation that go to its controller alone, and to the other subscribed
# backends as standby copies: what a participant says and taps. Statuses of relayed copies
# and lifecycle events go to whoever subscribed, in or out of control.
CONTROLLED_TYPES = frozenset({"message", "postback"})


@dataclass(frozen=True)
class Refused:
    """A control change that cannot be made: the API's status, `code`, field and message."""

    status: int
    code: str
    field: str
    message: str


@dataclass(frozen=True)
class Handover:
    """A control change to make: from `previous` to `controller` (None: no one)."""

    action: str
    previous: str | None
    controller: str | None


def hand_over(
    action: str,
    backend: str | None,
    current: str | None,
    default: str | None,
    backends: Sequence[str],
) -> Handover | Refused | None:
    """The change `action` makes to a conversation `current` controls: None when it changes
    nothing (the backend named holds control already), Refused when it cannot be made."""
    if backend is not None and backend not in backends:
        return Refused(422, "unknown_backend", "backend", f"no backend {backend!r} configured")
    if action == "pass":
        if backend is None:
            return Refused(422, "missing_backend", "backend", "name the backend to pass control to")
        target: str | None = backend
    elif action == "take":
        target = backend if backend is not None else default
        if target is None:
            return Refused(
                422,
                "missing_backend",
                "backend",
                "name the backend taking control: no conversations.default_controller is set",
            )
    else:  # release: back to the default controller (Messenger's Primary Receiver), or no one
        if backend is not None and backend != current:
            return Refused(
                409, "not_in_control", "backend", f"backend {backend!r} does not hold control"
            )
        if current is None:
            return None
        target = default if default != current else None
    if target == current:
        return None
    return Handover(action, current, target)


def webhook_targets(
    event_type: str, subscribed: Sequence[str], controller: str | None
) -> tuple[list[str], list[str]]:
    """(backends that get the event itself, backends that get a `standby` copy) among those
    `subscribed` to its type. Without a controller, or for an event that is not a message or
    postback, every subscribed backend gets the event, as in a 1:1 conversation."""
    if controller is None or event_type not in CONTROLLED_TYPES:
        return list(subscribed), []
    return (
        [b for b in subscribed if b == controller],
        [b for b in subscribed if b != controller],
    )
