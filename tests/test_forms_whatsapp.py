"""A three-field form over WhatsApp: asked one field at a time, a wrong answer re-asked with the
reason, a select asked with reply buttons (tapped, or answered by typing an option's title),
and one `form_response` for the backend at the end."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.whatsapp import WhatsAppSimulator

from .test_e2e_whatsapp import open_window, send, simulator, stack  # noqa: F401 - fixtures, used by name

USER = "16505551234"
FORM = {
    "type": "form",
    "title": "Delivery details",
    "text": "Three quick questions.",
    "fields": [
        {"name": "name", "label": "Your name?"},
        {"name": "email", "label": "Your email?", "type": "email"},
        {
            "name": "size",
            "label": "Which size?",
            "type": "select",
            "options": [
                {"value": "S", "title": "Small"},
                {"value": "M", "title": "Medium"},
                {"value": "L", "title": "Large"},
            ],
        },
    ],
}


async def next_send(simulator: WhatsAppSimulator, seen: int) -> tuple[dict[str, Any], int]:
    """The next message body the gateway sends the user (waits for it)."""
    async with asyncio.timeout(10):
        while True:
            for index in range(seen, len(simulator.sent)):
                body: dict[str, Any] = simulator.sent[index]["body"]
                if body.get("to") == USER:
                    return body, index + 1
            await asyncio.sleep(0.02)


async def next_text(simulator: WhatsAppSimulator, seen: int) -> tuple[str, int]:
    """The body of the next message the gateway sends the user, which must be a text."""
    body, seen = await next_send(simulator, seen)
    assert body["type"] == "text", body
    return str(body["text"]["body"]), seen


async def answer_up_to_the_select(
    simulator: WhatsAppSimulator, seen: int
) -> tuple[dict[str, Any], int]:
    """Name, a wrong email and a right one; the select question the gateway asks next."""
    intro, seen = await next_text(simulator, seen)
    assert intro == "Delivery details\nThree quick questions."
    first, seen = await next_text(simulator, seen)
    assert first == "(1/3) Your name?"

    await simulator.send_inbound_text(USER, "Sheena Nelson")
    second, seen = await next_text(simulator, seen)
    assert second == "(2/3) Your email?"
    await simulator.send_inbound_text(USER, "sheena at example")
    again, seen = await next_text(simulator, seen)
    assert again == "'sheena at example' is not an email address.\n(2/3) Your email?"
    await simulator.send_inbound_text(USER, "sheena@example.com")
    return await next_send(simulator, seen)


async def form_response(backend: BackendRecorder) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    events = await backend.wait_for(
        lambda ev: any(
            e.get("message", {}).get("content", {}).get("type") == "form_response" for e in ev
        )
    )
    [response] = [
        e for e in events if e.get("message", {}).get("content", {}).get("type") == "form_response"
    ]
    return response, events


async def test_form_completed_with_one_invalid_answer_and_a_tapped_button(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    await open_window(simulator, backend, USER)
    seen = len(simulator.sent)
    form_id = await send(stack, {"to": {"channel": "wa-main", "id": USER}, "content": FORM})
    third, seen = await answer_up_to_the_select(simulator, seen)
    # The select is an interactive reply-buttons message, one button per option.
    assert third["type"] == "interactive"
    assert third["interactive"] == {
        "type": "button",
        "body": {"text": "(3/3) Which size?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "S", "title": "Small"}},
                {"type": "reply", "reply": {"id": "M", "title": "Medium"}},
                {"type": "reply", "reply": {"id": "L", "title": "Large"}},
            ]
        },
    }
    await simulator.send_inbound_button_reply(USER, "M")  # the user taps "Medium"

    response, events = await form_response(backend)
    assert response["message"]["content"]["form_id"] == form_id
    assert response["message"]["content"]["values"] == {
        "name": "Sheena Nelson",
        "email": "sheena@example.com",
        "size": "M",
    }
    assert response["sender"]["id"] == USER
    # The answers themselves were the form's, not messages for the backend.
    texts = [e["message"]["content"].get("text") for e in events if e["type"] == "message"]
    assert "Sheena Nelson" not in texts
    assert not any(e["type"] == "postback" for e in events)


async def test_a_select_can_be_answered_by_typing_the_options_title(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    await open_window(simulator, backend, USER)
    seen = len(simulator.sent)
    await send(stack, {"to": {"channel": "wa-main", "id": USER}, "content": FORM})
    third, seen = await answer_up_to_the_select(simulator, seen)
    assert third["interactive"]["type"] == "button"
    await simulator.send_inbound_text(USER, "  large! ")

    response, events = await form_response(backend)
    assert response["message"]["content"]["values"]["size"] == "L"
    texts = [e["message"]["content"].get("text") for e in events if e["type"] == "message"]
    assert "  large! " not in texts


async def test_cancel_ends_the_form(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    await open_window(simulator, backend, USER)
    seen = len(simulator.sent)
    await send(stack, {"to": {"channel": "wa-main", "id": USER}, "content": FORM})
    _intro, seen = await next_text(simulator, seen)
    _first, seen = await next_text(simulator, seen)
    await simulator.send_inbound_text(USER, "Cancel!")
    done, seen = await next_text(simulator, seen)
    assert done == "Cancelled: Delivery details"
    events = await backend.wait_for(
        lambda ev: any(e.get("system", {}).get("kind") == "form_cancelled" for e in ev)
    )
    [cancelled] = [e for e in events if e.get("system", {}).get("kind") == "form_cancelled"]
    assert cancelled["channel_data"]["values"] == {}
    # After the form, text is an ordinary message again.
    wamid = await simulator.send_inbound_text(USER, "thanks")
    await backend.wait_for(lambda ev: any(e.get("external_id") == wamid for e in ev))


TRACK = {
    "type": "buttons",
    "text": "Order A-1042 is being prepared.",
    "actions": [{"type": "reply", "title": "Track it", "payload": "TRACK_A1042"}],
}


async def postback_reaches_the_backend(backend: BackendRecorder, wamid: str) -> dict[str, Any]:
    events = await backend.wait_for(lambda ev: any(e.get("external_id") == wamid for e in ev))
    [tap] = [e for e in events if e.get("external_id") == wamid]
    return tap


async def test_a_tap_on_an_earlier_message_goes_to_the_backend_and_the_form_waits(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    await open_window(simulator, backend, USER)
    seen = len(simulator.sent)
    await send(stack, {"to": {"channel": "wa-main", "id": USER}, "content": TRACK})
    offer, seen = await next_send(simulator, seen)
    assert offer["interactive"]["action"]["buttons"][0]["reply"]["id"] == "TRACK_A1042"
    form_id = await send(stack, {"to": {"channel": "wa-main", "id": USER}, "content": FORM})
    _intro, seen = await next_text(simulator, seen)
    first, seen = await next_text(simulator, seen)
    assert first == "(1/3) Your name?"

    # While the form asks for a name, the user taps the earlier message's button.
    wamid = await simulator.send_inbound_button_reply(USER, "TRACK_A1042")
    tap = await postback_reaches_the_backend(backend, wamid)
    assert tap["type"] == "postback"
    assert tap["postback"]["payload"] == "TRACK_A1042" and tap["postback"]["title"] == "Track it"
    assert tap["sender"]["id"] == USER

    # The form is still at its first question: the next text answers it, nobody was told off.
    await simulator.send_inbound_text(USER, "Sheena Nelson")
    second, seen = await next_text(simulator, seen)
    assert second == "(2/3) Your email?"
    await simulator.send_inbound_text(USER, "sheena@example.com")
    third, seen = await next_send(simulator, seen)
    assert third["interactive"]["body"]["text"] == "(3/3) Which size?"

    # At the select too, a tap on the other message is not an answer; one on "Large" is.
    again = await simulator.send_inbound_button_reply(USER, "TRACK_A1042")
    assert (await postback_reaches_the_backend(backend, again))["type"] == "postback"
    await simulator.send_inbound_button_reply(USER, "L")
    response, events = await form_response(backend)
    assert response["message"]["content"]["form_id"] == form_id
    assert response["message"]["content"]["values"] == {
        "name": "Sheena Nelson",
        "email": "sheena@example.com",
        "size": "L",
    }
    taps = [e["postback"]["payload"] for e in events if e["type"] == "postback"]
    assert taps == ["TRACK_A1042", "TRACK_A1042"]  # the form's own "Large" was its answer
    # Nothing but the questions went to the user: no "'Track it' is not ..." re-ask.
    later = [s["body"] for s in simulator.sent[seen:] if s["body"].get("to") == USER]
    assert later == []
