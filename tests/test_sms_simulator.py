"""The Twilio simulator: Messages API validation and errors, signed status callbacks and inbound
webhooks, remembered opt-outs; and the SDK-based sender talking to it."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from adapters.base import ProviderRequest, SendError
from adapters.sms import SmsConfig
from adapters.sms.sender import TwilioSender
from gateway.simulator.sms import TwilioSimulator

ACCOUNT_SID = "AC" + "1a" * 16
AUTH_TOKEN = "sim-auth-token-0123456789abcdef"
NUMBER = "+14155550199"
USER = "+14155550100"
AUTH = {
    "Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
}
PUBLIC = "https://sms.example.com"


class Receiver:
    """Stands in for the gateway: records form posts and answers TwiML."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, list[str]]]] = []
        self.runner: web.AppRunner | None = None
        self.origin = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/{channel}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.origin = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def handle(self, request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode(), keep_blank_values=True)
        self.received.append((request.path_qs, dict(request.headers), form))
        return web.Response(text="<Response/>", content_type="text/xml", status=200)

    def signed_for(self, url: str, index: int = -1) -> bool:
        _, headers, form = self.received[index]
        params = {k: v[0] for k, v in form.items()}
        validator = RequestValidator(AUTH_TOKEN)
        return bool(validator.validate(url, params, headers.get("X-Twilio-Signature", "")))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    await recv.start()
    yield recv
    assert recv.runner is not None
    await recv.runner.cleanup()


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[TwilioSimulator]:
    simulator = TwilioSimulator(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        phone_number=NUMBER,
        messaging_service_sid="MG" + "2b" * 16,
        webhook_url=f"{receiver.origin}/webhooks/sms-main",
        public_url=f"{PUBLIC}/webhooks/sms-main",
        status_delay=0.01,
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


async def send(
    sim: TwilioSimulator,
    form: dict[str, Any],
    headers: dict[str, str] | None = None,
    account: str = ACCOUNT_SID,
) -> tuple[int, dict[str, str], Any]:
    url = f"{sim.base_url}/2010-04-01/Accounts/{account}/Messages.json"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, headers=AUTH if headers is None else headers) as response,
    ):
        return response.status, dict(response.headers), await response.json()


def text(body: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"To": USER, "From": NUMBER, "Body": body, **extra}


