"""Control of a group conversation in the store: handing it over, and the standby copies of
its events. Each function runs inside the caller's transaction; the decisions are the
router's (gateway/router/control.py), docs/conversations.md ("Control").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.ids import new_id
from gateway.router.control import Refused, hand_over, webhook_targets
from gateway.schema import Event
from gateway.store import conversations, writes
from gateway.store.database import Tx
from gateway.store.records import TargetsFor

if TYPE_CHECKING:  # steps imports this module; conversations imports steps
    from gateway.store.conversations import ConversationRecord


def change(
    tx: Tx,
    conversation: ConversationRecord,
    action: str,
    backend: str | None,
    default: str | None,
    backends: Sequence[str],
    targets_for: TargetsFor,
    now: float,
) -> None:
    """Apply a `pass`, `take` or `release` (emits control.passed when control moves). Raises
    ConversationConflict for one that cannot be made, or a closed conversation."""
    conversations.require_open(conversation)
    decided = hand_over(action, backend, conversation.controller, default, backends)
    if isinstance(decided, Refused):
        raise conversations.ConversationConflict(
            decided.status, decided.code, decided.field, decided.message
        )
    if decided is not None:
        conversations.set_controller(
            tx, conversation, decided.action, decided.controller, targets_for, now
        )


def controlled(targets_for: TargetsFor, controller: str | None) -> TargetsFor:
    """The backends that get a conversation's events themselves: for its messages and
    postbacks, only the controller (when it subscribed to them)."""
    if controller is None:
        return targets_for
    return lambda event_type: webhook_targets(event_type, targets_for(event_type), controller)[0]


def send_standby(
    tx: Tx,
    event: Event,
    dedupe_key: str,
    targets_for: TargetsFor,
    controller: str | None,
    now: float,
) -> None:
    """Queue a `standby` copy of a conversation's message or postback for each subscribed
    backend not in control. The copy is an event of its own (its own id, `standby: true`):
    a webhook's body is its event as stored."""
    if controller is None:
        return
    _mine, others = webhook_targets(event.type, targets_for(event.type), controller)
    if not others:
        return
    copy = event.model_copy(update={"id": new_id("evt"), "standby": True})
    if writes.insert_event(tx, copy, f"{dedupe_key}:standby", now):
        writes.enqueue_webhooks(tx, copy, lambda _type: others, now)
