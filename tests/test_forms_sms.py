"""A form over SMS while earlier numbered choices are still open: the user's numbered reply
answers the form's question (the latest one they were asked), not the earlier message's
choices; a select is asked as numbered text and answered by its number."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.sms import TwilioSimulator

from .test_forms_whatsapp import form_response
from .test_sms_e2e import USER, post_message, simulator, stack  # noqa: F401 - fixtures, used by name

SLOTS = {
    "type": "buttons",
    "text": "When should we deliver?",
    "actions": [
        {"type": "reply", "title": "Morning", "payload": "SLOT_AM"},
        {"type": "reply", "title": "Afternoon", "payload": "SLOT_PM"},
    ],
}
FORM = {
    "type": "form",
    "title": "Your order",
    "fields": [
        {"name": "pots", "label": "How many pots?", "type": "number"},
        {
            "name": "size",
            "label": "Which size?",
            "type": "select",
            "options": [{"value": "S", "title": "Small"}, {"value": "L", "title": "Large"}],
        },
    ],
}


async def next_body(simulator: TwilioSimulator, seen: int) -> tuple[str, int]:
    """The body of the next SMS the gateway sends the user (waits for it)."""
    async with asyncio.timeout(10):
        while len(simulator.sent) <= seen:
            await asyncio.sleep(0.02)
    params = simulator.sent[seen]["params"]
    assert params["To"] == [USER]
    return str(params["Body"][0]), seen + 1


async def test_a_numbered_reply_answers_the_open_form_not_earlier_choices(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    await post_message(stack, USER, SLOTS)
    offer, seen = await next_body(simulator, 0)
    assert offer.startswith("When should we deliver?\n1. Morning\n2. Afternoon")
    form_id = await post_message(stack, USER, FORM)
    intro, seen = await next_body(simulator, seen)
    assert intro == "Your order"
    first, seen = await next_body(simulator, seen)
    assert first == "(1/2) How many pots?"

    # "2" would be "Afternoon" for the earlier message; the form asked last, so it is 2 pots.
    await simulator.send_inbound(USER, "2")
    second, seen = await next_body(simulator, seen)
    assert second.startswith("(2/2) Which size?\n1. Small\n2. Large")
    await simulator.send_inbound(USER, "2")

    response, events = await form_response(backend)
    assert response["message"]["content"] == {
        "type": "form_response",
        "form_id": form_id,
        "values": {"pots": 2, "size": "L"},
        "quick_replies": [],
    }
    assert [e for e in events if e["type"] == "postback"] == []
    assert len(simulator.sent) == seen  # no re-asked question
