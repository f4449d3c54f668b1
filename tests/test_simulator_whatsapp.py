"""The WhatsApp Cloud API simulator speaks Meta's formats: sends, errors and signed webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.simulator.whatsapp import WhatsAppSimulator
from tests.webhook_receiver import WebhookReceiver

from .conftest import WA

AUTH = {"Authorization": f"Bearer {WA['access_token']}"}
TO = "16505551234"


def signature_ok(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(WA["app_secret"].encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Hub-Signature-256", ""), expected)


@pytest.fixture
async def sim(receiver: WebhookReceiver) -> AsyncIterator[WhatsAppSimulator]:
    simulator = WhatsAppSimulator(
        phone_number_id=WA["phone_number_id"],
        display_phone_number=WA["display_phone_number"],
        access_token=WA["access_token"],
        app_secret=WA["app_secret"],
        webhook_url=receiver.url,
        status_delay=0.01,
        retry_backoff=0.01,
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


async def send(
    sim: WhatsAppSimulator,
    body: Any,
    headers: dict[str, str] | None = None,
    number: str = WA["phone_number_id"],
) -> tuple[int, dict[str, str], Any]:
    url = sim.base_url + f"/{number}/messages"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=AUTH if headers is None else headers) as response,
    ):
        return response.status, dict(response.headers), await response.json()


def text(body: str = "hello") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }


async def test_text_send_gets_a_wamid_then_signed_statuses_in_order(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    status, _, answer = await send(sim, text())
    assert status == 200
    wamid = answer["messages"][0]["id"]
    assert wamid.startswith("wamid.") and len(wamid) > 40
    assert answer == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": TO, "wa_id": TO}],
        "messages": [{"id": wamid}],
    }
    assert sim.sent == [{"wamid": wamid, "body": text()}]

    await sim.drain()
    assert len(receiver.received) == 3
    for headers, body in receiver.received:
        assert signature_ok(headers, body)
        assert headers["Content-Type"] == "application/json"
    statuses = [p["entry"][0]["changes"][0]["value"]["statuses"][0] for p in receiver.payloads()]
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    for item in statuses:
        assert item["id"] == wamid and item["recipient_id"] == TO
        assert isinstance(item["timestamp"], str) and item["timestamp"].isdigit()
    sent, delivered, read = statuses
    assert sent["conversation"]["origin"] == {"type": "service"}
    assert sent["conversation"]["expiration_timestamp"].isdigit()
    assert sent["pricing"] == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }
    assert "pricing" in delivered and "expiration_timestamp" not in delivered["conversation"]
    assert "pricing" not in read and "conversation" not in read
    value = receiver.payloads()[0]["entry"][0]["changes"][0]
    assert value["field"] == "messages"
    assert value["value"]["metadata"] == {
        "display_phone_number": WA["display_phone_number"],
        "phone_number_id": WA["phone_number_id"],
    }


BSUID = "US.13491208655302741918"


async def test_a_send_to_a_business_scoped_user_id_goes_by_recipient(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    body = {k: v for k, v in text().items() if k != "to"} | {"recipient": BSUID}
    status, _, answer = await send(sim, body)
    assert status == 200, answer
    wamid = answer["messages"][0]["id"]
    # The answer names the user by user_id, with no wa_id: no phone number is shared.
    assert answer["contacts"] == [{"input": BSUID, "user_id": BSUID}]
    await sim.drain()
    statuses = [p["entry"][0]["changes"][0]["value"]["statuses"][0] for p in receiver.payloads()]
    assert [(s["id"], s["status"]) for s in statuses] == [
        (wamid, "sent"),
        (wamid, "delivered"),
        (wamid, "read"),
    ]
    assert all(s["recipient_user_id"] == BSUID and "recipient_id" not in s for s in statuses)


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ({}, "Param to is required"),
        ({"recipient": "16505551234"}, "Param recipient must be a business-scoped user id"),
        ({"recipient": "US.1349-1208"}, "Param recipient must be a business-scoped user id"),
        ({"recipient": ""}, "Param to is required"),
    ],
    ids=["none", "phone as recipient", "not alphanumeric", "empty"],
)
async def test_a_send_without_a_valid_addressee_is_refused(
    sim: WhatsAppSimulator, address: dict[str, str], refusal: str
) -> None:
    body = {k: v for k, v in text().items() if k != "to"} | address
    status, _, answer = await send(sim, body)
    assert status == 400 and answer["error"]["code"] == 100
    assert refusal in answer["error"]["error_data"]["details"]


GROUP = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"


async def test_a_send_to_a_group_goes_by_recipient_type_group(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    """Group messaging, "Send group message": recipient_type group, `to` the group ID; its
    statuses name the group with recipient_type group."""
    status, _, answer = await send(sim, text() | {"recipient_type": "group", "to": GROUP})
    assert status == 200, answer
    assert "contacts" not in answer
    wamid = answer["messages"][0]["id"]
    await sim.drain()
    statuses = [p["entry"][0]["changes"][0]["value"]["statuses"][0] for p in receiver.payloads()]
    assert [s["id"] for s in statuses] == [wamid] * 3
    assert all(s["recipient_id"] == GROUP and s["recipient_type"] == "group" for s in statuses)


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ({"recipient_type": "group", "to": "16505551234"}, "Param to must be a group ID"),
        ({"recipient_type": "group", "to": BSUID}, "Param to must be a group ID"),
        ({"recipient_type": "broadcast", "to": GROUP}, "Param recipient_type must be"),
    ],
    ids=["phone as group", "bsuid as group", "unknown type"],
)
async def test_a_group_send_without_a_group_is_refused(
    sim: WhatsAppSimulator, address: dict[str, str], refusal: str
) -> None:
    status, _, answer = await send(sim, text() | address)
    assert status == 400 and answer["error"]["code"] == 100
    assert refusal in answer["error"]["error_data"]["details"]


async def test_given_to_and_recipient_meta_follows_to(sim: WhatsAppSimulator) -> None:
    status, _, answer = await send(sim, text() | {"recipient": BSUID})
    assert status == 200 and answer["contacts"] == [{"input": TO, "wa_id": TO}]


async def test_a_username_user_writes_with_from_user_id_and_no_phone(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    wamid = await sim.send_inbound_text(BSUID, "hi", name="Maria")
    [payload] = receiver.payloads()
    value = payload["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Maria"}, "user_id": BSUID}]
    [message] = value["messages"]
    assert message["from_user_id"] == BSUID and message["id"] == wamid and "from" not in message


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}], ids=["none", "wrong"])
async def test_bad_token_is_401_with_code_190(
    sim: WhatsAppSimulator, headers: dict[str, str]
) -> None:
    status, response_headers, answer = await send(sim, text(), headers=headers)
    assert status == 401 and "invalid_token" in response_headers["WWW-Authenticate"]
    assert answer["error"]["code"] == 190 and answer["error"]["type"] == "OAuthException"
    assert set(answer["error"]) == {"message", "type", "code", "fbtrace_id"}
    assert sim.sent == [] and len(sim.requests) == 1


async def test_unknown_phone_number_id_is_graph_error_100(sim: WhatsAppSimulator) -> None:
    status, _, answer = await send(sim, text(), number="999")
    assert status == 400 and answer["error"]["code"] == 100
    assert "'999'" in answer["error"]["message"]


async def test_invalid_body_is_400_in_metas_error_shape(sim: WhatsAppSimulator) -> None:
    body = text()
    del body["text"]["body"]
    status, _, answer = await send(sim, body)
    assert status == 400
    error = answer["error"]
    assert set(error) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert error["code"] == 100 and error["message"] == "(#100) Invalid parameter"
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert "text['body']" in error["error_data"]["details"]
    assert sim.sent == [] and sim.requests[0].json() == body


async def test_fail_next_rate_limit_sets_retry_after_then_recovers(sim: WhatsAppSimulator) -> None:
    sim.fail_next(130429, http_status=429, retry_after=3)
    status, headers, answer = await send(sim, text())
    assert status == 429 and headers["Retry-After"] == "3"
    assert answer["error"]["code"] == 130429
    assert answer["error"]["message"] == "(#130429) Rate limit hit"
    assert (await send(sim, text()))[0] == 200


async def test_fail_next_count_and_custom_details(sim: WhatsAppSimulator) -> None:
    sim.fail_next(131047, count=2, details="window closed")
    for _ in range(2):
        status, headers, answer = await send(sim, text())
        assert status == 400 and "Retry-After" not in headers
        assert answer["error"]["code"] == 131047
        assert answer["error"]["error_data"]["details"] == "window closed"
    assert (await send(sim, text()))[0] == 200


async def test_inbound_text_is_signed_in_metas_envelope(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    wamid = await sim.send_inbound_text(TO, "Où est https://x.example/a ?", name="Sheena")
    [(headers, body)] = receiver.received
    assert signature_ok(headers, body)
    # Meta escapes "/" and non-ASCII, so only the raw bytes verify.
    assert b"https:\\/\\/x.example" in body and b"\\u00f9" in body
    payload = json.loads(body)
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message.pop("timestamp").isdigit()
    assert payload == {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": sim.waba_id,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": WA["display_phone_number"],
                                "phone_number_id": WA["phone_number_id"],
                            },
                            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": TO}],
                            "messages": [
                                {
                                    "from": TO,
                                    "id": wamid,
                                    "type": "text",
                                    "text": {"body": "Où est https://x.example/a ?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


async def test_webhooks_are_retried_then_given_up(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    receiver.answers = [500, 503]
    await sim.send_inbound_text(TO, "hi")
    assert len(receiver.received) == 3 and len(sim.webhooks) == 1
    receiver.answers = [500] * sim.webhook_attempts
    reaction = {"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}}
    await sim.send_inbound(reaction, from_wa_id=TO)
    [dropped] = sim.failed_webhooks
    assert dropped["entry"][0]["changes"][0]["value"]["messages"][0]["type"] == "reaction"
    assert len(receiver.received) == 3 + sim.webhook_attempts


async def test_unreachable_gateway_is_given_up_quietly(sim: WhatsAppSimulator) -> None:
    sim.webhook_url = "http://127.0.0.1:9/nowhere"
    assert (await send(sim, text()))[0] == 200
    await asyncio.wait_for(sim.drain(), 5)
    assert len(sim.failed_webhooks) == 3  # sent, delivered and read, each dropped


async def test_template_send_reports_message_status_and_billing(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    body = {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "template",
        "biz_opaque_callback_data": "order-7",
        "template": {"name": "order_update", "language": {"code": "en_US"}},
    }
    status, _, answer = await send(sim, body)
    assert status == 200 and answer["messages"][0]["message_status"] == "accepted"
    await sim.drain()
    sent = receiver.payloads()[0]["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert sent["biz_opaque_callback_data"] == "order-7"
    assert sent["pricing"]["billable"] is True and sent["pricing"]["category"] == "utility"


def interactive(kind: str, action: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {"type": kind, "body": {"text": "Pick one"}, "action": action, **extra},
    }


BUTTONS = {
    "buttons": [
        {"type": "reply", "reply": {"id": f"b{i}", "title": f"Option {i}"}} for i in range(3)
    ]
}
LIST = {"button": "Options", "sections": [{"title": "All", "rows": [{"id": "r1", "title": "One"}]}]}
VALID = {
    "text": {"type": "text", "text": {"body": "x" * 4096}},
    "type omitted": {"text": {"body": "hi"}},
    "image link": {"type": "image", "image": {"link": "https://x.example/a.jpg", "caption": "c"}},
    "audio id": {"type": "audio", "audio": {"id": "1234"}},
    "document": {"type": "document", "document": {"id": "1", "filename": "a.pdf"}},
    "sticker": {"type": "sticker", "sticker": {"id": "1"}},
    "video": {"type": "video", "video": {"link": "https://x.example/a.mp4"}},
    "location": {"type": "location", "location": {"latitude": 1.5, "longitude": -2}},
    "contacts": {
        "type": "contacts",
        "contacts": [{"name": {"formatted_name": "Ann Lee", "first_name": "Ann"}}],
    },
    "reaction": {"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": ""}},
    "buttons": interactive("button", BUTTONS, footer={"text": "f"}),
    "list": interactive("list", LIST),
    "cta_url": interactive(
        "cta_url",
        {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://x.example"}},
    ),
    "buttons with text header": interactive(
        "button", BUTTONS, header={"type": "text", "text": "h" * 60}, footer={"text": "f" * 60}
    ),
    "buttons with image header": interactive(
        "button", BUTTONS, header={"type": "image", "image": {"link": "https://x.example/a.jpg"}}
    ),
    "buttons with video header": interactive(
        "button", BUTTONS, header={"type": "video", "video": {"id": "1234"}}
    ),
    "one button": interactive("button", {"buttons": BUTTONS["buttons"][:1]}),
    "list of ten rows in two sections": interactive(
        "list",
        {
            "button": "b" * 20,
            "sections": [
                {"title": "s" * 24, "rows": [{"id": f"r{i}", "title": "t" * 24} for i in range(5)]},
                {
                    "title": "B",
                    "rows": [
                        {"id": f"s{i}", "title": "t", "description": "d" * 72} for i in range(5)
                    ],
                },
            ],
        },
        header={"type": "text", "text": "Menu"},
    ),
    "location request": {
        "type": "interactive",
        "interactive": {
            "type": "location_request_message",
            "body": {"text": "x" * 1024},
            "action": {"name": "send_location"},
        },
    },
    "template": {
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    },
}
INVALID = {
    "product": {"messaging_product": "sms", "type": "text", "text": {"body": "hi"}},
    "no to": {"to": "", "type": "text", "text": {"body": "hi"}},
    "long text": {"type": "text", "text": {"body": "x" * 4097}},
    "unknown type": {"type": "poll", "poll": {"q": 1}},
    "media id and link": {"type": "image", "image": {"id": "1", "link": "https://x.example"}},
    "media neither": {"type": "image", "image": {"caption": "c"}},
    "audio caption": {"type": "audio", "audio": {"id": "1", "caption": "c"}},
    "long caption": {"type": "image", "image": {"id": "1", "caption": "c" * 1025}},
    "location text": {"type": "location", "location": {"latitude": "1", "longitude": 2}},
    "contact formatted only": {"type": "contacts", "contacts": [{"name": {"formatted_name": "A"}}]},
    "contacts object": {"type": "contacts", "contacts": {"name": {"formatted_name": "A"}}},
    "four buttons": interactive(
        "button",
        {
            "buttons": [
                *BUTTONS["buttons"],
                {"type": "reply", "reply": {"id": "b4", "title": "Option 4"}},
            ]
        },
    ),
    "same titles": interactive("button", {"buttons": [BUTTONS["buttons"][0]] * 2}),
    "button title": interactive(
        "button", {"buttons": [{"type": "reply", "reply": {"id": "b", "title": "x" * 21}}]}
    ),
    "list rows": interactive(
        "list",
        {
            "button": "Options",
            "sections": [
                {"title": "A", "rows": [{"id": f"r{i}", "title": "t"} for i in range(6)]},
                {"title": "B", "rows": [{"id": f"s{i}", "title": "t"} for i in range(6)]},
            ],
        },
    ),
    "row description": interactive(
        "list",
        {
            "button": "Options",
            "sections": [
                {"title": "A", "rows": [{"id": "r", "title": "t", "description": "d" * 73}]}
            ],
        },
    ),
    "section without title": interactive(
        "list", {"button": "Options", "sections": [{"rows": [{"id": "r", "title": "t"}]}]}
    ),
    "same row ids": interactive(
        "list",
        {
            "button": "Options",
            "sections": [
                {"title": "A", "rows": [{"id": "r", "title": "t"}, {"id": "r", "title": "u"}]}
            ],
        },
    ),
    "list image header": interactive(
        "list", LIST, header={"type": "image", "image": {"link": "https://x.example/a.jpg"}}
    ),
    "list without button": interactive("list", {"sections": LIST["sections"]}),
    "same button ids": interactive(
        "button",
        {
            "buttons": [
                {"type": "reply", "reply": {"id": "b", "title": "One"}},
                {"type": "reply", "reply": {"id": "b", "title": "Two"}},
            ]
        },
    ),
    "no buttons": interactive("button", {"buttons": []}),
    "url button among replies": interactive(
        "button", {"buttons": [{"type": "url", "reply": {"id": "b", "title": "Open"}}]}
    ),
    "long text header": interactive("button", BUTTONS, header={"type": "text", "text": "h" * 61}),
    "header media id and link": interactive(
        "button",
        BUTTONS,
        header={"type": "image", "image": {"id": "1", "link": "https://x.example/a.jpg"}},
    ),
    "long footer": interactive("button", BUTTONS, footer={"text": "f" * 61}),
    "long button body": {
        "type": "interactive",
        "interactive": {"type": "button", "body": {"text": "x" * 1025}, "action": BUTTONS},
    },
    "location request long body": {
        "type": "interactive",
        "interactive": {
            "type": "location_request_message",
            "body": {"text": "x" * 1025},
            "action": {"name": "send_location"},
        },
    },
    "location request action": {
        "type": "interactive",
        "interactive": {
            "type": "location_request_message",
            "body": {"text": "Where are you?"},
            "action": {"name": "send_it"},
        },
    },
    "cta_url without url": interactive(
        "cta_url", {"name": "cta_url", "parameters": {"display_text": "Open"}}
    ),
    "no interactive body": {
        "type": "interactive",
        "interactive": {"type": "button", "action": BUTTONS},
    },
    "template language": {"type": "template", "template": {"name": "hello_world"}},
    "reaction no emoji": {"type": "reaction", "reaction": {"message_id": "wamid.x"}},
}


@pytest.mark.parametrize("body", VALID.values(), ids=VALID.keys())
async def test_valid_bodies_are_accepted(sim: WhatsAppSimulator, body: dict[str, Any]) -> None:
    status, _, answer = await send(sim, {"messaging_product": "whatsapp", "to": TO, **body})
    assert status == 200, answer


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
async def test_invalid_bodies_are_refused(sim: WhatsAppSimulator, body: dict[str, Any]) -> None:
    status, _, answer = await send(sim, {"messaging_product": "whatsapp", "to": TO, **body})
    assert status == 400 and answer["error"]["code"] == 100, answer


async def test_control_endpoints(sim: WhatsAppSimulator, receiver: WebhookReceiver) -> None:
    await send(sim, text("one"))
    root = sim.base_url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{root}/_sim/sent") as response:
            [entry] = await response.json()
        inbound = {"from": TO, "text": "hey"}
        async with session.post(f"{root}/_sim/inbound", json=inbound) as response:
            wamid = (await response.json())["id"]
    assert entry["body"]["text"]["body"] == "one"
    await sim.drain()
    values = [p["entry"][0]["changes"][0]["value"] for p in receiver.payloads()]
    assert [v["messages"][0]["id"] for v in values if "messages" in v] == [wamid]


def to_user(body: dict[str, Any]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, **body}


async def test_a_tap_on_a_sent_button_is_a_button_reply_quoting_that_message(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    status, _, answer = await send(sim, to_user(interactive("button", BUTTONS)))
    assert status == 200
    wamid = answer["messages"][0]["id"]
    tap = await sim.send_inbound_button_reply(TO, "b1", name="Sheena")
    await sim.drain()
    [value] = [
        p["entry"][0]["changes"][0]["value"]
        for p in receiver.payloads()
        if "messages" in p["entry"][0]["changes"][0]["value"]
    ]
    assert value["contacts"] == [{"profile": {"name": "Sheena"}, "wa_id": TO}]
    [message] = value["messages"]
    assert message["id"] == tap and message["from"] == TO
    assert message["context"] == {"from": WA["display_phone_number"], "id": wamid}
    assert message["type"] == "interactive"
    assert message["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "b1", "title": "Option 1"},
    }
    assert all(signature_ok(h, b) for h, b in receiver.received)


async def test_a_pick_from_a_sent_list_is_a_list_reply(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    rows = [{"id": "r1", "title": "One", "description": "The first"}, {"id": "r2", "title": "Two"}]
    body = interactive("list", {"button": "Options", "sections": [{"title": "All", "rows": rows}]})
    answer = (await send(sim, to_user(body)))[2]
    await sim.send_inbound_list_reply(TO, "r1")
    await sim.drain()
    [message] = [
        m
        for p in receiver.payloads()
        for m in p["entry"][0]["changes"][0]["value"].get("messages", [])
    ]
    assert message["context"]["id"] == answer["messages"][0]["id"]
    assert message["interactive"] == {
        "type": "list_reply",
        "list_reply": {"id": "r1", "title": "One", "description": "The first"},
    }


async def test_a_tap_on_a_button_never_sent_is_refused(sim: WhatsAppSimulator) -> None:
    with pytest.raises(ValueError, match="no button message offering 'nope'"):
        await sim.send_inbound_button_reply(TO, "nope")
    root = sim.base_url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as session:
        inbound = {"from": TO, "button_id": "nope"}
        async with session.post(f"{root}/_sim/inbound", json=inbound) as response:
            assert response.status == 404


async def test_control_endpoint_taps_a_button(
    sim: WhatsAppSimulator, receiver: WebhookReceiver
) -> None:
    await send(sim, to_user(interactive("button", BUTTONS)))
    root = sim.base_url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as session:
        inbound = {"from": TO, "button_id": "b2"}
        async with session.post(f"{root}/_sim/inbound", json=inbound) as response:
            wamid = (await response.json())["id"]
    await sim.drain()
    [message] = [
        m
        for p in receiver.payloads()
        for m in p["entry"][0]["changes"][0]["value"].get("messages", [])
    ]
    assert message["id"] == wamid
    assert message["interactive"]["button_reply"] == {"id": "b2", "title": "Option 2"}
