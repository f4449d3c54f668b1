"""Build once, deliver everywhere: one carousel, five recipients on five channels, one gateway.

Each arrives in its channel's richest form: a WhatsApp media carousel, a
Messenger generic template, a LINE carousel template, Viber rich media, and on SMS one MMS
with the pictures and numbered text whose answer "2" is the second item's postback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.line import LineSimulator
from gateway.simulator.messenger import MessengerSimulator
from gateway.simulator.sms import TwilioSimulator
from gateway.simulator.viber import ViberSimulator, rich_media_cards
from gateway.simulator.whatsapp import WhatsAppSimulator

from .conftest import API_KEY, WA, base_config, config_from, with_backend
from .test_line_e2e import LINE_A
from .test_line_e2e import USER as LINE_USER
from .test_messenger_e2e import FB, PSID
from .test_sms_e2e import ACCOUNT_SID, AUTH_TOKEN, NUMBER, sms_channel
from .test_sms_e2e import USER as SMS_USER
from .viber_support import TOKEN as VIBER_TOKEN
from .viber_support import USER as VIBER_USER
from .viber_support import viber_channel

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CAROUSEL = json.loads(
    (Path(__file__).parent / "fixtures" / "messages" / "carousel.json").read_text()
)
WA_USER = "16505551234"


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, Any]]:
    made: dict[str, Any] = {
        "whatsapp": WhatsAppSimulator(
            phone_number_id=WA["phone_number_id"],
            display_phone_number=WA["display_phone_number"],
            access_token=WA["access_token"],
            app_secret=WA["app_secret"],
            status_delay=0.02,
        ),
        "messenger": MessengerSimulator(
            page_id=FB["page_id"],
            page_access_token=FB["page_access_token"],
            app_secret=FB["app_secret"],
            receipt_delay=0.02,
        ),
        "sms": TwilioSimulator(
            account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, phone_number=NUMBER, status_delay=0.02
        ),
        "line": LineSimulator(
            channel_secret=LINE_A["channel_secret"],
            channel_access_token=LINE_A["channel_access_token"],
        ),
        "viber": ViberSimulator(auth_token=VIBER_TOKEN, status_delay=0.02),
    }
    for sim in made.values():
        await sim.start()
    yield made
    for sim in made.values():
        await sim.stop()


async def five_channel_gateway(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
    events: list[str] | None = None,
    **sections: Any,
) -> Any:
    """A gateway on the five simulators, each posting its webhooks to it; `backend` gets
    `events` (the default list when None); `sections`: more config (`console={...}`)."""
    data = with_backend(base_config(tmp_path, public_url="https://sms.example.com"), backend)
    data.update(sections)
    if events is not None:
        data["backends"][0]["events"] = events
    data["channels"][0]["api_base_url"] = sims["whatsapp"].base_url
    data["channels"] += [
        {"id": "fb-main", "type": "messenger", "api_base_url": sims["messenger"].base_url, **FB},
        sms_channel("sms-main", sims["sms"].base_url),
        {"id": "line-main", "type": "line", "api_base_url": sims["line"].base_url, **LINE_A},
        viber_channel(base_url=sims["viber"].base_url),
    ]
    gw = await start_gateway(config_from(data))
    sims["whatsapp"].webhook_url = f"{gw.url}/webhooks/wa-main"
    sims["messenger"].webhook_url = f"{gw.url}/webhooks/fb-main"
    sims["sms"].webhook_url = f"{gw.url}/webhooks/sms-main"
    sims["sms"].public_url = "https://sms.example.com/webhooks/sms-main"
    sims["line"].webhook_url = f"{gw.url}/webhooks/line-main"
    sims["viber"].webhook_url = f"{gw.url}/webhooks/vb-main"
    return gw


async def test_one_carousel_in_each_channels_richest_form(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await five_channel_gateway(tmp_path, start_gateway, sims, backend)

    # Everyone wrote first: windows are open, LINE has a reply token, the Viber user subscribed.
    await sims["whatsapp"].send_inbound_text(WA_USER, "What's on tonight?")
    await sims["messenger"].send_inbound_text(PSID, "What's on tonight?")
    await sims["line"].send_text(LINE_USER, "What's on tonight?")
    sims["viber"].add_user(VIBER_USER, name="John McClane")
    await backend.wait_for(lambda ev: len([e for e in ev if e["type"] == "message"]) >= 3)

    recipients = {
        "wa-main": WA_USER,
        "fb-main": PSID,
        "sms-main": SMS_USER,
        "line-main": LINE_USER,
        "vb-main": VIBER_USER,
    }
    ids: dict[str, str] = {}
    async with httpx.AsyncClient() as client:
        for channel, user in recipients.items():
            body = {"to": {"channel": channel, "id": user}, "content": CAROUSEL}
            response = await client.post(f"{gw.url}/v1/messages", json=body, headers=AUTH)
            assert response.status_code == 202, response.text
            ids[channel] = response.json()["id"]
    await backend.wait_for(
        lambda ev: {e["status"]["message_id"] for e in ev if e["type"] == "status"
                    and e["status"]["state"] == "sent"} >= set(ids.values()),
        timeout=15,
    )  # fmt: skip

    [wa] = [s["body"] for s in sims["whatsapp"].sent if s["body"].get("to") == WA_USER]
    assert wa["interactive"]["type"] == "carousel"
    cards = wa["interactive"]["action"]["cards"]
    assert [c["header"]["image"]["link"] for c in cards] == [
        item["media"]["url"] for item in CAROUSEL["items"]
    ]
    assert cards[1]["action"]["buttons"][0]["quick_reply"]["id"] == "ORDER_FUNGHI"

    [generic] = [
        s["body"]["message"]["attachment"]["payload"]
        for s in sims["messenger"].sent
        if "attachment" in s["body"]["message"]
    ]
    assert generic["template_type"] == "generic" and len(generic["elements"]) == 3

    [line] = sims["line"].sent
    [template] = [m for m in line.body["messages"] if m["type"] == "template"]
    assert template["template"]["type"] == "carousel"
    assert template["template"]["columns"][1]["actions"][0]["data"] == "ORDER_FUNGHI"

    [rich] = [s["body"] for s in sims["viber"].sent if s["body"]["type"] == "rich_media"]
    assert len(rich_media_cards(rich["rich_media"])) == 3

    [mms] = [s["params"] for s in sims["sms"].sent]
    assert len(mms["MediaUrl"]) == 3 and "2. Funghi" in mms["Body"][0]

    # The SMS recipient answers by number; the backend gets the second item's postback.
    await sims["sms"].send_inbound(SMS_USER, "2")
    events = await backend.wait_for(
        lambda ev: any(e["type"] == "postback" and e["channel"]["id"] == "sms-main" for e in ev)
    )
    [answer] = [e for e in events if e["type"] == "postback" and e["channel"]["id"] == "sms-main"]
    assert answer["postback"]["payload"] == "ORDER_FUNGHI"
    assert answer["channel_data"]["choices_message_id"] == ids["sms-main"]
