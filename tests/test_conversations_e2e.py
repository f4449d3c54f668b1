"""The marketplace scene, end to end through the provider simulators (issue 22, "done means").

A customer on WhatsApp, a courier on SMS and a restaurant on Messenger share one order's
conversation; a LINE user and a Viber user join later. The courier's SMS reaches the other
four, attributed, each in their channel's form; a carousel the backend posts reaches all five
in their richest forms, and the courier's "2" becomes a postback attributed to them; the
courier leaves and stops receiving. An agent observes through the API, silently, then speaks
and becomes visible. No request sent to one participant carries another participant's phone
number or provider id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from gateway.config import EVENT_TYPES
from gateway.schema import CONVERSATION_EVENT_TYPES
from gateway.simulator.backend import BackendRecorder
from gateway.simulator.viber import rich_media_cards

from .conftest import API_KEY
from .test_everywhere import (  # noqa: F401  (sims: the simulators fixture)
    CAROUSEL,
    WA_USER,
    five_channel_gateway,
    sims,
)
from .test_line_e2e import USER as LINE_USER
from .test_messenger_e2e import PSID
from .test_sms_e2e import USER as SMS_USER
from .viber_support import USER as VIBER_USER

AUTH = {"Authorization": f"Bearer {API_KEY}"}
LATE = "stuck in traffic, 10 min late"

# Each participant's addresses: what must never reach anyone else.
ADDRESSES = {
    "wa-main": [WA_USER],
    "sms-main": [SMS_USER, SMS_USER.lstrip("+")],
    "fb-main": [PSID],
    "line-main": [LINE_USER],
    "vb-main": [VIBER_USER],
}


def requests_by_recipient(sims: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every request each simulator accepted: (channel, recipient, the request as text)."""
    found = [("wa-main", s["body"]["to"], json.dumps(s["body"])) for s in sims["whatsapp"].sent]
    found += [
        ("fb-main", s["body"]["recipient"]["id"], json.dumps(s["body"]))
        for s in sims["messenger"].sent
    ]
    found += [("sms-main", s["params"]["To"][0], json.dumps(s["params"])) for s in sims["sms"].sent]
    found += [("line-main", s.to, json.dumps(s.body)) for s in sims["line"].sent]
    found += [("vb-main", s["body"]["receiver"], json.dumps(s["body"])) for s in sims["viber"].sent]
    return found


def texts_to(sims: dict[str, Any]) -> dict[str, list[str]]:
    """The text each channel's participant was sent, in order (captions, bodies, headers)."""
    return {
        "wa-main": [
            s["body"].get("text", {}).get("body") or s["body"].get("interactive", {}).get("body", {}).get("text", "")
            for s in sims["whatsapp"].sent
        ],
        "fb-main": [s["body"]["message"].get("text", "") for s in sims["messenger"].sent],
        "sms-main": [s["params"]["Body"][0] for s in sims["sms"].sent],
        "line-main": [
            m.get("text", "") for s in sims["line"].sent for m in s.body["messages"]
        ],
        "vb-main": [s["body"].get("text", "") for s in sims["viber"].sent],
    }  # fmt: skip


