"""First sends' plans recorded together (store/plans.py) end as they would recorded one at a
time (`Store.record_plan`). Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import time

from gateway.downgrade import Choice
from gateway.store import Store
from gateway.store.plans import Plan

from .store_events import new_message, targets
from .test_store_contract import text_from

NOW = time.time()
SMS_TO_BUTTONS = "buttons → numbered_text: sms has no buttons"


async def test_plans_recorded_together_end_as_recorded_one_by_one(store: Store) -> None:
    for n in (1, 2, 3):
        await store.create_message(new_message(f"msg_{n}"), NOW + n)
    road = [Choice(1, "Got it", "ROAD_OK"), Choice(2, "Need a route", "ROAD_ROUTE")]
    later = [Choice(1, "Yes", "LATER_YES"), Choice(2, "No", "LATER_NO")]
    await store.record_plans_together(
        [
            Plan("msg_1", "sms", "+14155550100", [SMS_TO_BUTTONS], road, NOW + 60),
            Plan("msg_2", "sms", "+14155550101", [SMS_TO_BUTTONS, "text shortened"], road,
                 NOW + 60),
            Plan("msg_3", "sms", "+14155550100", [], later, NOW + 60),  # same recipient: last wins
        ],
        NOW,
    )  # fmt: skip
    for message_id, expected in (
        ("msg_1", [SMS_TO_BUTTONS]),
        ("msg_2", [SMS_TO_BUTTONS, "text shortened"]),
        ("msg_3", []),
    ):
        record = await store.get_message(message_id)
        assert record is not None
        assert [d for _at, state, d in record.history if state == "downgraded"] == expected
    row = await store.append_inbox("sms", "p1", "u", "{}", b"2", NOW + 1)
    assert row
    first, second = await store.record_inbound(
        row,
        [(text_from("+14155550100", "2"), "SM1"), (text_from("+14155550101", "2"), "SM2")],
        targets,
        NOW + 1,
    )
    assert first.postback is not None and second.postback is not None
    assert (first.postback.payload, first.channel_data) == (
        "LATER_NO",
        {"answered_with_text": "2", "choices_message_id": "msg_3"},
    )
    assert second.postback.payload == "ROAD_ROUTE"


async def test_no_plans_record_nothing(store: Store) -> None:
    await store.create_message(new_message("msg_1"), NOW)
    await store.record_plans_together([Plan("msg_1", "sms", "+14155550100", [], [], NOW)], NOW)
    record = await store.get_message("msg_1")
    assert record is not None
    assert [state for _at, state, _d in record.history] == ["queued"]
