"""Opt-outs, channel by channel: what sets a lasting one and what ends it, on both stores.

The rules: gateway/consent.py, and each adapter's OPT_INS (with the provider's doc beside it).
Each row is a user's events in the order the gateway reads them, each `at` seconds after T0
(when they happened), and the opt-out left at the end: its reason, or None.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.schema import ChannelRef, Event, Party
from gateway.store import Store

from .store_events import targets

T0 = 1_765_000_000.0
USER = "user-1"
# The gateway reads every event a minute after T0 (later than any of them happened).
READ_AT = T0 + 60


def sub(state: str, keyword: str | None = None) -> dict[str, Any]:
    return {"type": "subscription", "subscription": {"state": state, "keyword": keyword}}


def text(**channel_data: Any) -> dict[str, Any]:
    content = {"content": {"type": "text", "text": "hi"}}
    return {"type": "message", "message": content, "channel_data": channel_data or None}


def tap(**channel_data: Any) -> dict[str, Any]:
    return {
        "type": "postback",
        "postback": {"payload": "MENU"},
        "channel_data": channel_data or None,
    }


def system(kind: str, **channel_data: Any) -> dict[str, Any]:
    return {"type": "system", "system": {"kind": kind}, "channel_data": channel_data}


# An opt-out an older gateway recorded from a Viber send refused with 5 (before this rule).
RECORDED = "5: receiverNotRegistered"

CASES: list[tuple[str, str, list[tuple[float, dict[str, Any] | str]], str | None]] = [
    # SMS (Twilio): STOP until START; nothing else the user writes lifts Twilio's block.
    ("sms_stop", "sms", [(1, sub("unsubscribed", "STOP"))], "STOP"),
    ("sms_start", "sms", [(1, sub("unsubscribed", "STOP")), (2, sub("subscribed", "START"))], None),
    ("sms_text_keeps_stop", "sms", [(1, sub("unsubscribed", "STOP")), (2, text())], "STOP"),
    (
        "sms_help_keeps_stop",
        "sms",
        [(1, sub("unsubscribed", "STOP")), (2, sub("help", "HELP"))],
        "STOP",
    ),
    # Viber: only `unsubscribed` opts out; writing, `subscribed`, or opening the chat
    # subscribed ends it.
    ("viber_unsubscribed", "viber", [(1, sub("unsubscribed"))], "unsubscribed"),
    ("viber_text", "viber", [(1, sub("unsubscribed")), (2, text())], None),
    ("viber_button_tap", "viber", [(1, sub("unsubscribed")), (2, tap())], None),
    ("viber_subscribed", "viber", [(1, sub("unsubscribed")), (2, sub("subscribed"))], None),
    (
        "viber_conversation_started_subscribed",
        "viber",
        [(1, sub("unsubscribed")), (2, system("conversation_started", subscribed=True))],
        None,
    ),
    (
        "viber_conversation_started_not_subscribed",
        "viber",
        [(1, sub("unsubscribed")), (2, system("conversation_started", subscribed=False))],
        "unsubscribed",
    ),
    ("viber_text_ends_a_recorded_send_error", "viber", [(0, RECORDED), (2, text())], None),
    # A message written before the opt-out but read after it (a provider's retry).
    ("viber_late_older_text", "viber", [(2, sub("unsubscribed")), (1, text())], "unsubscribed"),
    # LINE: unfollow (blocked) until follow, or a message in the user's own chat.
    ("line_unfollow", "line", [(1, sub("unsubscribed", "unfollow"))], "unfollow"),
    (
        "line_follow",
        "line",
        [(1, sub("unsubscribed", "unfollow")), (2, sub("subscribed", "follow"))],
        None,
    ),
    (
        "line_own_chat_text",
        "line",
        [(1, sub("unsubscribed", "unfollow")), (2, text(source_type="user"))],
        None,
    ),
    (
        "line_group_text_keeps_it",
        "line",
        [(1, sub("unsubscribed", "unfollow")), (2, text(source_type="group", group_id="C1"))],
        "unfollow",
    ),
    # Messenger and WhatsApp: no opt-out webhook (a marketing STOP is no opt-out); the user
    # writing ends any opt-out recorded before.
    (
        "messenger_marketing_stop_is_no_opt_out",
        "messenger",
        [(1, system("optin", optin={"notification_messages_status": "STOP NOTIFICATIONS"}))],
        None,
    ),
    ("messenger_text", "messenger", [(0, RECORDED), (2, text())], None),
    ("whatsapp_text", "whatsapp", [(0, RECORDED), (2, text())], None),
    (
        "whatsapp_reaction",
        "whatsapp",
        [
            (0, RECORDED),
            (2, {"type": "reaction", "reaction": {"emoji": "👍", "message_external_id": "w1"}}),
        ],
        None,
    ),
]


def event(channel: str, at: float, fields: dict[str, Any]) -> Event:
    return Event.model_validate(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "channel": ChannelRef(id=channel, type=channel),
            "external_id": uuid.uuid4().hex,
            "timestamp": datetime.fromtimestamp(T0 + at, UTC),
            "sender": Party(id=USER),
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("channel", "steps", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_opt_out_rules(
    store: Store, channel: str, steps: list[tuple[float, dict[str, Any] | str]], reason: str | None
) -> None:
    for at, step in steps:
        if isinstance(step, str):  # an opt-out the dispatcher recorded from a send error
            await store.set_unsubscribed(channel, USER, step, T0 + at)
            continue
        row = await store.append_inbox(channel, uuid.uuid4().hex, "u", "{}", b"{}", READ_AT)
        assert row
        stored = await store.record_inbound(
            row, [(event(channel, at, step), uuid.uuid4().hex)], targets, READ_AT
        )
        assert stored  # reached the backends too
    contact = await store.get_contact(channel, USER)
    assert contact.unsubscribe_reason == reason
    assert (contact.unsubscribed_at is None) == (reason is None)
