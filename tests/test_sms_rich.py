"""Rich messages over SMS: a carousel answered by number, and a form filled in by text."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.sms import TwilioSimulator

from .test_sms_e2e import USER, post_message, simulator, stack, view  # noqa: F401 - fixtures

MESSAGES = Path(__file__).parent / "fixtures" / "messages"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((MESSAGES / f"{name}.json").read_text()))


async def next_body(simulator: TwilioSimulator, seen: int) -> tuple[dict[str, list[str]], int]:
    """The next message the gateway sends (waits for it)."""
    async with asyncio.timeout(10):
        while len(simulator.sent) <= seen:
            await asyncio.sleep(0.02)
    return simulator.sent[seen]["params"], seen + 1


async def test_carousel_as_one_mms_and_the_answer_2_is_the_second_items_postback(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    seen = len(simulator.sent)
    message_id = await post_message(stack, USER, load("carousel"))
    params, seen = await next_body(simulator, seen)
    assert params["MediaUrl"] == [
        "https://cdn.example.com/margherita.jpg",
        "https://cdn.example.com/funghi.jpg",
        "https://cdn.example.com/diavola.jpg",
    ]
    assert "2. Funghi - Mushrooms, mozzarella" in params["Body"][0]
    await backend.wait_for(lambda ev: any(e["type"] == "status" for e in ev))
    history = (await view(stack, message_id))["history"]
    assert {"state": "downgraded", "detail": "carousel → numbered_text: sms has no carousel"} in [
        {k: h.get(k) for k in ("state", "detail")} for h in history
    ]

    await simulator.send_inbound(USER, " Two ")
    events = await backend.wait_for(lambda ev: any(e["type"] == "postback" for e in ev))
    [postback] = [e for e in events if e["type"] == "postback"]
    assert postback["postback"] == {"payload": "ORDER_FUNGHI", "title": "Funghi"}
    assert postback["channel_data"]["choices_message_id"] == message_id
    assert postback["sender"]["id"] == USER


async def test_form_over_sms_with_one_invalid_answer(
    stack: Any, simulator: TwilioSimulator, backend: BackendRecorder
) -> None:
    seen = len(simulator.sent)
    form_id = await post_message(stack, USER, load("form"))
    intro, seen = await next_body(simulator, seen)
    assert intro["Body"] == ["Delivery details\nThree quick questions."]
    first, seen = await next_body(simulator, seen)
    assert first["Body"][0].startswith("(1/3) Which size?\n1. Small\n2. Medium\n3. Large")

    await simulator.send_inbound(USER, "large")
    second, seen = await next_body(simulator, seen)
    assert second["Body"] == ["(2/3) Your email?"]
    await simulator.send_inbound(USER, "me at example dot com")
    again, seen = await next_body(simulator, seen)
    assert again["Body"] == ["'me at example dot com' is not an email address.\n(2/3) Your email?"]
    await simulator.send_inbound(USER, "me@example.com")
    third, seen = await next_body(simulator, seen)
    assert third["Body"] == ["(3/3) Anything else? (optional: reply skip)"]
    await simulator.send_inbound(USER, "skip")

    events = await backend.wait_for(
        lambda ev: any(
            e.get("message", {}).get("content", {}).get("type") == "form_response" for e in ev
        )
    )
    [done] = [
        e for e in events if e.get("message", {}).get("content", {}).get("type") == "form_response"
    ]
    assert done["message"]["content"] == {
        "type": "form_response",
        "form_id": form_id,
        "values": {"size": "L", "email": "me@example.com", "note": None},
        "quick_replies": [],
    }
