"""Opt-outs: which inbound events set a lasting one and which clear it (pure).

A lasting opt-out is the user's own, or the provider's word for it: a `subscription` event
with state `unsubscribed` (SMS STOP, Viber `unsubscribed`, LINE `unfollow`, Twilio 21610 in a
status callback) or a send error the adapter marks `unsubscribed`. The dispatcher then fails
sends to that user at once. It ends with a `subscription` event `subscribed` (SMS START,
Viber `subscribed`, LINE `follow`) or an event of the channel's `Adapter.opt_ins` (most
channels: the user wrote to the business). HELP changes nothing.

"Cannot be reached right now" is not an opt-out: Viber 5/6 for a user who has not subscribed
yet, Messenger 551, WhatsApp 131026 and 131050 (a marketing opt-out only) fail that one send.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters import ADAPTERS
from adapters.base import USER_ACTIVITY, OptIn
from gateway.schema import Event


@dataclass(frozen=True)
class ConsentChange:
    opted_out: bool
    reason: str | None = None  # what opted them out: the keyword, or "unsubscribed"


def consent_change(event: Event) -> ConsentChange | None:
    """What `event` says about its sender's consent; None when it says nothing."""
    if event.sender is None:
        return None
    if event.type == "subscription" and event.subscription is not None:
        state = event.subscription.state
        if state == "unsubscribed":
            return ConsentChange(True, event.subscription.keyword or "unsubscribed")
        return ConsentChange(False) if state == "subscribed" else None
    adapter = ADAPTERS.get(event.channel.type)
    opt_ins = adapter.opt_ins if adapter is not None else USER_ACTIVITY
    return ConsentChange(False) if any(_matches(o, event) for o in opt_ins) else None


def _matches(opt_in: OptIn, event: Event) -> bool:
    kind = event.system.kind if event.type == "system" and event.system else event.type
    if kind != opt_in.event:
        return False
    if opt_in.when is None:
        return True
    field, value = opt_in.when
    return bool((event.channel_data or {}).get(field) == value)
