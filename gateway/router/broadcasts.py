"""Which identity a broadcast reaches a member on, or why it skips them: a pure decision.

Each member gets one copy. A user linked on several channels is reached on one identity: one
where a free-form message can go now (a channel without a window, or its window open), the
one they wrote from last, else the one linked first; failing that, one whose window is closed
but whose channel has the broadcast's template. A STOP (or the channel's own opt-out) on any
of a member's identities skips the member: they told us to stop, and a broadcast is not what
they are waiting for (docs/broadcasts.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

SkipReason = Literal["opted_out", "no_usable_identity", "window_closed", "expired", "cancelled"]


@dataclass(frozen=True)
class Candidate:
    """One identity of a member, with what the gateway knows of it."""

    channel_id: str
    provider_id: str
    last_inbound_at: float | None
    opted_out: bool


@dataclass(frozen=True)
class ChannelRules:
    """What a channel asks of a message that nobody answered: a window, and templates."""

    window_hours: float | None
    templates: bool


@dataclass(frozen=True)
class Reach:
    channel_id: str
    provider_id: str
    template: bool  # outside the window: the broadcast's template goes instead


@dataclass(frozen=True)
class Skip:
    reason: SkipReason


def window_open(rules: ChannelRules, last_inbound_at: float | None, now: float) -> bool:
    if not rules.window_hours:
        return True
    return last_inbound_at is not None and now - last_inbound_at < rules.window_hours * 3600


def reach(
    candidates: Sequence[Candidate],
    channels: Mapping[str, ChannelRules],
    templated: frozenset[str],
    now: float,
) -> Reach | Skip:
    """Where the member's copy goes. `candidates` in link order; `channels`: the configured
    ones; `templated`: channels the broadcast has a template for."""
    known = [c for c in candidates if c.channel_id in channels]
    if not known:
        return Skip("no_usable_identity")
    if any(c.opted_out for c in known):
        return Skip("opted_out")
    free = [c for c in known if window_open(channels[c.channel_id], c.last_inbound_at, now)]
    if free:
        best = max(free, key=lambda c: c.last_inbound_at or 0.0)  # max keeps the first of ties
        return Reach(best.channel_id, best.provider_id, template=False)
    for c in known:
        if c.channel_id in templated and channels[c.channel_id].templates:
            return Reach(c.channel_id, c.provider_id, template=True)
    return Skip("window_closed")
