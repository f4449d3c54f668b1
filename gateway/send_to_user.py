"""`POST /v1/messages` with `to: {"user": ...}`: read what choosing an identity depends on
(the user, their identities' contact state, the config), let the router decide
(gateway/router/channel_choice.py), and hand the API the route to store with the message.
Strict adaptation rules out channels that would downgrade the content (docs/sending-to-users.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from adapters.base import Adapter
from gateway.config import SendRoutingConfig
from gateway.preview import strict_refusals
from gateway.router.channel_choice import Pick, Reachable, route, user_country
from gateway.schema import Content, SendOptions
from gateway.store import Store, UserRecord
from gateway.store.routes import NewRoute, RouteStep


@dataclass(frozen=True)
class NoIdentity(Exception):
    """No identity of the user can take the message: each reason, per identity."""

    reasons: list[str]


def strict_ruled_out(adapters: Mapping[str, Adapter], content: Content) -> dict[str, str]:
    """The channels a strict send may not use, each with every downgrade it would need."""
    ruled_out = {}
    for channel_id, adapter in adapters.items():
        refusals = strict_refusals(adapter, content)
        if refusals:
            ruled_out[channel_id] = "strict adaptation refused: " + "; ".join(refusals)
    return ruled_out


async def _reachable(
    store: Store, adapters: Mapping[str, Adapter], user: UserRecord
) -> tuple[list[Reachable], list[str]]:
    """The user's identities on configured channels, with their contact state; and why the
    others cannot be used."""
    found, unusable = [], []
    for identity in user.identities:
        adapter = adapters.get(identity.channel_id)
        if adapter is None:
            unusable.append(f"{identity.channel_id}: channel not configured")
            continue
        contact = await store.get_contact(identity.channel_id, identity.provider_id)
        found.append(
            Reachable(
                channel_id=identity.channel_id,
                channel_type=adapter.type,
                provider_id=identity.provider_id,
                phone=identity.phone,
                last_inbound_at=contact.last_inbound_at,
                window_hours=adapter.profile.window_hours,
                opted_out=contact.unsubscribed_at is not None,
            )
        )
    return found, unusable


async def plan_route(
    store: Store,
    adapters: Mapping[str, Adapter],
    config: SendRoutingConfig,
    user: UserRecord,
    content: Content,
    options: SendOptions | None,
) -> NewRoute:
    """The identities to try, in order, with the first one chosen; NoIdentity if none may."""
    identities, unusable = await _reachable(store, adapters, user)
    strict = options is not None and options.adaptation == "strict"
    country, _source = user_country(user.country, identities)
    decided = route(
        identities,
        preferred=user.preferred_channel,
        country=country,
        channel_order=config.channel_order,
        now=time.time(),
        ruled_out=strict_ruled_out(adapters, content) if strict else None,
    )
    if not decided.picks:
        reasons = [f"{s.channel_id}: {s.reason}" for s in decided.skipped] + unusable
        raise NoIdentity(reasons or ["the user has no identities"])
    failover = options.failover if options and options.failover is not None else config.failover

    def step(pick: Pick) -> RouteStep:
        timed = adapters[pick.channel_id].reports_delivery
        return RouteStep(pick.channel_id, pick.provider_id, pick.reason, timed)

    chosen, *rest = decided.picks
    return NewRoute(
        user_id=user.id,
        chosen=step(chosen),
        remaining=[step(p) for p in rest],
        skipped=[step(s) for s in decided.skipped],
        failover=failover,
        timeout_seconds=config.delivery_timeout_seconds,
    )
