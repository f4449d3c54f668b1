"""`gateway demo`'s group scene (docs/conversations.md): one order's conversation across three
channels, through the provider simulators.

A customer on WhatsApp, a courier on SMS and a restaurant on Messenger are each a user, and
participants of a relay conversation for order #1234. The courier's SMS reaches the other two,
attributed, each in their own app; the backend then posts a carousel, which each channel shows
in the richest form it has; the backend closes the conversation. Every send a simulator
accepts is printed as it arrives, so the lines keep the order things happened in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.simulator.messenger import MessengerSimulator
from gateway.simulator.server import SimulatorServer
from gateway.simulator.sms import TwilioSimulator

COURIER = "+14155550100"
RESTAURANT = "6291474124214458"  # the restaurant's page-scoped id (PSID) on Messenger
LATE = "stuck in traffic, 10 min late"
ORDER = "Order #1234"

# What the backend posts after the courier's news: one card per choice, an image on each.
CAROUSEL: dict[str, Any] = {
    "type": "carousel",
    "text": "Sorry for the wait! A dessert on us?",
    "items": [
        {
            "title": title,
            "description": description,
            "media": {"url": f"https://cdn.example.com/{slug}.jpg"},
            "actions": [{"type": "reply", "title": "This one", "payload": f"DESSERT_{slug}"}],
        }
        for title, description, slug in (
            ("Tiramisu", "Mascarpone, espresso", "tiramisu"),
            ("Panna cotta", "Vanilla, berries", "panna_cotta"),
            ("Cannoli", "Ricotta, pistachio", "cannoli"),
        )
    ],
}


class SceneRefused(Exception):
    """The gateway refused a step of the scene: its status and answer."""


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    channel: str  # the demo's channel instance id
    app: str  # the channel as people call it
    address: str  # their id on that channel


def people(wa_user: str) -> list[Person]:
    return [
        Person("Alex", "customer", "wa-demo", "WhatsApp", wa_user),
        Person("Jasper", "courier", "sms-demo", "SMS", COURIER),
        Person("Luigi's", "restaurant", "fb-demo", "Messenger", RESTAURANT),
    ]


def recipient(app: str, send: dict[str, Any]) -> str:
    """Whom a send accepted by the `app` simulator was addressed to."""
    if app == "SMS":
        return str(send["params"]["To"][0])
    if app == "Messenger":
        return str(send["body"]["recipient"]["id"])
    return str(send["body"]["to"])


def shown(app: str, send: dict[str, Any]) -> str:
    """How the `app` showed a send, in a line: its text, or the rich form it took."""
    if app == "SMS":
        params = send["params"]
        media = params.get("MediaUrl", [])
        body = params["Body"][0].replace("\n", " / ")
        return f"MMS with {len(media)} images: {body!r}" if media else repr(body)
    if app == "Messenger":
        message = send["body"]["message"]
        payload = message.get("attachment", {}).get("payload", {})
        if payload.get("template_type") == "generic":
            titles = ", ".join(e["title"] for e in payload["elements"])
            return f"generic template, {len(payload['elements'])} swipeable cards: {titles}"
        return repr(message.get("text", json.dumps(message)))
    body = send["body"]
    if body["type"] == "interactive" and body["interactive"]["type"] == "carousel":
        interactive = body["interactive"]
        cards = interactive["action"]["cards"]
        return (
            f"media carousel {interactive['body']['text']!r}, {len(cards)} cards with"
            " quick-reply buttons"
        )
    if body["type"] == "text":
        return repr(body["text"]["body"])
    return json.dumps(body)


class Watcher:
    """Prints each send a simulator accepts as it arrives, naming the participant it reached."""

    def __init__(self, cast: list[Person], say: Callable[[str, str], None]) -> None:
        self.by_address = {(p.app, p.address): p for p in cast}
        self.say = say

    def watch(self, app: str, simulator: SimulatorServer) -> None:
        def seen(send: dict[str, Any]) -> None:
            person = self.by_address.get((app, recipient(app, send)))
            self.say(f"{app} -> {person.role if person else 'someone else'}", shown(app, send))

        simulator.on_send = seen


async def group_scene(
    api: httpx.AsyncClient,
    wa_user: str,
    sms: TwilioSimulator,
    messenger: MessengerSimulator,
    say: Callable[[str, str], None],
    backend_heard: Callable[[Callable[[list[dict[str, Any]]], bool]], Any],
) -> str:
    """Play the scene on the gateway `api` talks to (as the backend); the conversation id."""
    cast = people(wa_user)
    courier = cast[1]
    say("demo", f"group scene: {ORDER} with a customer, a courier and a restaurant")
    # Messenger lets a page answer only within 24 hours of the person's last message
    # (providers.md, Messenger): the restaurant writes first, as a real one would.
    say("restaurant -> Messenger", f"{ORDER} is ready for pickup")
    await messenger.send_inbound_text(RESTAURANT, f"{ORDER} is ready for pickup")
    await backend_heard(lambda events: any(_from(e, RESTAURANT) for e in events))

    participants = []
    for person in cast:
        user = await _ok(api.post("/v1/users", json={"name": person.name}))
        await _ok(
            api.post(
                f"/v1/users/{user['id']}/identities",
                json={"channel": person.channel, "id": person.address},
            )
        )
        say("backend -> gateway", f"POST /v1/users: {person.name} on {person.app} ({user['id']})")
        participants.append(
            {"user_id": user["id"], "role": person.role, "display_name": person.name}
        )
    conversation = await _ok(
        api.post(
            "/v1/conversations",
            json={"mode": "relay", "metadata": {"order_id": "1234"}, "participants": participants},
        )
    )
    cid = conversation["id"]
    say("backend -> gateway", f"POST /v1/conversations: {ORDER} ({cid}), relay, 3 participants")

    await backend_heard(lambda events: any(_about(e, "conversation.created", cid) for e in events))

    say("courier -> SMS", LATE)
    await sms.send_inbound(COURIER, LATE)
    others = {p["id"] for p in conversation["participants"] if p["role"] != courier.role}
    await backend_heard(lambda events: {p for p, _ in _copies_sent(events, cid)} >= others)

    say("backend -> gateway", f"POST /v1/conversations/{cid}/messages: a carousel of 3 desserts")
    posted = await _ok(api.post(f"/v1/conversations/{cid}/messages", json={"content": CAROUSEL}))
    copies = {c["message_id"] for c in posted["copies"]}
    await backend_heard(lambda events: {m for _, m in _copies_sent(events, cid)} >= copies)

    say("backend -> gateway", f"POST /v1/conversations/{cid}/close: the order is delivered")
    await _ok(api.post(f"/v1/conversations/{cid}/close"))
    await backend_heard(lambda events: any(_about(e, "conversation.closed", cid) for e in events))
    return str(cid)


def _about(event: dict[str, Any], event_type: str, conversation_id: str) -> bool:
    return event["type"] == event_type and event.get("conversation_id") == conversation_id


def _copies_sent(events: list[dict[str, Any]], conversation_id: str) -> set[tuple[str, str]]:
    """(recipient participant, message id) of each of the conversation's copies sent so far:
    its send was accepted, so the simulator printed it."""
    return {
        (e["status"]["participant"]["id"], e["status"]["message_id"])
        for e in events
        if _about(e, "status", conversation_id)
        and "participant" in e["status"]
        and e["status"]["state"] in ("sent", "delivered", "read")
    }


def _from(event: dict[str, Any], address: str) -> bool:
    return event["type"] == "message" and (event.get("sender") or {}).get("id") == address


async def _ok(request: Any) -> dict[str, Any]:
    """The answer's JSON; a refusal stops the scene with what the gateway said."""
    response: httpx.Response = await request
    if response.status_code >= 300:
        raise SceneRefused(f"HTTP {response.status_code} {response.text}")
    return response.json()  # type: ignore[no-any-return]