async def test_send_answers_a_message_resource_then_signed_callbacks(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    callback = f"{PUBLIC}/webhooks/sms-main?tag=a"
    status, _, answer = await send(sim, text("a" * 200, StatusCallback=callback))
    assert status == 201
    assert re.fullmatch(r"SM[0-9a-f]{32}", answer["sid"])
    assert answer["status"] == "queued" and answer["num_segments"] == "2"
    assert answer["to"] == USER and answer["from"] == NUMBER and answer["body"] == "a" * 200
    assert answer["direction"] == "outbound-api" and answer["error_code"] is None
    assert answer["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{answer['sid']}.json"
    assert answer["date_created"].endswith("+0000")

    await sim.drain()
    # Delivered behind the "proxy" (the receiver) yet signed for the public callback URL.
    assert [path for path, _, _ in receiver.received] == ["/webhooks/sms-main?tag=a"] * 2
    for index in range(2):
        assert receiver.signed_for(callback, index)
        assert not receiver.signed_for(f"{receiver.origin}/webhooks/sms-main?tag=a", index)
    states = [form["MessageStatus"][0] for _, _, form in receiver.received]
    assert states == ["sent", "delivered"]
    _, headers, delivered = receiver.received[1]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert {k: v[0] for k, v in delivered.items() if k != "RawDlrDoneDate"} == {
        "SmsSid": answer["sid"],
        "SmsStatus": "delivered",
        "MessageStatus": "delivered",
        "To": USER,
        "MessageSid": answer["sid"],
        "AccountSid": ACCOUNT_SID,
        "From": NUMBER,
        "ApiVersion": "2010-04-01",
    }
    assert re.fullmatch(r"\d{10}", delivered["RawDlrDoneDate"][0])
    assert [c["status"] for c in sim.callbacks] == [200, 200]


async def test_callbacks_can_arrive_before_the_answer(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    sim.statuses_before_answer = True
    callback = f"{PUBLIC}/webhooks/sms-main"
    _, _, answer = await send(sim, text(StatusCallback=callback))
    # No drain: both were acknowledged before the send was answered.
    assert [form["MessageSid"][0] for _, _, form in receiver.received] == [answer["sid"]] * 2
    assert [form["MessageStatus"][0] for _, _, form in receiver.received] == ["sent", "delivered"]


async def test_a_message_sent_elsewhere_reports_to_the_webhook(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    sid = await sim.report_foreign_send(USER)
    assert re.fullmatch(r"SM[0-9a-f]{32}", sid) and sid not in {s["sid"] for s in sim.sent}
    assert [path for path, _, _ in receiver.received] == ["/webhooks/sms-main"] * 2
    assert all(receiver.signed_for(f"{PUBLIC}/webhooks/sms-main", i) for i in range(2))
    forms = [form for _, _, form in receiver.received]
    assert [(f["MessageSid"][0], f["MessageStatus"][0]) for f in forms] == [
        (sid, "sent"),
        (sid, "delivered"),
    ]
    assert {f["MessagingServiceSid"][0] for f in forms} == {sim.messaging_service_sid}


async def test_messaging_service_send_is_accepted_and_mms_counts_media(
    sim: TwilioSimulator,
) -> None:
    form = {
        "To": USER,
        "MessagingServiceSid": sim.messaging_service_sid,
        "MediaUrl": "https://x/a.jpg",
    }
    status, _, answer = await send(sim, form)
    assert status == 201 and answer["status"] == "accepted"
    assert answer["sid"].startswith("MM") and answer["num_media"] == "1"
    assert answer["messaging_service_sid"] == sim.messaging_service_sid
    assert answer["from"] is None


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic " + base64.b64encode(b"AC1:wrong").decode()}],
    ids=["none", "wrong"],
)
async def test_bad_credentials_are_20003(sim: TwilioSimulator, headers: dict[str, str]) -> None:
    status, response_headers, answer = await send(sim, text(), headers=headers)
    assert status == 401 and "Basic" in response_headers["WWW-Authenticate"]
    assert answer == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert sim.sent == [] and len(sim.requests) == 1


async def test_another_accounts_path_is_refused(sim: TwilioSimulator) -> None:
    status, _, answer = await send(sim, text(), account="AC" + "9" * 32)
    assert status == 401 and answer["code"] == 20003


INVALID = {
    "no To": ({"From": NUMBER, "Body": "x"}, 21604),
    "To not E.164": (text(To="4155550100"), 21211),
    "no sender": ({"To": USER, "Body": "x"}, 21603),
    "foreign From": (text(From="+14155559999"), 21606),
    "foreign service": ({"To": USER, "MessagingServiceSid": "MG" + "0" * 32, "Body": "x"}, 21701),
    "neither Body nor MediaUrl": ({"To": USER, "From": NUMBER}, 21602),
    "Body over 1600": (text("x" * 1601), 21617),
}


@pytest.mark.parametrize(("form", "code"), INVALID.values(), ids=INVALID.keys())
async def test_invalid_sends_are_refused(
    sim: TwilioSimulator, form: dict[str, Any], code: int
) -> None:
    status, _, answer = await send(sim, form)
    assert (status, answer["code"], answer["status"]) == (400, code, 400)
    assert answer["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert sim.sent == []


async def test_more_than_ten_media_is_21623(sim: TwilioSimulator) -> None:
    form = [("To", USER), ("From", NUMBER)] + [
        ("MediaUrl", f"https://x/{i}.jpg") for i in range(11)
    ]
    url = f"{sim.base_url}{sim.messages_path}"
    async with aiohttp.ClientSession() as session, session.post(url, data=form, headers=AUTH) as r:
        assert r.status == 400 and (await r.json())["code"] == 21623


async def test_fail_next_with_retry_after_then_recovers(sim: TwilioSimulator) -> None:
    sim.fail_next(20429, http_status=429, retry_after=2, count=2)
    for _ in range(2):
        status, headers, answer = await send(sim, text())
        assert status == 429 and headers["Retry-After"] == "2"
        assert answer["code"] == 20429 and answer["message"] == "Too Many Requests"
    assert (await send(sim, text()))[0] == 201


async def test_failed_delivery_reports_the_error_code(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    sim.fail_delivery_next(30003)
    await send(sim, text(StatusCallback=f"{PUBLIC}/webhooks/sms-main"))
    await sim.drain()
    forms = [form for _, _, form in receiver.received]
    assert [f["MessageStatus"][0] for f in forms] == ["sent", "undelivered"]
    assert forms[-1]["ErrorCode"] == ["30003"] and "ErrorCode" not in forms[0]


async def test_inbound_sms_is_signed_for_the_public_url(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    sid = await sim.send_inbound(USER, "Hi there, 5€?")
    [(path, headers, form)] = receiver.received
    assert path == "/webhooks/sms-main"
    assert receiver.signed_for(f"{PUBLIC}/webhooks/sms-main")
    assert headers["I-Twilio-Idempotency-Token"]
    assert form["MessageSid"] == form["SmsSid"] == [sid] and form["SmsStatus"] == ["received"]
    assert form["From"] == [USER] and form["To"] == [NUMBER] and form["Body"] == ["Hi there, 5€?"]
    assert form["NumMedia"] == ["0"] and form["AccountSid"] == [ACCOUNT_SID]
    assert sim.webhooks[0]["status"] == 200 and sim.webhooks[0]["content_type"] == "text/xml"


async def test_inbound_mms_lists_every_media(sim: TwilioSimulator, receiver: Receiver) -> None:
    media = [
        ("https://api.twilio.com/m/ME1", "image/jpeg"),
        ("https://api.twilio.com/m/ME2", "video/mp4"),
    ]
    sid = await sim.send_inbound(USER, "look", media=media)
    form = receiver.received[0][2]
    assert sid.startswith("MM") and form["NumMedia"] == ["2"]
    assert form["MediaUrl1"] == ["https://api.twilio.com/m/ME2"]
    assert form["MediaContentType0"] == ["image/jpeg"]


async def test_stop_blocks_sends_with_21610_until_start(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    await sim.send_inbound(USER, " Stop ")
    status, _, answer = await send(sim, text())
    assert status == 400 and answer["code"] == 21610
    assert answer["message"] == "Attempt to send to unsubscribed recipient"
    await sim.send_inbound(USER, "START")
    assert (await send(sim, text()))[0] == 201


async def test_advanced_opt_out_adds_opt_out_type(sim: TwilioSimulator, receiver: Receiver) -> None:
    sim.advanced_opt_out = True
    for word in ("STOP", "unstop", "info", "hello"):
        await sim.send_inbound(USER, word)
    kinds = [form.get("OptOutType") for _, _, form in receiver.received]
    assert kinds == [["STOP"], ["START"], ["HELP"], None]


async def test_control_endpoints(sim: TwilioSimulator, receiver: Receiver) -> None:
    await send(sim, text("one"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.base_url}/_sim/sent") as response:
            [entry] = await response.json()
        inbound = {"from": USER, "body": "hey"}
        async with session.post(f"{sim.base_url}/_sim/inbound", json=inbound) as response:
            sid = (await response.json())["sid"]
        async with session.post(f"{sim.base_url}/_sim/inbound", json={"x": 1}) as response:
            assert response.status == 400
    assert entry["params"]["Body"] == ["one"]
    assert receiver.received[-1][2]["MessageSid"] == [sid]


# --- the SDK sender against the simulator ---------------------------------------------------


def sender_for(sim: TwilioSimulator, **overrides: Any) -> TwilioSender:
    config = SmsConfig(
        id="sms-main",
        type="sms",
        api_base_url=sim.base_url,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=NUMBER,
    )
    return TwilioSender(config.model_copy(update=overrides), timeout=2)


def request(**form: Any) -> ProviderRequest:
    return ProviderRequest("POST", "/ignored", form={"To": USER, "From": NUMBER, **form})


async def test_sender_creates_messages_through_the_sdk(sim: TwilioSimulator) -> None:
    sender = sender_for(sim)
    try:
        sid = await sender.send(
            request(
                Body="hi",
                MediaUrl=["https://x/1.jpg", "https://x/2.jpg"],
                StatusCallback=f"{PUBLIC}/cb",
            )
        )
    finally:
        await sender.aclose()
    [sent] = sim.sent
    assert sent["sid"] == sid
    assert sent["params"] == {
        "To": [USER],
        "From": [NUMBER],
        "Body": ["hi"],
        "MediaUrl": ["https://x/1.jpg", "https://x/2.jpg"],
        "StatusCallback": [f"{PUBLIC}/cb"],
    }
    assert sim.requests[0].headers["User-Agent"].startswith("twilio-python/")


SENDER_ERRORS = {
    "unsubscribed": (21610, 400, None, ("unreachable", "21610", None, True)),
    "rate_limited": (20429, 429, 1.5, ("retry", "20429", 1.5, False)),
    "server_error": (20500, 500, None, ("retry", "20500", None, False)),
    "invalid_to": (21211, 400, None, ("unreachable", "21211", None, False)),
    "region": (21408, 400, None, ("permanent", "21408", None, False)),
}


@pytest.mark.parametrize(
    ("code", "http_status", "retry_after", "expected"),
    SENDER_ERRORS.values(),
    ids=SENDER_ERRORS.keys(),
)
async def test_sender_classifies_twilio_errors(
    sim: TwilioSimulator,
    code: int,
    http_status: int,
    retry_after: float | None,
    expected: tuple[str, str, float | None, bool],
) -> None:
    sim.fail_next(code, http_status=http_status, retry_after=retry_after, message="Refused")
    sender = sender_for(sim)
    try:
        with pytest.raises(SendError) as caught:
            await sender.send(request(Body="hi"))
    finally:
        await sender.aclose()
    error = caught.value
    assert (error.category, error.code, error.retry_after, error.unsubscribed) == expected
    assert error.title == "Refused"  # Twilio's message, without the SDK's prefix


async def test_sender_with_a_wrong_token_is_permanent(sim: TwilioSimulator) -> None:
    sender = sender_for(sim, auth_token=SecretStr("not-the-token"))
    try:
        with pytest.raises(SendError) as caught:
            await sender.send(request(Body="hi"))
    finally:
        await sender.aclose()
    assert (caught.value.category, caught.value.code) == ("permanent", "20003")
    assert "not-the-token" not in str(caught.value)


async def test_sender_unreachable_api_is_retried() -> None:
    config = SmsConfig(
        id="sms-main",
        type="sms",
        api_base_url="http://127.0.0.1:9",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=NUMBER,
    )
    sender = TwilioSender(config, timeout=2)
    try:
        with pytest.raises(SendError) as caught:
            await sender.send(request(Body="hi"))
    finally:
        await sender.aclose()
    assert (caught.value.category, caught.value.code) == ("retry", "connect_error")


async def test_sender_timeout_is_retried() -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"sid": "SM" + "0" * 32}, status=201)

    app = web.Application()
    app.router.add_post("/{tail:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    config = SmsConfig(
        id="sms-main",
        type="sms",
        api_base_url=f"http://127.0.0.1:{runner.addresses[0][1]}",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=NUMBER,
    )
    sender = TwilioSender(config, timeout=0.2)
    try:
        with pytest.raises(SendError) as caught:
            await sender.send(request(Body="hi"))
    finally:
        await sender.aclose()
        await runner.cleanup()
    assert (caught.value.category, caught.value.code) == ("retry", "timeout")


async def test_sender_refuses_fields_it_cannot_map(sim: TwilioSimulator) -> None:
    sender = sender_for(sim)
    try:
        with pytest.raises(SendError, match="unsupported_param"):
            await sender.send(request(Body="hi", ContentSid="HX1"))
    finally:
        await sender.aclose()
    assert sim.requests == []
