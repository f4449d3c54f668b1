"""A person in two conversations, end to end through the WhatsApp simulator: no rule decides,
so the gateway asks "Which chat is this for?" from the business's number, holds the message,
and the answer "2" routes it there, relayed like any message of that conversation
(docs/conversations.md, "Routing a person in several conversations")."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.whatsapp import WhatsAppSimulator

from .test_e2e_whatsapp import AUTH, simulator, stack  # noqa: F401 (fixtures)

CUSTOMER, NEIGHBOUR = "16505551234", "16505550000"


async def conversation(gw: Any, metadata: dict[str, str]) -> str:
    people = [
        {
            "identity": {"channel": "wa-main", "id": CUSTOMER},
            "role": "customer",
            "display_name": "Sheena",
        },
        {
            "identity": {"channel": "wa-main", "id": NEIGHBOUR},
            "role": "neighbour",
            "display_name": "Ana",
        },
    ]
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/v1/conversations",
            json={"metadata": metadata, "participants": people},
            headers=AUTH,
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def texts_to(simulator: WhatsAppSimulator, to: str) -> list[str]:
    return [
        s["body"]["text"]["body"]
        for s in simulator.sent
        if s["body"].get("to") == to and s["body"].get("type") == "text"
    ]


async def test_the_numbered_question_routes_the_held_message(
    stack: Any, simulator: WhatsAppSimulator, backend: BackendRecorder
) -> None:
    # The neighbour wrote once, so that copies to them are within WhatsApp's 24 hours.
    hello = await simulator.send_inbound_text(NEIGHBOUR, "hello", name="Ana")
    await backend.wait_for(lambda ev: any(e.get("external_id") == hello for e in ev))
    order = await conversation(stack, {"title": "Order #1234"})
    community = await conversation(stack, {"subject": "Community"})

    held = await simulator.send_inbound_text(CUSTOMER, "10 min late", name="Sheena")
    question = "Which chat is this for?\n1. Community\n2. Order #1234\nReply with the number."
    await backend.wait_for(lambda _ev: question in texts_to(simulator, CUSTOMER))
    assert not any(e.get("external_id") == held for e in backend.events)

    await simulator.send_inbound_text(CUSTOMER, "2", name="Sheena")
    events = await backend.wait_for(lambda ev: any(e.get("external_id") == held for e in ev))
    [routed] = [e for e in events if e.get("external_id") == held]
    assert routed["conversation_id"] == order and routed["author"]["role"] == "customer"
    await backend.wait_for(
        lambda _ev: "Sheena (customer): 10 min late" in texts_to(simulator, NEIGHBOUR)
    )
    # The answer itself reaches no backend and nobody else.
    assert not any(
        e["type"] == "message" and e["message"]["content"].get("text") == "2"
        for e in backend.events
    )
    assert community != order
