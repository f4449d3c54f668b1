"""The Sushi Lovers community, end to end through the provider simulators (issue 25, item 4).

A LINE user and a Viber user send `JOIN SUSHI` and see each other's messages under display
names, never each other's ids; a muted member's message is not relayed and they are told why;
over the rate limit likewise; one leaves with `LEAVE SUSHI` and stops receiving; a banned
member cannot join again; STOP on SMS wins over the community. The moderation webhook holds or
lets a message through when it does not answer in time, as configured.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from gateway.simulator.backend import BackendRecorder

from .conftest import API_KEY, base_config, config_from, with_backend
from .test_everywhere import sims  # noqa: F401  (the simulators fixture)
from .test_line_e2e import LINE_A
from .test_line_e2e import USER as LINE_USER
from .test_sms_e2e import USER as SMS_USER
from .test_sms_e2e import sms_channel
from .viber_support import USER as VIBER_USER
from .viber_support import viber_channel

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODERATION_SECRET = "moderation-secret-0123456789"

SUSHI: dict[str, Any] = {
    "id": "sushi",
    "name": "Sushi Lovers",
    "keywords": {
        "en": {"join": ["JOIN SUSHI"], "leave": ["LEAVE SUSHI"], "name": ["NAME"]},
        "de": {"join": ["BEITRETEN SUSHI"], "leave": ["AUSTRETEN SUSHI"], "name": ["NAME"]},
    },
    "welcome": {"en": "Welcome to Sushi Lovers!", "de": "Willkommen bei Sushi Lovers!"},
    "rules": {"en": "Be kind. No spam.", "de": "Sei freundlich. Kein Spam."},
    "rate_limit_per_minute": 3,
}


async def community_gateway(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
    community: dict[str, Any],
) -> Any:
    data = with_backend(base_config(tmp_path, public_url="https://sms.example.com"), backend)
    data["channels"] = [
        {"id": "line-main", "type": "line", "api_base_url": sims["line"].base_url, **LINE_A},
        viber_channel(base_url=sims["viber"].base_url),
        sms_channel("sms-main", sims["sms"].base_url),
    ]
    data["communities"] = [community]
    gw = await start_gateway(config_from(data))
    sims["line"].webhook_url = f"{gw.url}/webhooks/line-main"
    sims["viber"].webhook_url = f"{gw.url}/webhooks/vb-main"
    sims["sms"].webhook_url = f"{gw.url}/webhooks/sms-main"
    sims["sms"].public_url = "https://sms.example.com/webhooks/sms-main"
    return gw


def line_texts(sims: dict[str, Any]) -> list[str]:
    return [m.get("text", "") for s in sims["line"].sent for m in s.body["messages"]]


def viber_texts(sims: dict[str, Any]) -> list[str]:
    return [s["body"].get("text", "") for s in sims["viber"].sent]


def sms_texts(sims: dict[str, Any]) -> list[str]:
    return [s["params"]["Body"][0] for s in sims["sms"].sent]


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check(), "timed out"


def has(texts: Callable[[], list[str]], needle: str) -> Callable[[], bool]:
    return lambda: any(needle in t for t in texts())


async def members(api: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    answer = await api.get("/v1/communities/sushi/members")
    assert answer.status_code == 200, answer.text
    return {m["identity"]["channel"]: m for m in answer.json()["members"]}


async def test_line_and_viber_members_talk_under_display_names(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await community_gateway(tmp_path, start_gateway, sims, backend, SUSHI)
    sims["viber"].add_user(VIBER_USER, name="John McClane")
    viber, line = (lambda: viber_texts(sims)), (lambda: line_texts(sims))

    await sims["line"].send_text(LINE_USER, "JOIN SUSHI")
    await until(has(line, "Welcome to Sushi Lovers!"))
    await sims["viber"].send_inbound_text(VIBER_USER, "  beitreten   sushi ")
    await until(has(viber, "Willkommen bei Sushi Lovers!"))
    await until(has(viber, "Sei freundlich"))  # the rules, in German too
    await until(has(line, "(member) joined"))  # the LINE member hears the Viber one joined

    await sims["line"].send_text(LINE_USER, "NAME Kenji")
    await until(has(line, "In Sushi Lovers you are now Kenji."))
    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as api:
        seated = await members(api)
    given = seated["vb-main"]["display_name"]
    assert given.startswith("Member ") and given[7:].isdigit()  # given, not from the id
    assert seated["line-main"]["display_name"] == "Kenji"

    await sims["viber"].send_inbound_text(VIBER_USER, "Best salmon in town?")
    await until(has(line, f"{given} (member): Best salmon in town?"))
    await sims["line"].send_text(LINE_USER, "Try Kura on 5th")
    await until(has(viber, "Kenji (member): Try Kura on 5th"))

    # Neither ever saw the other's id.
    assert VIBER_USER not in json.dumps([s.body for s in sims["line"].sent])
    assert LINE_USER not in json.dumps([s["body"] for s in sims["viber"].sent])

    # Leaving: told, announced, and nothing more reaches them.
    await sims["viber"].send_inbound_text(VIBER_USER, "LEAVE SUSHI")
    await until(has(viber, "You left Sushi Lovers."))
    await until(has(line, f"{given} (member) left"))
    before = len(viber())
    await sims["line"].send_text(LINE_USER, "Anyone still here?")
    await until(lambda: any(e.get("message", {}).get("content", {}).get("text") ==
                            "Anyone still here?" for e in backend.events))  # fmt: skip
    await asyncio.sleep(0.3)
    assert len(viber()) == before


async def test_muted_rate_limited_banned_and_stopped_members(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await community_gateway(tmp_path, start_gateway, sims, backend, SUSHI)
    sims["viber"].add_user(VIBER_USER, name="John McClane")
    viber, line, sms = (
        (lambda: viber_texts(sims)),
        (lambda: line_texts(sims)),
        (lambda: sms_texts(sims)),
    )
    await sims["line"].send_text(LINE_USER, "JOIN SUSHI")
    await sims["viber"].send_inbound_text(VIBER_USER, "JOIN SUSHI")
    await sims["sms"].send_inbound(SMS_USER, "join sushi")
    for texts in (line, viber, sms):
        await until(has(texts, "Welcome to Sushi Lovers!"))
    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as api:
        seated = await members(api)
        muted = await api.post(
            f"/v1/communities/sushi/members/{seated['vb-main']['id']}/mute",
            json={"seconds": 600, "reason": "spoilers"},
        )
        assert muted.status_code == 200, muted.text

        # Muted: not relayed, and told why.
        await sims["viber"].send_inbound_text(VIBER_USER, "The ending is ...")
        await until(
            has(viber, "you are muted in Sushi Lovers for 10 more minute(s). Reason: spoilers")
        )
        await asyncio.sleep(0.3)
        assert not any("The ending is" in t for t in line() + sms())

        # Three a minute: the fourth is not relayed, and its author is told.
        for n in range(4):
            await sims["line"].send_text(LINE_USER, f"roll {n}")
        await until(has(line, "you may send 3 message(s) a minute"))
        await until(has(sms, "roll 2"))
        await asyncio.sleep(0.3)
        assert not any("roll 3" in t for t in sms() + viber())

        # Banned: removed, and a JOIN later is refused.
        banned = await api.post(
            f"/v1/communities/sushi/members/{seated['line-main']['id']}/ban", json={}
        )
        assert banned.status_code == 200, banned.text
        await until(has(line, "cannot join it again"))
        await sims["line"].send_text(LINE_USER, "JOIN SUSHI")
        await until(has(line, "You cannot join Sushi Lovers."))
        assert "line-main" not in await members(api)

        # STOP wins: the SMS member leaves every community and gets nothing more.
        await sims["sms"].send_inbound(SMS_USER, "STOP")
        for _ in range(100):
            if "sms-main" not in await members(api):
                break
            await asyncio.sleep(0.05)
        assert "sms-main" not in await members(api)
        unmuted = await api.post(
            f"/v1/communities/sushi/members/{seated['vb-main']['id']}/mute",
            json={"seconds": 0.001},
        )
        assert unmuted.status_code == 200
        await asyncio.sleep(0.01)
        before = len(sms())
        await sims["viber"].send_inbound_text(VIBER_USER, "Quiet here now")
        await until(lambda: any(
            e.get("message", {}).get("content", {}).get("text") == "Quiet here now"
            for e in backend.events))  # fmt: skip
        await asyncio.sleep(0.3)
        assert len(sms()) == before


@pytest.fixture
async def slow_moderator() -> AsyncIterator[dict[str, Any]]:
    """A moderation webhook that answers after `delay` seconds with `answer`."""
    state: dict[str, Any] = {"delay": 5.0, "answer": {"decision": "allow"}, "seen": []}

    async def moderate(request: web.Request) -> web.Response:
        state["seen"].append((dict(request.headers), await request.read()))
        await asyncio.sleep(state["delay"])
        return web.json_response(state["answer"])

    app = web.Application()
    app.router.add_post("/moderate", moderate)
    # Its cleanup would wait out a 5 s answer still under way: 5 s of suite time a test.
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/moderate"
    yield state
    await runner.cleanup()


@pytest.mark.parametrize("on_timeout", ["hold", "allow"])
async def test_moderation_webhook_timeout_takes_the_configured_choice(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
    slow_moderator: dict[str, Any],
    on_timeout: str,
) -> None:
    moderated = SUSHI | {
        "rate_limit_per_minute": None,
        "moderation": {
            "url": slow_moderator["url"],
            "secret": MODERATION_SECRET,
            "timeout_seconds": 0.3,
            "on_timeout": on_timeout,
        },
    }
    gw = await community_gateway(tmp_path, start_gateway, sims, backend, moderated)
    sims["viber"].add_user(VIBER_USER, name="John McClane")
    viber, line = (lambda: viber_texts(sims)), (lambda: line_texts(sims))
    await sims["line"].send_text(LINE_USER, "JOIN SUSHI")
    await sims["viber"].send_inbound_text(VIBER_USER, "JOIN SUSHI")
    await until(has(viber, "Welcome"))
    await until(has(line, "Welcome"))

    await sims["line"].send_text(LINE_USER, "Omakase tonight?")
    await until(lambda: len(slow_moderator["seen"]) == 1)
    headers, body = slow_moderator["seen"][0]
    sent = json.loads(body)
    assert sent["type"] == "community.moderation" and sent["content"]["text"] == "Omakase tonight?"
    assert LINE_USER not in body.decode()  # the webhook sees a display name, never an id
    assert headers["X-Gateway-Signature"].startswith("sha256=")
    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as api:
        if on_timeout == "allow":
            await until(has(viber, "(member): Omakase tonight?"))
            return
        await until(has(line, "waits for a moderator"))
        held = (await api.get("/v1/communities/sushi/held")).json()["messages"]
        assert [(m["state"], m["decided_by"]) for m in held] == [("held", "timeout")]
        assert not any("Omakase" in t for t in viber())
        released = await api.post(f"/v1/communities/sushi/held/{held[0]['id']}/release", json={})
        assert released.status_code == 200, released.text
        assert released.json()["state"] == "relayed"
        await until(has(viber, "(member): Omakase tonight?"))
        again = await api.post(f"/v1/communities/sushi/held/{held[0]['id']}/reject", json={})
        assert again.status_code == 404


async def test_moderation_webhook_rejects_and_the_author_is_told(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
    slow_moderator: dict[str, Any],
) -> None:
    slow_moderator |= {"delay": 0.0, "answer": {"decision": "reject", "reason": "no ads"}}
    moderated = SUSHI | {
        "moderation": {"url": slow_moderator["url"], "secret": MODERATION_SECRET},
    }
    await community_gateway(tmp_path, start_gateway, sims, backend, moderated)
    sims["viber"].add_user(VIBER_USER, name="John McClane")
    viber, line = (lambda: viber_texts(sims)), (lambda: line_texts(sims))
    await sims["line"].send_text(LINE_USER, "JOIN SUSHI")
    await sims["viber"].send_inbound_text(VIBER_USER, "JOIN SUSHI")
    await until(has(viber, "Welcome"))
    await sims["viber"].send_inbound_text(VIBER_USER, "Buy my knives")
    await until(has(viber, "Your message was not passed on in Sushi Lovers. Reason: no ads"))
    await asyncio.sleep(0.3)
    assert not any("knives" in t for t in line())