async def test_the_marketplace_scene(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
) -> None:
    events = [*EVENT_TYPES, *CONVERSATION_EVENT_TYPES]
    gw = await five_channel_gateway(tmp_path, start_gateway, sims, backend, events)

    # Everyone wrote to the business first: windows are open, the Viber user subscribed.
    await sims["whatsapp"].send_inbound_text(WA_USER, "Where is my order?")
    await sims["messenger"].send_inbound_text(PSID, "Order 1234 is ready")
    await sims["line"].send_text(LINE_USER, "Hi")
    sims["viber"].add_user(VIBER_USER, name="John McClane")
    await backend.wait_for(lambda ev: len([e for e in ev if e["type"] == "message"]) >= 3)

    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as api:
        user = (await api.post("/v1/users", json={"name": "Sheena"})).json()
        linked = await api.post(
            f"/v1/users/{user['id']}/identities", json={"channel": "wa-main", "id": WA_USER}
        )
        assert linked.status_code == 201
        created = await api.post(
            "/v1/conversations",
            json={
                "mode": "relay",
                "metadata": {"order_id": "1234"},
                "participants": [
                    {"user_id": user["id"], "role": "customer", "display_name": "Sheena"},
                    {
                        "identity": {"channel": "sms-main", "id": SMS_USER},
                        "role": "courier",
                        "display_name": "Jasper",
                    },
                    {
                        "identity": {"channel": "fb-main", "id": PSID},
                        "role": "restaurant",
                        "display_name": "Luigi's",
                    },
                ],
            },
        )
        assert created.status_code == 201, created.text
        conversation = created.json()
        cid = conversation["id"]
        for identity, role, name in (
            ({"channel": "line-main", "id": LINE_USER}, "agent", "Sam"),
            ({"channel": "vb-main", "id": VIBER_USER}, "customer", "Ana"),
        ):
            joined = await api.post(
                f"/v1/conversations/{cid}/participants",
                json={"identity": identity, "role": role, "display_name": name},
            )
            assert joined.status_code == 201, joined.text
        seats = {p["identity"]["channel"]: p["id"] for p in joined.json()["participants"]}
        courier = seats["sms-main"]
        # An agent observes through the API: no channel, and nobody is told.
        kim = await api.post(
            f"/v1/conversations/{cid}/participants",
            json={"api_only": True, "observer": True, "role": "support", "display_name": "Kim"},
        )
        assert kim.status_code == 201, kim.text
        [kim_id] = [p["id"] for p in kim.json()["participants"] if p.get("api_only")]

        # Each join is announced to those present before it, in the business's voice.
        def announced(texts: dict[str, list[str]]) -> dict[str, list[str]]:
            return {
                c: [t for t in ts if t.endswith((" joined", " left"))] for c, ts in texts.items()
            }

        joins = {c: ["Sam (agent) joined", "Ana (customer) joined"] for c in ADDRESSES}
        joins |= {"line-main": ["Ana (customer) joined"], "vb-main": []}
        await backend.wait_for(lambda _ev: announced(texts_to(sims)) == joins, timeout=15)

        # The courier's SMS reaches the other four, attributed, from the business's numbers.
        before = {channel: len(texts) for channel, texts in texts_to(sims).items()}
        await sims["sms"].send_inbound(SMS_USER, LATE)
        late = f"Jasper (courier): {LATE}"
        await backend.wait_for(
            lambda _ev: all(late in texts_to(sims)[c] for c in seats if c != "sms-main"),
            timeout=15,
        )
        events = await backend.wait_for(
            lambda ev: any(e.get("conversation_id") == cid and e["type"] == "message" for e in ev)
        )
        [said] = [e for e in events if e["type"] == "message" and e.get("conversation_id") == cid]
        assert said["author"] == {"id": courier, "role": "courier", "display_name": "Jasper"}
        texts = texts_to(sims)
        for channel, count in before.items():
            if channel == "sms-main":
                assert len(texts[channel]) == count  # not back to the author
            else:
                assert texts[channel][count:] == [f"Jasper (courier): {LATE}"], channel

        # A carousel the backend posts reaches all five in their richest forms.
        posted = await api.post(f"/v1/conversations/{cid}/messages", json={"content": CAROUSEL})
        assert posted.status_code == 202, posted.text
        copies = {c["participant"]["id"]: c["message_id"] for c in posted.json()["copies"]}
        assert set(copies) == set(seats.values())
        await backend.wait_for(
            lambda ev: {e["status"]["message_id"] for e in ev if e["type"] == "status"
                        and e["status"]["state"] == "sent"} >= set(copies.values()),
            timeout=15,
        )  # fmt: skip
        [wa] = [s["body"] for s in sims["whatsapp"].sent if s["body"]["type"] == "interactive"]
        assert wa["interactive"]["type"] == "carousel"
        [generic] = [
            s["body"]["message"]["attachment"]["payload"]
            for s in sims["messenger"].sent
            if "attachment" in s["body"]["message"]
        ]
        assert generic["template_type"] == "generic" and len(generic["elements"]) == 3
        [template] = [
            m for s in sims["line"].sent for m in s.body["messages"] if m["type"] == "template"
        ]
        assert template["template"]["type"] == "carousel"
        [rich] = [s["body"] for s in sims["viber"].sent if s["body"]["type"] == "rich_media"]
        assert len(rich_media_cards(rich["rich_media"])) == 3
        [mms] = [s["params"] for s in sims["sms"].sent if s["params"].get("MediaUrl")]
        assert len(mms["MediaUrl"]) == 3 and "2. Funghi" in mms["Body"][0]

        # The courier answers "2": the second card's postback, attributed to them.
        await sims["sms"].send_inbound(SMS_USER, "2")
        events = await backend.wait_for(lambda ev: any(e["type"] == "postback" for e in ev))
        [answer] = [e for e in events if e["type"] == "postback"]
        assert answer["postback"]["payload"] == "ORDER_FUNGHI"
        assert answer["conversation_id"] == cid and answer["author"]["id"] == courier
        assert answer["channel_data"]["choices_message_id"] == copies[courier]

        # The courier leaves, and stops receiving.
        left = await api.delete(f"/v1/conversations/{cid}/participants/{courier}")
        assert left.status_code == 200, left.text
        sms_before = len(sims["sms"].sent)
        await sims["whatsapp"].send_inbound_text(WA_USER, "Thanks!")
        others = {p for c, p in seats.items() if c not in ("sms-main", "wa-main")}
        thanked = ["Jasper (courier) left", "Sheena (customer): Thanks!"]
        await backend.wait_for(
            lambda _ev: all(texts_to(sims)[c][-2:] == thanked for c in ("fb-main", "line-main", "vb-main")),
            timeout=15,
        )  # fmt: skip
        assert texts_to(sims)["wa-main"][-1] == "Jasper (courier) left"
        history = (await api.get(f"/v1/conversations/{cid}/messages")).json()["messages"]
        await backend.wait_for(
            lambda ev: {e["status"]["message_id"] for e in ev if e["type"] == "status"
                        and e["status"]["state"] == "sent"}
            >= {c["message_id"] for m in history for c in m["copies"]},
            timeout=15,
        )  # fmt: skip
        assert len(sims["sms"].sent) == sms_before

        # History: each message with its author and the state of every copy; the business
        # announced who joined and left.
        history = (await api.get(f"/v1/conversations/{cid}/messages")).json()["messages"]
        assert [
            m["author"]["display_name"] if m.get("author") else m["content"].get("text", "card")
            for m in history
        ] == [
            "Sheena",
            "Jasper (courier) left",
            CAROUSEL["text"],
            "Jasper",
            "Ana (customer) joined",
            "Sam (agent) joined",
        ]
        assert {c["participant"]["id"] for c in history[0]["copies"]} == others
        assert all(
            c["state"] in ("sent", "delivered", "read") for m in history for c in m["copies"]
        )

        # The agent has watched through the history; now she speaks, and becomes visible:
        # each participant present is told she joined, once, then gets her message.
        assert not any("Kim" in t for ts in texts_to(sims).values() for t in ts)
        posted = await api.post(
            f"/v1/conversations/{cid}/messages",
            json={"author": kim_id, "content": {"type": "text", "text": "Refund on its way"}},
        )
        assert posted.status_code == 202, posted.text
        kim_said = ["Kim (support) joined", "Kim (support): Refund on its way"]
        present = ("wa-main", "fb-main", "line-main", "vb-main")
        await backend.wait_for(
            lambda _ev: all(texts_to(sims)[c][-2:] == kim_said for c in present), timeout=15
        )
        assert len(sims["sms"].sent) == sms_before

    # The lifecycle reached the backend, which asked for it.
    kinds = [e["type"] for e in backend.events if e["type"].startswith(("conv", "participant"))]
    assert kinds == [
        "conversation.created",
        "participant.joined",
        "participant.joined",
        "participant.joined",
        "participant.left",
    ]

    # Privacy: no participant's address in any request sent to another one.
    for channel, recipient, request in requests_by_recipient(sims):
        for owner, addresses in ADDRESSES.items():
            if owner == channel:
                continue
            for address in addresses:
                assert address not in request, f"{owner}'s address reached {recipient}"


