"""The LINE simulator speaks LINE's formats: reply tokens, retry keys, errors, signed webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters.base import InboundRequest
from adapters.line import LineAdapter, LineConfig
from gateway.simulator.line import LineSimulator
from tests.webhook_receiver import WebhookReceiver

SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
TOKEN = "line-access-token-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USER = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
GROUP = "Ca56f94637cc4347f90a25382909b24b9"
KEY = "123e4567-e89b-12d3-a456-426614174000"


@pytest.fixture
async def sim(receiver: WebhookReceiver) -> AsyncIterator[LineSimulator]:
    simulator = LineSimulator(
        channel_secret=SECRET,
        channel_access_token=TOKEN,
        webhook_url=receiver.url,
        retry_backoff=0.01,
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


async def call(
    sim: LineSimulator,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, sim.base_url + path, json=body, headers={**AUTH, **(headers or {})}
        ) as response,
    ):
        return response.status, dict(response.headers), await response.json()


def push(*messages: dict[str, Any], to: str = USER) -> dict[str, Any]:
    return {"to": to, "messages": list(messages) or [{"type": "text", "text": "hello"}]}


async def test_push_is_accepted_with_message_ids_and_a_request_id(sim: LineSimulator) -> None:
    status, headers, answer = await call(
        sim, "/v2/bot/message/push", push(), {"X-Line-Retry-Key": KEY}
    )
    assert status == 200
    [sent] = answer["sentMessages"]
    assert sent["id"].isdigit() and len(sent["id"]) == 18 and sent["quoteToken"]
    assert headers["x-line-request-id"] == sim.pushes()[0].request_id
    assert sim.pushes()[0].body == push() and sim.pushes()[0].retry_key == KEY


@pytest.mark.parametrize("auth", ["", "Bearer wrong"], ids=["none", "wrong"])
async def test_bad_token_is_401(sim: LineSimulator, auth: str) -> None:
    status, _, answer = await call(sim, "/v2/bot/message/push", push(), {"Authorization": auth})
    assert status == 401
    assert answer["message"].startswith("Authentication failed")
    assert sim.sent == []


async def test_the_same_retry_key_is_accepted_once(sim: LineSimulator) -> None:
    first = await call(sim, "/v2/bot/message/push", push(), {"X-Line-Retry-Key": KEY})
    second = await call(sim, "/v2/bot/message/push", push(), {"X-Line-Retry-Key": KEY})
    assert first[0] == 200 and second[0] == 409
    assert second[1]["x-line-accepted-request-id"] == first[1]["x-line-request-id"]
    assert second[1]["x-line-request-id"] != first[1]["x-line-request-id"]
    assert second[2]["message"] == "The retry key is already accepted"
    assert second[2]["sentMessages"][0]["id"] == first[2]["sentMessages"][0]["id"]
    assert len(sim.pushes()) == 1
    other = await call(
        sim, "/v2/bot/message/push", push(), {"X-Line-Retry-Key": str(KEY[:-1] + "1")}
    )
    assert other[0] == 200 and len(sim.pushes()) == 2


async def test_a_failed_attempt_does_not_spend_the_retry_key(sim: LineSimulator) -> None:
    sim.fail_next(500)
    failed = await call(sim, "/v2/bot/message/push", push(), {"X-Line-Retry-Key": KEY})
    again = await call(sim, "/v2/bot/message/push", push(), {"X-Line-Retry-Key": KEY})
    assert (failed[0], failed[2]) == (500, {"message": "An error occurred in the backend"})
    assert again[0] == 200 and len(sim.pushes()) == 1


async def test_malformed_retry_key_is_400(sim: LineSimulator) -> None:
    status, _, answer = await call(
        sim, "/v2/bot/message/push", push(), {"X-Line-Retry-Key": "not-a-uuid"}
    )
    assert status == 400 and "retry key" in answer["message"]


INVALID = {
    "six_messages": (
        push(*[{"type": "text", "text": str(i)} for i in range(6)]),
        [{"message": "Size must be between 1 and 5", "property": "messages"}],
    ),
    "no_messages": (
        {"to": USER, "messages": []},
        [{"message": "May not be empty", "property": "messages"}],
    ),
    "text_over_5000_utf16_units": (
        push({"type": "text", "text": "🌱" * 2501}),
        [{"message": "Length must be between 0 and 5000", "property": "messages[0].text"}],
    ),
    "image_over_http_without_preview": (
        push({"type": "image", "originalContentUrl": "http://example.com/a.jpg"}),
        [
            {
                "message": "must be a URL starting with https://",
                "property": "messages[0].originalContentUrl",
            },
            {"message": "May not be empty", "property": "messages[0].previewImageUrl"},
        ],
    ),
    "audio_without_duration": (
        push({"type": "audio", "originalContentUrl": "https://example.com/a.m4a"}),
        [
            {
                "message": "must be a positive number of milliseconds",
                "property": "messages[0].duration",
            }
        ],
    ),
    "location_without_title_and_long_address": (
        push({"type": "location", "address": "x" * 101, "latitude": 35.6, "longitude": 139.7}),
        [
            {"message": "May not be empty", "property": "messages[0].title"},
            {"message": "Length must be between 0 and 100", "property": "messages[0].address"},
        ],
    ),
    "unknown_type": (
        push({"type": "file", "url": "https://example.com/a.pdf"}),
        [{"message": "invalid message type 'file'", "property": "messages[0].type"}],
    ),
    "no_recipient": (
        {"messages": [{"type": "text", "text": "hi"}]},
        [{"message": "May not be empty", "property": "to"}],
    ),
}


@pytest.mark.parametrize(("body", "details"), INVALID.values(), ids=INVALID.keys())
async def test_invalid_push_bodies_are_400_with_details(
    sim: LineSimulator, body: dict[str, Any], details: list[dict[str, str]]
) -> None:
    status, _, answer = await call(sim, "/v2/bot/message/push", body)
    assert status == 400
    assert answer == {
        "message": f"The request body has {len(details)} error(s)",
        "details": details,
    }
    assert sim.sent == []


async def test_valid_message_objects_of_every_kind_are_accepted(sim: LineSimulator) -> None:
    messages: list[dict[str, Any]] = [
        {
            "type": "image",
            "originalContentUrl": "https://e.x/a.jpg",
            "previewImageUrl": "https://e.x/a.jpg",
        },
        {
            "type": "video",
            "originalContentUrl": "https://e.x/a.mp4",
            "previewImageUrl": "https://e.x/a.jpg",
        },
        {"type": "audio", "originalContentUrl": "https://e.x/a.m4a", "duration": 60000},
        {
            "type": "location",
            "title": "Office",
            "address": "Tokyo",
            "latitude": 35.6,
            "longitude": 139.7,
        },
        {"type": "sticker", "packageId": "446", "stickerId": "1988"},
    ]
    status, _, answer = await call(sim, "/v2/bot/message/push", push(*messages))
    assert status == 200 and len(answer["sentMessages"]) == 5


async def test_reply_tokens_from_webhooks_are_single_use(
    sim: LineSimulator, receiver: WebhookReceiver
) -> None:
    event = await sim.send_text(USER, "hi")
    body = {"replyToken": event["replyToken"], "messages": [{"type": "text", "text": "hello"}]}
    first = await call(sim, "/v2/bot/message/reply", body)
    second = await call(sim, "/v2/bot/message/reply", body)
    assert first[0] == 200 and len(first[2]["sentMessages"]) == 1
    assert (second[0], second[2]) == (400, {"message": "Invalid reply token"})
    assert [s.body for s in sim.replies()] == [body]


async def test_expired_unknown_and_retry_keyed_replies_are_refused(sim: LineSimulator) -> None:
    event = await sim.send_text(USER, "hi")
    body = {"replyToken": event["replyToken"], "messages": [{"type": "text", "text": "hello"}]}
    keyed = await call(sim, "/v2/bot/message/reply", body, {"X-Line-Retry-Key": KEY})
    assert keyed[0] == 400 and "retry key" in keyed[2]["message"]
    unknown = await call(sim, "/v2/bot/message/reply", {**body, "replyToken": "made-up"})
    assert unknown[2] == {"message": "Invalid reply token"}
    sim.expire_reply_tokens()
    expired = await call(sim, "/v2/bot/message/reply", body)
    assert (expired[0], expired[2]) == (400, {"message": "Invalid reply token"})
    assert sim.sent == []


async def test_errors_on_demand_can_target_one_endpoint(sim: LineSimulator) -> None:
    sim.fail_next(429, "You have reached your monthly limit.", path="/v2/bot/message/push")
    event = await sim.send_text(USER, "hi")
    reply = {"replyToken": event["replyToken"], "messages": [{"type": "text", "text": "a"}]}
    assert (await call(sim, "/v2/bot/message/reply", reply))[0] == 200
    status, _, answer = await call(sim, "/v2/bot/message/push", push())
    assert (status, answer) == (429, {"message": "You have reached your monthly limit."})
    sim.fail_next(429, "The API rate limit has been exceeded. Try again later.", retry_after=1.5)
    status, headers, _ = await call(sim, "/v2/bot/message/push", push())
    assert status == 429 and headers["Retry-After"] == "1.5"
    assert (await call(sim, "/v2/bot/message/push", push()))[0] == 200


async def test_webhook_endpoint_can_be_set_and_read(sim: LineSimulator) -> None:
    path = "/v2/bot/channel/webhook/endpoint"
    bad = await call(sim, path, {"endpoint": "http://gw.example.com/hook"}, method="PUT")
    assert bad[0] == 400 and bad[2] == {"message": "Invalid webhook endpoint URL"}
    ok = await call(sim, path, {"endpoint": "https://gw.example.com/hook"}, method="PUT")
    assert (ok[0], ok[2]) == (200, {})
    got = await call(sim, path, None, method="GET")
    assert got[2] == {"endpoint": "https://gw.example.com/hook", "active": True}


def adapter(secret: str = SECRET) -> LineAdapter:
    config = LineConfig(id="line", type="line", channel_secret=secret, channel_access_token="t")
    return LineAdapter(config)


def verified(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    request = InboundRequest("POST", "https://gw/webhooks/line", headers, body)
    return adapter(secret).verify(request)


async def test_webhooks_are_signed_and_parse(sim: LineSimulator, receiver: WebhookReceiver) -> None:
    text = await sim.send_text(USER, "Hello 🌱")
    group = await sim.send_text(USER, "hi all", group_id=GROUP)
    await sim.send_follow(USER)
    await sim.send_unfollow(USER)
    await sim.send_postback(USER, "storeId=12345", {"date": "2025-01-01"})
    assert await sim.verify_webhook() == 200
    assert len(receiver.received) == 6
    for headers, body in receiver.received:
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert verified(headers, body)
        assert not verified(headers, body, "another-channel-secret")
    parsed = [[e.draft for e in adapter().parse(body)] for _, body in receiver.received]
    assert [[d.type for d in events] for events in parsed] == [
        ["message"],
        ["message"],
        ["subscription"],
        ["subscription"],
        ["postback"],
        [],
    ]
    first, in_group, follow, unfollow, postback = (events[0] for events in parsed[:5])
    assert first.external_id == text["message"]["id"]
    assert first.channel_data and first.channel_data["reply_token"] == text["replyToken"]
    assert in_group.channel_data and in_group.channel_data["reply_target"] == GROUP
    assert in_group.channel_data["group_id"] == GROUP and group["source"]["userId"] == USER
    assert follow.subscription and follow.subscription.state == "subscribed"
    assert unfollow.subscription and unfollow.subscription.state == "unsubscribed"
    assert unfollow.channel_data and "reply_token" not in unfollow.channel_data
    assert postback.postback and postback.postback.payload == "storeId=12345"
    assert postback.channel_data and postback.channel_data["params"] == {"date": "2025-01-01"}
    assert receiver.payloads()[0]["destination"] == sim.bot_user_id


async def test_redelivery_keeps_the_event_id_and_marks_it(
    sim: LineSimulator, receiver: WebhookReceiver
) -> None:
    sim.webhook_attempts = 2
    receiver.answers = [500]
    await sim.send_text(USER, "are you there?")
    first, second = receiver.payloads()
    assert first["events"][0]["webhookEventId"] == second["events"][0]["webhookEventId"]
    assert first["events"][0]["deliveryContext"] == {"isRedelivery": False}
    assert second["events"][0]["deliveryContext"] == {"isRedelivery": True}
    assert sim.webhooks == [second] and sim.failed_webhooks == []


async def test_control_endpoints(sim: LineSimulator, receiver: WebhookReceiver) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            sim.base_url + "/_sim/inbound", json={"from": USER, "text": "yo"}
        ) as r:
            assert r.status == 200
            message_id = (await r.json())["id"]
        async with session.post(sim.base_url + "/_sim/inbound", json={"text": "yo"}) as r:
            assert r.status == 400
    assert receiver.payloads()[0]["events"][0]["message"]["id"] == message_id
    await call(sim, "/v2/bot/message/push", push())
    async with aiohttp.ClientSession() as session, session.get(sim.base_url + "/_sim/sent") as r:
        [listed] = await r.json()
    assert listed["kind"] == "push" and listed["body"] == push()
