"""Which of a user's identities a message to the user goes to, and in what order the others
are tried when it fails (docs/sending-to-users.md). Pure: the API reads the user, their
identities' contact state and the config, and this decides.

The order, each identity once and each channel instance once:
1. the identity the user last wrote from, while its window is open;
2. the user's `preferred_channel` (a channel instance id or a channel type);
3. the config's `routing.channel_order` for the user's country (else its `default`);
4. the user's other identities, oldest link first: the order is a preference, not a filter.
Opted-out identities, and those a caller rules out (strict mode), are skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.router.countries import country_of_phone

# A channel with no window of its own (SMS) counts as "open" this long after the user last
# wrote: they are in a conversation there.
DEFAULT_OPEN_HOURS = 24.0


@dataclass(frozen=True)
class Reachable:
    """One identity of the user, with what choosing it depends on."""

    channel_id: str
    channel_type: str
    provider_id: str
    phone: str | None = None  # E.164, only as the provider sent it
    last_inbound_at: float | None = None
    window_hours: float | None = None  # the channel's free-form window (None: it has none)
    opted_out: bool = False


@dataclass(frozen=True)
class Pick:
    """An identity in the order to try, and why it stands there."""

    channel_id: str
    provider_id: str
    reason: str


@dataclass(frozen=True)
class Route:
    picks: list[Pick]  # the first is chosen; the others wait for a failover
    skipped: list[Pick]  # identities left out, each with why


def user_country(country: str | None, identities: Sequence[Reachable]) -> tuple[str | None, str]:
    """The user's country and where it came from: their own `country`, else the calling code
    of the first identity's phone the provider gave (one code shared by several countries,
    such as +1, gives none)."""
    if country:
        return country, "country"
    for identity in identities:
        found = country_of_phone(identity.phone)
        if found:
            return found, f"phone of {identity.channel_id}"
    return None, "unknown"


def _window_open(identity: Reachable, now: float) -> bool:
    if identity.last_inbound_at is None:
        return False
    hours = identity.window_hours or DEFAULT_OPEN_HOURS
    return now - identity.last_inbound_at < hours * 3600


def _matches(entry: str, identity: Reachable) -> bool:
    """A config entry or preference names a channel instance id or a channel type."""
    return entry in (identity.channel_id, identity.channel_type)


def route(
    identities: Sequence[Reachable],
    *,
    preferred: str | None,
    country: str | None,
    channel_order: Mapping[str, Sequence[str]],
    now: float,
    ruled_out: Mapping[str, str] | None = None,
) -> Route:
    """The order to try the user's identities in. `ruled_out`: channel instance ids the
    caller excludes, each with the reason (strict mode's downgrades)."""
    ruled_out = ruled_out or {}
    ordered: list[tuple[Reachable, str]] = []
    recent = sorted(
        (i for i in identities if _window_open(i, now)),
        key=lambda i: i.last_inbound_at or 0.0,
        reverse=True,
    )
    if recent:
        hours_ago = (now - (recent[0].last_inbound_at or now)) / 3600
        ordered.append((recent[0], f"last_inbound ({hours_ago:.1f} h ago, window open)"))
    if preferred:
        ordered += [(i, "preferred_channel") for i in identities if _matches(preferred, i)]
    key = country if country is not None and country in channel_order else "default"
    for entry in channel_order.get(key, ()):
        ordered += [(i, f"channel_order {key}") for i in identities if _matches(entry, i)]
    ordered += [(i, "other identity") for i in identities]
    picks: list[Pick] = []
    skipped: list[Pick] = []
    seen: set[str] = set()  # channel instances: nothing goes twice on one
    for identity, reason in ordered:
        if identity.channel_id in seen:
            continue
        seen.add(identity.channel_id)
        if identity.opted_out:
            skipped.append(Pick(identity.channel_id, identity.provider_id, "opted out"))
        elif identity.channel_id in ruled_out:
            why = ruled_out[identity.channel_id]
            skipped.append(Pick(identity.channel_id, identity.provider_id, why))
        else:
            picks.append(Pick(identity.channel_id, identity.provider_id, reason))
    return Route(picks, skipped)