async def test_media_is_relayed_attributed_where_the_other_channel_can_fetch_it(
    tmp_path: Path,
    start_gateway: Any,
    sims: dict[str, Any],
    backend: BackendRecorder,
) -> None:
    gw = await five_channel_gateway(tmp_path, start_gateway, sims, backend)
    await sims["whatsapp"].send_inbound_text(WA_USER, "Where is my order?")
    await backend.wait_for(lambda ev: any(e["type"] == "message" for e in ev))
    async with httpx.AsyncClient(base_url=gw.url, headers=AUTH) as api:
        created = await api.post(
            "/v1/conversations",
            json={
                "participants": [
                    {"identity": {"channel": "wa-main", "id": WA_USER},
                     "role": "customer", "display_name": "Sheena"},
                    {"identity": {"channel": "sms-main", "id": SMS_USER},
                     "role": "courier", "display_name": "Jasper"},
                ]
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text

    # The courier's MMS photo: its URL works anywhere, so the customer gets the picture.
    photo = "https://demo.twilio.com/owl.png"
    await sims["sms"].send_inbound(SMS_USER, "at the door", media=[(photo, "image/png")])
    await backend.wait_for(
        lambda ev: any(e["type"] == "status" and e["status"]["state"] == "sent" for e in ev)
    )
    [image] = [s["body"] for s in sims["whatsapp"].sent if s["body"]["type"] == "image"]
    assert image["image"]["link"] == photo
    assert image["image"]["caption"] == "Jasper (courier): at the door"

    # The customer's WhatsApp photo is only a media id of Meta's: the courier hears of it.
    await sims["whatsapp"].send_inbound(
        {"type": "image", "image": {"id": "1013859600285441", "mime_type": "image/jpeg"}},
        from_wa_id=WA_USER,
    )
    await backend.wait_for(lambda ev: len(sims["sms"].sent) >= 1, timeout=15)
    [sms] = [s["params"] for s in sims["sms"].sent]
    assert sms["Body"] == ["Sheena (customer): sent an image"] and "MediaUrl" not in sms
