"""Agents, bots and control end to end through the simulators (issue 22, item 7): control
passes bot → agent desk → bot with `message` events to the controller and `standby` copies
to the other backend; an agent observes silently, then speaks and becomes visible, announced
once, before the first message the others see from them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder

from .conftest import BACKEND_SECRET, base_config, config_from
from .test_conversations_e2e import texts_to
from .test_everywhere import (  # noqa: F401  (sims: the simulators fixture)
    WA_USER,
    five_channel_gateway,
    sims,
)
from .test_sms_e2e import USER as SMS_USER
from .test_sms_e2e import sms_channel

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}
AGENT_PHONE = "+14155550177"  # an agent on SMS
STRANGER = "16505559999"  # on WhatsApp, in no group conversation
TALK = ["message", "postback", "status", "control.passed", "participant.joined"]


@pytest.fixture
async def desk() -> AsyncIterator[BackendRecorder]:
    """The agent desk's backend; the `backend` fixture is the bot's."""
    recorder = BackendRecorder(BACKEND_SECRET)
    await recorder.start()
    yield recorder
    await recorder.stop()


async def gateway(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    bot: BackendRecorder,
    desk: BackendRecorder,
    **conversations: Any,
) -> Any:
    """WhatsApp and SMS on their simulators; the bot and the desk both subscribed."""
    data = base_config(tmp_path, public_url="https://sms.example.com")
    data["backends"] = [
        {"id": "bot", "url": bot.url, "secret": BACKEND_SECRET, "events": TALK},
        {"id": "desk", "url": desk.url, "secret": BACKEND_SECRET, "events": TALK},
    ]
    data["channels"][0]["api_base_url"] = sims["whatsapp"].base_url
    data["channels"].append(sms_channel("sms-main", sims["sms"].base_url))
    data["conversations"] = conversations
    gw = await start_gateway(config_from(data))
    sims["whatsapp"].webhook_url = f"{gw.url}/webhooks/wa-main"
    sims["sms"].webhook_url = f"{gw.url}/webhooks/sms-main"
    sims["sms"].public_url = "https://sms.example.com/webhooks/sms-main"
    return gw


# The customer on WhatsApp and the courier on SMS, in one order's conversation.
ORDER_CHAT = {
    "participants": [
        {"identity": {"channel": "wa-main", "id": WA_USER},
         "role": "customer", "display_name": "Sheena"},
        {"identity": {"channel": "sms-main", "id": SMS_USER},
         "role": "courier", "display_name": "Jasper"},
    ]
}  # fmt: skip


def said(events: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [
        e for e in events if e["type"] == "message" and e["message"]["content"].get("text") == text
    ]


async def test_control_passes_bot_to_desk_and_back(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
    desk: BackendRecorder,
) -> None:
    bot = backend
    gw = await gateway(tmp_path, start_gateway, sims, bot, desk, default_controller="bot")
    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as api:
        created = await api.post("/v1/conversations", json=ORDER_CHAT)
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        assert created.json()["controller"] == "bot"
        control = f"/v1/conversations/{cid}/control"

        async def customer_says(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
            """What the bot and the desk got of it: (bot's event, desk's event)."""
            await sims["whatsapp"].send_inbound_text(WA_USER, text)
            await bot.wait_for(lambda ev: bool(said(ev, text)))
            await desk.wait_for(lambda ev: bool(said(ev, text)))
            [to_bot], [to_desk] = said(bot.events, text), said(desk.events, text)
            assert to_bot["conversation_id"] == to_desk["conversation_id"] == cid
            assert to_bot["external_id"] == to_desk["external_id"]
            return to_bot, to_desk

        # The bot controls from the start: the desk gets a standby copy.
        to_bot, to_desk = await customer_says("where is my order?")
        assert "standby" not in to_bot and to_desk["standby"] is True
        assert to_bot["id"] != to_desk["id"]

        # The bot passes control to the desk: an agent takes over.
        passed = await api.post(control, json={"action": "pass", "backend": "desk"})
        assert passed.status_code == 200, passed.text
        assert passed.json()["controller"] == "desk"
        assert (await api.get(f"/v1/conversations/{cid}")).json()["controller"] == "desk"
        to_bot, to_desk = await customer_says("I want a human")
        assert to_bot["standby"] is True and "standby" not in to_desk

        # The desk releases it: control goes back to the default controller, the bot.
        released = await api.post(control, json={"action": "release", "backend": "desk"})
        assert released.status_code == 200 and released.json()["controller"] == "bot"
        to_bot, to_desk = await customer_says("thanks, all good")
        assert "standby" not in to_bot and to_desk["standby"] is True

        # Releasing what it does not hold is refused, naming the field.
        refused = await api.post(control, json={"action": "release", "backend": "desk"})
        assert refused.status_code == 409
        assert [p["field"] for p in refused.json()["problems"]] == ["backend"]

    # Each backend that asked for control.passed heard of both changes.
    for recorder in (bot, desk):
        await recorder.wait_for(
            lambda ev: len([e for e in ev if e["type"] == "control.passed"]) == 2
        )
        changes = [e["control"] for e in recorder.events if e["type"] == "control.passed"]
        assert changes == [
            {"action": "pass", "previous": "bot", "controller": "desk"},
            {"action": "release", "previous": "desk", "controller": "bot"},
        ]

    # A person in no group conversation is in a 1:1 conversation: no control, as before.
    await sims["whatsapp"].send_inbound_text(STRANGER, "hello?")
    for recorder in (bot, desk):
        await recorder.wait_for(lambda ev: bool(said(ev, "hello?")))
        [one] = said(recorder.events, "hello?")
        assert "standby" not in one and one["conversation_id"] != cid


async def test_an_agent_observes_silently_then_speaks_and_becomes_visible(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
    desk: BackendRecorder,
) -> None:
    announcements = {"joined": "{name} from {role} joined", "left": "{name} from {role} left"}
    gw = await gateway(tmp_path, start_gateway, sims, backend, desk, announcements=announcements)
    await sims["whatsapp"].send_inbound_text(WA_USER, "Where is my order?")  # opens the window
    await backend.wait_for(lambda ev: bool(said(ev, "Where is my order?")))
    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as api:
        created = await api.post("/v1/conversations", json=ORDER_CHAT)
        cid = created.json()["id"]
        # Sam watches from the desk's console (the API only); Tom watches on his phone.
        people = f"/v1/conversations/{cid}/participants"
        sam = await api.post(
            people,
            json={"api_only": True, "observer": True, "role": "support", "display_name": "Sam"},
        )
        assert sam.status_code == 201, sam.text
        tom = await api.post(
            people,
            json={"identity": {"channel": "sms-main", "id": AGENT_PHONE}, "observer": True,
                  "role": "support", "display_name": "Tom"},
        )  # fmt: skip
        assert tom.status_code == 201, tom.text
        view = {p["display_name"]: p for p in tom.json()["participants"]}
        assert "identity" not in view["Sam"] and view["Sam"]["api_only"] is True
        assert view["Sam"]["observer"] is True and view["Tom"]["observer"] is True
        sam_id, tom_id = view["Sam"]["id"], view["Tom"]["id"]

        # The courier writes: the customer and Tom get it; nobody was told of the observers.
        await sims["sms"].send_inbound(SMS_USER, "stuck in traffic")
        late = "Jasper (courier): stuck in traffic"
        await backend.wait_for(lambda _ev: late in texts_to_all(sims)[AGENT_PHONE], timeout=15)
        await backend.wait_for(lambda _ev: late in texts_to_all(sims)[WA_USER], timeout=15)
        assert texts_to_all(sims)[WA_USER] == [late]
        assert texts_to_all(sims)[SMS_USER] == []
        # The console reads what Sam observes in the history.
        history = (await api.get(f"/v1/conversations/{cid}/messages")).json()["messages"]
        assert history[0]["author"]["display_name"] == "Jasper"

        # Sam speaks: first the others are told he joined, then his message, each once.
        for text in ("I'm on it", "10 minutes, sorry"):
            posted = await api.post(
                f"/v1/conversations/{cid}/messages",
                json={"author": sam_id, "content": {"type": "text", "text": text}},
            )
            assert posted.status_code == 202, posted.text
        sam_said = [
            "Sam from support joined",
            "Sam (support): I'm on it",
            "Sam (support): 10 minutes, sorry",
        ]
        for who in (WA_USER, SMS_USER, AGENT_PHONE):
            await backend.wait_for(lambda _ev, w=who: len(texts_to_all(sims)[w]) >= 3, timeout=15)
        assert texts_to_all(sims)[WA_USER][1:] == sam_said
        assert texts_to_all(sims)[SMS_USER] == sam_said
        assert texts_to_all(sims)[AGENT_PHONE][1:] == sam_said
        seen = (await api.get(f"/v1/conversations/{cid}")).json()["participants"]
        assert [p.get("observer") for p in seen if p["id"] == sam_id] == [None]

        # Tom speaks from his phone: he too is announced first, once, and his own copies
        # never come back to him.
        await sims["sms"].send_inbound(AGENT_PHONE, "I can call the courier")
        tom_said = ["Tom from support joined", "Tom (support): I can call the courier"]
        await backend.wait_for(lambda _ev: texts_to_all(sims)[WA_USER][-2:] == tom_said, timeout=15)
        await backend.wait_for(
            lambda _ev: texts_to_all(sims)[SMS_USER][-2:] == tom_said, timeout=15
        )
        assert len(texts_to_all(sims)[AGENT_PHONE]) == 4
        [tom_event] = said(backend.events, "I can call the courier")
        assert tom_event["author"] == {"id": tom_id, "role": "support", "display_name": "Tom"}

        # Sam leaves, visibly: the others are told.
        left = await api.delete(f"{people}/{sam_id}")
        assert left.status_code == 200
        for who in (WA_USER, SMS_USER, AGENT_PHONE):
            await backend.wait_for(
                lambda _ev, w=who: texts_to_all(sims)[w][-1:] == ["Sam from support left"],
                timeout=15,
            )

    # The backend heard of both observers when they joined; no address of one participant
    # reached another.
    joined = [e["participant"] for e in backend.events if e["type"] == "participant.joined"]
    assert [(p["display_name"], p.get("observer")) for p in joined] == [
        ("Sam", True),
        ("Tom", True),
    ]
    for request in [str(s["body"]) for s in sims["whatsapp"].sent]:
        assert AGENT_PHONE.lstrip("+") not in request and SMS_USER.lstrip("+") not in request


def texts_to_all(sims: dict[str, Any]) -> dict[str, list[str]]:
    """The texts each person was sent: the WhatsApp customer, and each SMS number."""
    by_number: dict[str, list[str]] = {WA_USER: texts_to(sims)["wa-main"]}
    by_number |= {SMS_USER: [], AGENT_PHONE: []}
    for sent in sims["sms"].sent:
        by_number.setdefault(sent["params"]["To"][0], []).append(sent["params"]["Body"][0])
    return by_number
