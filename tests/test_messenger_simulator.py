"""The Messenger simulator speaks Meta's formats: Send API, its errors and signed Page webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters.base import InboundRequest
from adapters.messenger import MessengerAdapter, MessengerConfig
from gateway.simulator.messenger import MessengerSimulator
from tests.webhook_receiver import WebhookReceiver

PAGE_ID = "107331552213590"
TOKEN = "fb-page-token-abcdef"
SECRET = "fb-app-secret-456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PSID = "6291474124214458"


def messaging(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    """The one messaging item of each webhook the receiver got."""
    return [payload["entry"][0]["messaging"][0] for payload in receiver.payloads()]


def adapter() -> MessengerAdapter:
    return MessengerAdapter(
        MessengerConfig(
            id="fb-main",
            type="messenger",
            page_id=PAGE_ID,
            page_access_token=TOKEN,
            app_secret=SECRET,
            verify_token="v",
        )
    )


def verified(headers: dict[str, str], body: bytes) -> bool:
    return adapter().verify(InboundRequest("POST", "https://gw/x", headers, body))


@pytest.fixture
async def sim(receiver: WebhookReceiver) -> AsyncIterator[MessengerSimulator]:
    simulator = MessengerSimulator(
        page_id=PAGE_ID,
        page_access_token=TOKEN,
        app_secret=SECRET,
        webhook_url=receiver.url,
        receipt_delay=0.01,
        retry_backoff=0.01,
    )
    await simulator.start()
    simulator.open_window(PSID)
    yield simulator
    await simulator.stop()


async def send(
    sim: MessengerSimulator,
    body: Any,
    headers: dict[str, str] | None = None,
    node: str = "me",
    query: str = "",
) -> tuple[int, dict[str, str], Any]:
    url = f"{sim.base_url}/{node}/messages{query}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=AUTH if headers is None else headers) as response,
    ):
        return response.status, dict(response.headers), await response.json()


def text(body: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": body},
        **extra,
    }


async def test_send_gets_a_mid_then_signed_delivery_and_read_receipts(
    sim: MessengerSimulator, receiver: WebhookReceiver
) -> None:
    before = int(time.time() * 1000)
    status, _, answer = await send(sim, text())
    assert status == 200
    mid = answer["message_id"]
    assert answer == {"recipient_id": PSID, "message_id": mid}
    assert mid.startswith("m_") and len(mid) == 88
    assert sim.sent == [{"mid": mid, "body": text()}]

    await sim.drain()
    for headers, body in receiver.received:
        assert verified(headers, body) and headers["Content-Type"] == "application/json"
        assert json.loads(body)["object"] == "page"
    delivery, read = messaging(receiver)
    for item in (delivery, read):
        assert item["sender"] == {"id": PSID} and item["recipient"] == {"id": PAGE_ID}
    assert delivery["delivery"]["mids"] == [mid]
    assert delivery["delivery"]["watermark"] >= before
    assert read["read"]["watermark"] >= delivery["delivery"]["watermark"]
    # The gateway's adapter reads them as statuses for this mid and watermarks.
    events = [e.draft for _, body in receiver.received for e in adapter().parse(body)]
    assert [(e.status.state, e.status.external_id) for e in events if e.status] == [
        ("delivered", mid),
        ("delivered", None),
        ("read", None),
    ]


async def test_page_id_path_and_query_token_are_accepted(sim: MessengerSimulator) -> None:
    assert (await send(sim, text(), node=PAGE_ID))[0] == 200
    assert (await send(sim, text(), headers={}, query=f"?access_token={TOKEN}"))[0] == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}],
    ids=["none", "wrong", "not_bearer"],
)
async def test_bad_token_is_401_with_code_190(
    sim: MessengerSimulator, headers: dict[str, str]
) -> None:
    status, response_headers, answer = await send(sim, text(), headers=headers)
    assert status == 401 and "invalid_token" in response_headers["WWW-Authenticate"]
    assert answer["error"]["code"] == 190 and answer["error"]["type"] == "OAuthException"
    assert sim.sent == [] and len(sim.requests) == 1


async def test_unknown_node_is_graph_error_100(sim: MessengerSimulator) -> None:
    status, _, answer = await send(sim, text(), node="999")
    assert status == 400 and answer["error"]["code"] == 100
    assert answer["error"]["error_subcode"] == 33 and "'999'" in answer["error"]["message"]


ATTACHMENT = {"type": "image", "payload": {"url": "https://x.example/a.jpg", "is_reusable": True}}
VALID = {
    "text_at_limit": text("x" * 2000),
    "update": {**text(), "messaging_type": "UPDATE"},
    "attachment_url": {**text(), "message": {"attachment": ATTACHMENT}},
    "attachment_id": {
        **text(),
        "message": {"attachment": {"type": "file", "payload": {"attachment_id": "1857777"}}},
    },
    "tagged": {**text(), "messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE"},
    "quick_replies": {
        **text(),
        "message": {
            "text": "Pick",
            "quick_replies": [
                {"content_type": "text", "title": f"o{i}", "payload": f"P{i}"} for i in range(13)
            ],
        },
    },
}
INVALID = {
    "no_recipient": {"messaging_type": "RESPONSE", "message": {"text": "hi"}},
    "no_messaging_type": {"recipient": {"id": PSID}, "message": {"text": "hi"}},
    "bad_messaging_type": {**text(), "messaging_type": "NON_PROMOTIONAL_SUBSCRIPTION"},
    "tag_missing": {**text(), "messaging_type": "MESSAGE_TAG"},
    "tag_unknown": {**text(), "messaging_type": "MESSAGE_TAG", "tag": "GAME_EVENT"},
    "text_over_2000": text("x" * 2001),
    "empty_message": {**text(), "message": {}},
    "text_and_attachment": {**text(), "message": {"text": "a", "attachment": ATTACHMENT}},
    "attachment_type": {
        **text(),
        "message": {"attachment": {"type": "sticker", "payload": {"url": "https://x"}}},
    },
    "url_and_id": {
        **text(),
        "message": {
            "attachment": {"type": "image", "payload": {"url": "https://x", "attachment_id": "1"}}
        },
    },
    "fourteen_quick_replies": {
        **text(),
        "message": {
            "text": "Pick",
            "quick_replies": [
                {"content_type": "text", "title": f"o{i}", "payload": f"P{i}"} for i in range(14)
            ],
        },
    },
}


def rich(message: dict[str, Any]) -> dict[str, Any]:
    return {**text(), "message": message}


def template(payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return rich({"attachment": {"type": "template", "payload": payload}, **extra})


def buttons(*items: dict[str, Any], body: str = "Pick") -> dict[str, Any]:
    return template({"template_type": "button", "text": body, "buttons": list(items)})


def generic(*elements: dict[str, Any]) -> dict[str, Any]:
    return template({"template_type": "generic", "elements": list(elements)})


def postback(title: str = "Yes", payload: str = "YES") -> dict[str, Any]:
    return {"type": "postback", "title": title, "payload": payload}


def reply(title: str = "Red", payload: Any = "RED", **extra: Any) -> dict[str, Any]:
    return {"content_type": "text", "title": title, "payload": payload, **extra}


URL_BUTTON = {"type": "web_url", "url": "https://shop.example.com/o/1", "title": "View"}
CALL_BUTTON = {"type": "phone_number", "title": "Call us", "payload": "+16505551234"}
CARD = {"title": "Funghi", "subtitle": "Mushrooms", "image_url": "https://cdn.example.com/f.jpg"}
RICH_VALID = {
    "button_template_three_kinds": buttons(postback(), URL_BUTTON, CALL_BUTTON),
    "button_template_at_limits": buttons(postback("t" * 20, "p" * 1000), body="x" * 640),
    "generic_ten_elements": generic(*[{**CARD, "buttons": [postback()]}] * 10),
    "generic_default_action_only": generic(
        {"title": "Fern", "default_action": {"type": "web_url", "url": "https://x.example"}}
    ),
    "generic_three_buttons": generic({**CARD, "buttons": [postback(), URL_BUTTON, CALL_BUTTON]}),
    "quick_replies_on_a_template": buttons(postback(), body="Pick")
    | {"message": {**buttons(postback())["message"], "quick_replies": [reply()]}},
    "quick_replies_on_an_image": rich({"attachment": ATTACHMENT, "quick_replies": [reply()]}),
    "quick_reply_numeric_payload": rich({"text": "Pick", "quick_replies": [reply(payload=7)]}),
    "quick_reply_image_without_title": rich(
        {
            "text": "Pick",
            "quick_replies": [reply("", "", image_url="https://cdn.example.com/red.png")],
        }
    ),
    "quick_reply_user_email": rich(
        {"text": "Email?", "quick_replies": [{"content_type": "user_email"}]}
    ),
}
RICH_INVALID = {
    "button_template_no_buttons": buttons(),
    "button_template_four_buttons": buttons(postback(), postback(), postback(), postback()),
    "button_template_text_over_640": buttons(postback(), body="x" * 641),
    "button_template_no_text": template({"template_type": "button", "buttons": [postback()]}),
    "button_title_over_20": buttons(postback("t" * 21)),
    "postback_without_payload": buttons({"type": "postback", "title": "Yes"}),
    "postback_payload_over_1000": buttons(postback(payload="p" * 1001)),
    "web_url_without_url": buttons({"type": "web_url", "title": "View"}),
    "call_without_plus": buttons({**CALL_BUTTON, "payload": "030 123456"}),
    "unknown_button_type": buttons({"type": "element_share"}),
    "unknown_template_type": template({"template_type": "list", "elements": [CARD]}),
    "generic_no_elements": generic(),
    "generic_eleven_elements": generic(*[CARD] * 11),
    "generic_title_only": generic({"title": "Fern"}),
    "generic_title_over_80": generic({**CARD, "title": "t" * 81}),
    "generic_subtitle_over_80": generic({**CARD, "subtitle": "s" * 81}),
    "generic_four_buttons": generic({**CARD, "buttons": [postback()] * 4}),
    "generic_default_action_with_title": generic(
        {**CARD, "default_action": {"type": "web_url", "url": "https://x.example", "title": "x"}}
    ),
    "quick_reply_title_over_20": rich({"text": "Pick", "quick_replies": [reply("r" * 21)]}),
    "quick_reply_without_payload": rich(
        {"text": "Pick", "quick_replies": [{"content_type": "text", "title": "Red"}]}
    ),
    "quick_reply_payload_over_1000": rich(
        {"text": "Pick", "quick_replies": [reply(payload="p" * 1001)]}
    ),
    "quick_reply_location_removed": rich(
        {"text": "Where?", "quick_replies": [{"content_type": "location"}]}
    ),
    "quick_replies_empty": rich({"text": "Pick", "quick_replies": []}),
}
VALID |= RICH_VALID
INVALID |= RICH_INVALID


@pytest.mark.parametrize("body", VALID.values(), ids=VALID.keys())
async def test_valid_bodies_are_accepted(sim: MessengerSimulator, body: dict[str, Any]) -> None:
    status, _, answer = await send(sim, body)
    assert status == 200, answer


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
async def test_invalid_bodies_are_refused(sim: MessengerSimulator, body: dict[str, Any]) -> None:
    status, _, answer = await send(sim, body)
    assert status == 400 and answer["error"]["code"] == 100, answer
    assert answer["error"]["message"].startswith("(#100)")
    assert sim.sent == []


async def test_the_24_hour_window_is_enforced_like_meta(sim: MessengerSimulator) -> None:
    stranger = "7034412906593117"
    status, _, answer = await send(sim, {**text(), "recipient": {"id": stranger}})
    assert status == 400
    assert (answer["error"]["code"], answer["error"]["error_subcode"]) == (10, 2018278)
    tagged = {**text(), "recipient": {"id": stranger}, "messaging_type": "MESSAGE_TAG"}
    assert (await send(sim, {**tagged, "tag": "POST_PURCHASE_UPDATE"}))[0] == 200
    sim.open_window(stranger, time.time() - 8 * 24 * 3600)
    assert (await send(sim, {**tagged, "tag": "HUMAN_AGENT"}))[0] == 400
    sim.open_window(stranger, time.time() - 6 * 24 * 3600)
    assert (await send(sim, {**tagged, "tag": "HUMAN_AGENT"}))[0] == 200


async def test_fail_next_with_subcode_count_and_retry_after(sim: MessengerSimulator) -> None:
    sim.fail_next(551, subcode=1545041, count=2)
    for _ in range(2):
        status, headers, answer = await send(sim, text())
        assert status == 400 and "Retry-After" not in headers
        assert answer["error"]["code"] == 551 and answer["error"]["error_subcode"] == 1545041
        assert answer["error"]["message"] == "(#551) This person isn't available right now."
    sim.fail_next(613, http_status=429, retry_after=3)
    status, headers, answer = await send(sim, text())
    assert status == 429 and headers["Retry-After"] == "3"
    assert "error_subcode" not in answer["error"]
    assert (await send(sim, text()))[0] == 200


async def test_sender_action_is_accepted_without_a_message_id(
    sim: MessengerSimulator, receiver: WebhookReceiver
) -> None:
    body = {"recipient": {"id": PSID}, "sender_action": "typing_on"}
    status, _, answer = await send(sim, body)
    assert status == 200 and answer == {"recipient_id": PSID}
    await sim.drain()
    assert sim.sent == [] and receiver.received == []


async def test_inbound_text_quick_reply_and_postback_are_signed_and_parse(
    sim: MessengerSimulator, receiver: WebhookReceiver
) -> None:
    text_mid = await sim.send_inbound_text("7034412906593117", "Où est https://x.example/a ?")
    reply_mid = await sim.send_quick_reply("7034412906593117", "Red", "COLOR_RED")
    referral = {"ref": "spring", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    post_mid = await sim.send_postback("7034412906593117", "Get Started", "GET_STARTED", referral)
    assert len(receiver.received) == 3
    headers, body = receiver.received[0]
    assert verified(headers, body)
    assert b"https:\\/\\/x.example" in body and b"\\u00f9" in body  # Meta's escaping
    first = messaging(receiver)[0]
    assert set(first) == {"sender", "recipient", "timestamp", "message"}
    assert first["timestamp"] > 1_000_000_000_000  # milliseconds
    events = [e.draft for _, raw in receiver.received for e in adapter().parse(raw)]
    assert [(e.type, e.external_id) for e in events] == [
        ("message", text_mid),
        ("postback", reply_mid),
        ("postback", post_mid),
    ]
    assert events[1].postback is not None and events[1].postback.payload == "COLOR_RED"
    assert events[2].referral is not None and events[2].referral.ref == "spring"
    assert sim.last_inbound["7034412906593117"] <= time.time()


async def test_echoes_are_posted_when_enabled(
    sim: MessengerSimulator, receiver: WebhookReceiver
) -> None:
    sim.echoes, sim.auto_receipts = True, ()
    body = text("shipped")
    body["message"]["metadata"] = "gw:msg_1"
    mid = (await send(sim, body))[2]["message_id"]
    await sim.drain()
    [echo] = messaging(receiver)
    assert echo["sender"] == {"id": PAGE_ID} and echo["recipient"] == {"id": PSID}
    assert echo["message"] == {
        "is_echo": True,
        "app_id": sim.app_id,
        "mid": mid,
        "text": "shipped",
        "metadata": "gw:msg_1",
    }


async def test_webhooks_are_retried_then_given_up(
    sim: MessengerSimulator, receiver: WebhookReceiver
) -> None:
    receiver.answers = [500, 503]
    await sim.send_inbound_text(PSID, "hi")
    assert len(receiver.received) == 3 and len(sim.webhooks) == 1
    receiver.answers = [500] * sim.webhook_attempts
    await sim.send_read(PSID, watermark=1749416383000)
    [dropped] = sim.failed_webhooks
    assert dropped["entry"][0]["messaging"][0]["read"] == {"watermark": 1749416383000}


async def test_unreachable_gateway_is_given_up_quietly(sim: MessengerSimulator) -> None:
    sim.webhook_url = "http://127.0.0.1:9/nowhere"
    assert (await send(sim, text()))[0] == 200
    await asyncio.wait_for(sim.drain(), 5)
    assert len(sim.failed_webhooks) == 2  # the delivery and the read receipt, each dropped


async def test_control_endpoints(sim: MessengerSimulator, receiver: WebhookReceiver) -> None:
    sim.auto_receipts = ()
    await send(sim, text("one"))
    root = sim.base_url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{root}/_sim/sent") as response:
            [entry] = await response.json()
        async with session.post(f"{root}/_sim/inbound", json={"from": PSID, "text": "hey"}) as r:
            mid = (await r.json())["mid"]
        async with session.post(f"{root}/_sim/inbound", json={"text": "no sender"}) as r:
            assert r.status == 400
    assert entry["body"]["message"]["text"] == "one"
    assert [item["message"]["mid"] for item in messaging(receiver)] == [mid]


CAROUSEL = generic(
    {**CARD, "title": "Margherita", "buttons": [postback("Order", "ORDER_MARGHERITA")]},
    {**CARD, "buttons": [URL_BUTTON, postback("Order", "ORDER_FUNGHI")]},
)


async def test_a_tap_on_a_card_button_posts_the_documented_postback(
    sim: MessengerSimulator, receiver: WebhookReceiver
) -> None:
    sim.auto_receipts = ()
    assert (await send(sim, CAROUSEL))[0] == 200
    tapped = await sim.tap_button(PSID, element=1, button=1)
    [item] = messaging(receiver)
    assert item["postback"] == {"mid": tapped, "title": "Order", "payload": "ORDER_FUNGHI"}
    assert item["sender"] == {"id": PSID} and item["recipient"] == {"id": PAGE_ID}
    [event] = [e.draft for e in adapter().parse(receiver.received[0][1])]
    assert event.type == "postback" and event.postback is not None
    assert (event.postback.payload, event.postback.title) == ("ORDER_FUNGHI", "Order")
    with pytest.raises(ValueError, match="web_url"):
        await sim.tap_button(PSID, element=1, button=0)


async def test_taps_on_button_templates_and_quick_replies_through_the_control_endpoint(
    sim: MessengerSimulator, receiver: WebhookReceiver
) -> None:
    sim.auto_receipts = ()
    body = buttons(postback("Yes", "HOME_YES"), postback("Later", "HOME_LATER"))
    body["message"]["quick_replies"] = [reply("No, not yet", "ARRIVED_NO")]
    mid = (await send(sim, body))[2]["message_id"]
    root = sim.base_url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as session:
        statuses = []
        for tap in ({"button": 1, "mid": mid}, {"quick_reply": 0}, {"button": 7}):
            async with session.post(f"{root}/_sim/tap", json={"from": PSID, **tap}) as r:
                statuses.append(r.status)
        async with session.post(f"{root}/_sim/tap", json={"from": "nobody"}) as r:
            statuses.append(r.status)
    assert statuses == [200, 200, 400, 400]  # no button 7; nothing was sent to "nobody"
    postback_item, quick_item = messaging(receiver)
    assert postback_item["postback"]["payload"] == "HOME_LATER"
    assert quick_item["message"]["text"] == "No, not yet"
    assert quick_item["message"]["quick_reply"] == {"payload": "ARRIVED_NO"}
