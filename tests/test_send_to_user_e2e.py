"""Sending to a user, end to end through the provider simulators (docs/sending-to-users.md):
the identity chosen by country, failover on a permanent failure, on WhatsApp's closed window
and on a missing `delivered`; strict adaptation; and the refusals of bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.line import LineSimulator
from gateway.simulator.sms import TwilioSimulator
from gateway.simulator.whatsapp import WhatsAppSimulator

from .conftest import API_KEY, WA, base_config, config_from, with_backend
from .test_line_e2e import LINE_A
from .test_line_e2e import USER as LINE_USER
from .test_sms_e2e import ACCOUNT_SID, AUTH_TOKEN, NUMBER, sms_channel

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OTHER_KEY = "other-client-key-0123456789abcdef"
CAROUSEL = json.loads(
    (Path(__file__).parent / "fixtures" / "messages" / "carousel.json").read_text()
)
JP_PHONE = "+819012345678"
WA_USER = "16505551234"
SMS_USER = "+16505551234"
TEXT = {"type": "text", "text": "Your courier is 5 minutes away"}


@pytest.fixture
async def sims(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    statuses = getattr(request, "param", ("sent", "delivered"))
    made: dict[str, Any] = {
        "whatsapp": WhatsAppSimulator(
            phone_number_id=WA["phone_number_id"],
            display_phone_number=WA["display_phone_number"],
            access_token=WA["access_token"],
            app_secret=WA["app_secret"],
            status_delay=0.02,
        ),
        "sms": TwilioSimulator(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            phone_number=NUMBER,
            status_delay=0.02,
            auto_statuses=statuses,
        ),
        "line": LineSimulator(
            channel_secret=LINE_A["channel_secret"],
            channel_access_token=LINE_A["channel_access_token"],
        ),
    }
    for sim in made.values():
        await sim.start()
    yield made
    for sim in made.values():
        await sim.stop()


async def gateway(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
    **routing: Any,
) -> Any:
    data = with_backend(base_config(tmp_path, public_url="https://sms.example.com"), backend)
    data["backends"][0]["events"] = ["status", "message", "message.failover"]
    data["api_keys"].append({"name": "other", "key": OTHER_KEY})
    data["channels"][0]["api_base_url"] = sims["whatsapp"].base_url
    data["channels"] += [
        sms_channel("sms-main", sims["sms"].base_url),
        {"id": "line-jp", "type": "line", "api_base_url": sims["line"].base_url, **LINE_A},
    ]
    data["routing"] = {
        "channel_order": {"JP": ["line", "sms"], "US": ["sms"], "default": ["whatsapp", "sms"]},
        **routing,
    }
    gw = await start_gateway(config_from(data))
    sims["whatsapp"].webhook_url = f"{gw.url}/webhooks/wa-main"
    sims["sms"].webhook_url = f"{gw.url}/webhooks/sms-main"
    sims["sms"].public_url = "https://sms.example.com/webhooks/sms-main"
    sims["line"].webhook_url = f"{gw.url}/webhooks/line-jp"
    return gw


async def call(gw: Any, method: str, path: str, body: Any = None, key: str = API_KEY) -> Any:
    async with httpx.AsyncClient() as client:
        return await client.request(
            method, f"{gw.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}
        )


async def user(gw: Any, identities: list[tuple[str, str]], **fields: Any) -> str:
    made = await call(gw, "POST", "/v1/users", fields)
    assert made.status_code == 201, made.text
    user_id = str(made.json()["id"])
    for channel, provider_id in identities:
        linked = await call(
            gw, "POST", f"/v1/users/{user_id}/identities", {"channel": channel, "id": provider_id}
        )
        assert linked.status_code == 201, linked.text
    return user_id


async def send(gw: Any, body: dict[str, Any]) -> str:
    sent = await call(gw, "POST", "/v1/messages", body)
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


async def history(gw: Any, message_id: str) -> list[tuple[str, str | None]]:
    shown = await call(gw, "GET", f"/v1/messages/{message_id}")
    assert shown.status_code == 200, shown.text
    return [(h["state"], h.get("detail")) for h in shown.json()["history"]]


def sms_to(sim: TwilioSimulator, to: str) -> list[str]:
    # Twilio's form parameters, each a list of values as parsed.
    return [s["params"]["Body"][0] for s in sim.sent if s["params"].get("To") == [to]]


def line_pushes_to(sim: LineSimulator, to: str) -> list[dict[str, Any]]:
    return [m for s in sim.pushes() if s.to == to for m in s.body["messages"]]


async def until(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_user_in_japan_gets_line(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(tmp_path, start_gateway, sims, backend)
    user_id = await user(gw, [("sms-main", JP_PHONE), ("line-jp", LINE_USER)], country="JP")
    message_id = await send(gw, {"to": {"user": user_id}, "content": TEXT})
    await until(lambda: line_pushes_to(sims["line"], LINE_USER))
    assert line_pushes_to(sims["line"], LINE_USER) == [{"type": "text", "text": TEXT["text"]}]
    shown = (await call(gw, "GET", f"/v1/messages/{message_id}")).json()
    assert shown["to"] == {"channel": "line-jp", "id": LINE_USER}
    assert ("chosen", "line-jp: channel_order JP") in await history(gw, message_id)
    assert sms_to(sims["sms"], JP_PHONE) == []


async def test_line_failing_permanently_fails_over_to_sms(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(tmp_path, start_gateway, sims, backend, failover=True)
    user_id = await user(gw, [("sms-main", JP_PHONE), ("line-jp", LINE_USER)], country="JP")
    # https://developers.line.biz/en/reference/messaging-api/#status-codes: 400, a bad request.
    sims["line"].fail_next(400, "The property, 'to', in the request body is invalid")
    root = await send(gw, {"to": {"user": user_id}, "content": TEXT})
    await until(lambda: sms_to(sims["sms"], JP_PHONE))
    assert sms_to(sims["sms"], JP_PHONE) == [TEXT["text"]]
    assert line_pushes_to(sims["line"], LINE_USER) == []
    events = await backend.wait_for(lambda ev: any(e["type"] == "message.failover" for e in ev))
    [failover] = [e["failover"] for e in events if e["type"] == "message.failover"]
    child = failover["next"]["message_id"]
    assert failover["message_id"] == root
    assert failover["failed"] == {"channel": "line-jp", "id": LINE_USER, "message_id": root}
    assert failover["next"] == {"channel": "sms-main", "id": JP_PHONE, "message_id": child}
    assert failover["reason"].startswith("400: ")
    steps = await history(gw, root)
    assert [s for s, _ in steps] == ["queued", "chosen", "failed", "failover"]
    assert steps[-1][1] is not None and steps[-1][1].startswith(f"line-jp → sms-main ({child})")
    # The failed status reaches the backend before the failover, then SMS's own statuses.
    await backend.wait_for(
        lambda ev: any(e["type"] == "status" and e["status"].get("message_id") == child
                       and e["status"]["state"] == "delivered" for e in ev)
    )  # fmt: skip
    order = [
        (e["type"], e.get("status", {}).get("state"))
        for e in backend.events
        if e.get("status", {}).get("message_id") == root or e["type"] == "message.failover"
    ]
    assert order == [("status", "failed"), ("message.failover", None)]


async def test_whatsapp_outside_the_window_without_template_fails_over_to_sms(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(tmp_path, start_gateway, sims, backend)
    user_id = await user(gw, [("wa-main", WA_USER), ("sms-main", SMS_USER)])
    root = await send(gw, {"to": {"user": user_id}, "content": TEXT, "options": {"failover": True}})
    await until(lambda: sms_to(sims["sms"], SMS_USER))
    assert sims["whatsapp"].sent == []  # refused before the provider: nothing went
    steps = await history(gw, root)
    assert ("chosen", "wa-main: channel_order default") in steps
    [failover] = [d for s, d in steps if s == "failover"]
    assert failover is not None and "window_closed" in failover


async def test_without_failover_the_failure_stays(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(tmp_path, start_gateway, sims, backend)  # routing.failover: false
    user_id = await user(gw, [("wa-main", WA_USER), ("sms-main", SMS_USER)])
    root = await send(gw, {"to": {"user": user_id}, "content": TEXT})
    await backend.wait_for(lambda ev: any(e["type"] == "status" for e in ev))
    await asyncio.sleep(0.3)
    assert sms_to(sims["sms"], SMS_USER) == []
    assert [s for s, _ in await history(gw, root)] == ["queued", "chosen", "failed"]


@pytest.mark.parametrize("sims", [("sent",)], indirect=True)  # the carrier never reports
async def test_no_delivered_status_in_time_fails_over(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(
        tmp_path, start_gateway, sims, backend, failover=True, delivery_timeout_seconds=0.5
    )
    user_id = await user(
        gw, [("sms-main", JP_PHONE), ("line-jp", LINE_USER)], country="JP",
        preferred_channel="sms",
    )  # fmt: skip
    root = await send(gw, {"to": {"user": user_id}, "content": TEXT})
    await until(lambda: sms_to(sims["sms"], JP_PHONE))
    await until(lambda: line_pushes_to(sims["line"], LINE_USER), timeout=5)
    steps = await history(gw, root)
    assert ("chosen", "sms-main: preferred_channel") in steps
    assert ("timeout", "no delivered status within 0.5 s") in steps
    assert sms_to(sims["sms"], JP_PHONE) == [TEXT["text"]]  # never twice on one channel
    shown = (await call(gw, "GET", f"/v1/messages/{root}")).json()
    assert shown["state"] == "sent"  # it may still arrive: its state is the provider's word


async def test_strict_carousel_to_sms_is_refused_lenient_goes_downgraded(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(tmp_path, start_gateway, sims, backend)
    to = {"channel": "sms-main", "id": SMS_USER}
    strict = {"to": to, "content": CAROUSEL, "options": {"adaptation": "strict"}}
    refused = await call(gw, "POST", "/v1/messages", strict)
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "strict_adaptation" and "sms-main" in body["message"]
    assert body["problems"] and all(p["field"] == "content" for p in body["problems"])
    assert any("carousel" in p["message"] for p in body["problems"])
    await asyncio.sleep(0.2)
    assert sims["sms"].sent == []  # refused before queueing
    lenient = await send(gw, {"to": to, "content": CAROUSEL, "options": {"adaptation": "lenient"}})
    await until(lambda: sms_to(sims["sms"], SMS_USER))
    downgrades = [d for s, d in await history(gw, lenient) if s == "downgraded"]
    assert [p["message"] for p in body["problems"]] == downgrades


async def test_strict_to_a_user_skips_the_channels_that_would_downgrade(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(tmp_path, start_gateway, sims, backend)
    await sims["whatsapp"].send_inbound_text(WA_USER, "hi")  # the window is open
    await backend.wait_for(lambda ev: any(e["type"] == "message" for e in ev))
    user_id = await user(
        gw, [("sms-main", SMS_USER), ("wa-main", WA_USER)], preferred_channel="sms"
    )
    body = {"to": {"user": user_id}, "content": CAROUSEL, "options": {"adaptation": "strict"}}
    root = await send(gw, body)
    steps = await history(gw, root)
    [skipped] = [d for s, d in steps if s == "skipped"]
    assert skipped is not None and skipped.startswith("sms-main: strict adaptation refused: ")
    assert ("chosen", "wa-main: last_inbound (0.0 h ago, window open)") in steps
    sms_only = await user(gw, [("sms-main", "+16505550000")])
    refused = await call(gw, "POST", "/v1/messages", {**body, "to": {"user": sms_only}})
    assert refused.status_code == 422 and refused.json()["error"] == "no_usable_identity"
    [problem] = refused.json()["problems"]
    assert problem["field"] == "to.user"
    assert problem["message"].startswith("sms-main: strict adaptation refused: ")


async def test_preview_says_where_a_strict_send_passes(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(tmp_path, start_gateway, sims, backend)
    shown = await call(gw, "POST", "/v1/preview", {"content": CAROUSEL})
    assert shown.status_code == 200, shown.text
    flags = {
        p["channel"]["id"]: (p["strict_ok"], p["downgrades"]) for p in shown.json()["previews"]
    }
    assert flags["wa-main"] == (True, [])
    assert flags["sms-main"][0] is False and flags["sms-main"][1]
    text = await call(gw, "POST", "/v1/preview", {"content": TEXT})
    assert all(p["strict_ok"] for p in text.json()["previews"])


async def test_bad_input_is_refused_clearly(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await gateway(tmp_path, start_gateway, sims, backend)
    unknown = await call(
        gw, "POST", "/v1/messages", {"to": {"user": "usr_nobody"}, "content": TEXT}
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "user_not_found"
    assert unknown.json()["problems"] == [{"field": "to.user", "message": "no user with this id"}]
    user_id = await user(gw, [("sms-main", SMS_USER)])
    theirs = await call(
        gw, "POST", "/v1/messages", {"to": {"user": user_id}, "content": TEXT}, key=OTHER_KEY
    )
    assert theirs.status_code == 404  # another key's user is as absent as none
    nobody = await user(gw, [])
    empty = await call(gw, "POST", "/v1/messages", {"to": {"user": nobody}, "content": TEXT})
    assert empty.status_code == 422 and empty.json()["error"] == "no_usable_identity"
    assert empty.json()["problems"] == [
        {"field": "to.user", "message": "the user has no identities"}
    ]
    await call(
        gw, "POST", "/v1/users/" + user_id + "/identities", {"channel": "wa-main", "id": WA_USER}
    )
    await gw.store.set_unsubscribed("sms-main", SMS_USER, "21610: STOP", 0.0)
    await gw.store.set_unsubscribed("wa-main", WA_USER, "STOP", 0.0)
    opted = await call(gw, "POST", "/v1/messages", {"to": {"user": user_id}, "content": TEXT})
    assert opted.status_code == 422
    assert sorted(p["message"] for p in opted.json()["problems"]) == [
        "sms-main: opted out", "wa-main: opted out",
    ]  # fmt: skip
    both = await call(
        gw, "POST", "/v1/messages",
        {"to": {"user": user_id, "channel": "sms-main"}, "content": TEXT},
    )  # fmt: skip
    assert both.status_code == 422
    assert [p["field"] for p in both.json()["problems"]] == ["to.channel"]
    bad_option = await call(
        gw, "POST", "/v1/messages",
        {"to": {"user": user_id}, "content": TEXT, "options": {"adaptation": "exact"}},
    )  # fmt: skip
    assert bad_option.status_code == 422
    assert [p["field"] for p in bad_option.json()["problems"]] == ["options.adaptation"]
