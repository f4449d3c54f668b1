"""Provider groups as conversations: a LINE group or room, or a WhatsApp group, is a
conversation of its own, made on its first message, in the transaction of that message
(docs/conversations.md, "Provider groups").

The group itself is a participant (role `group`): what the conversation says to it goes to
the group, where every member sees it. Each member who speaks joins as a participant (role
`member`) reached through the group, never privately.
"""

from __future__ import annotations

import json

from gateway.ids import new_id
from gateway.router.conversations import Membership, RoutingPolicy
from gateway.schema import Event
from gateway.store import conversations
from gateway.store.database import Tx
from gateway.store.records import TargetsFor

# Providers send no member names in groups (LINE never does; WhatsApp sends a profile name):
# a member without one is shown as this, never as their provider id (docs/conversations.md).
MEMBER_NAME = "Group member"


def member(
    tx: Tx, event: Event, group: str, policy: RoutingPolicy, targets_for: TargetsFor, now: float
) -> Membership | None:
    """The seat of the event's sender in the conversation of provider group `group`: the
    conversation is made if it is new, the sender joins if they first speak. None when the
    backend closed it: the group's messages then go on as plain events."""
    assert event.sender is not None
    channel_id = event.channel.id
    kind = (event.channel_data or {}).get("source_type") or "group"
    conversation = conversations.create(
        tx,
        new_id("conv"),
        policy.provider_groups_owner,
        "relay",
        json.dumps({"provider_group": {"channel": channel_id, "id": group, "type": kind}}),
        [
            conversations.SeatRequest(
                "group", "group", "Group", channel_id=channel_id, provider_id=group
            )
        ],
        targets_for,
        now,
        group=(channel_id, group),
    )
    if conversation.state != "open":
        return None
    for present in conversation.participants:
        seat = present.seat
        if seat.present and (seat.channel_id, seat.provider_id) == (channel_id, event.sender.id):
            return Membership(seat, conversation.mode, now)
    request = conversations.SeatRequest(
        "participant",
        "member",
        event.sender.name or MEMBER_NAME,
        channel_id=channel_id,
        provider_id=event.sender.id,
        via_group=group,
    )
    joined = conversations.add(tx, conversation, request, targets_for, now)
    return Membership(joined.seat, conversation.mode, now)
