"""What a webhook may weigh: each channel's body cap and the form-field cap are enforced
before a body is parsed or signed, and a flood of forged forms leaves genuine webhooks fast."""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.base import InboundRequest
from adapters.sms import MAX_WEBHOOK_BYTES, MAX_WEBHOOK_FIELDS, SmsAdapter
from adapters.viber import ViberAdapter
from adapters.whatsapp import WhatsAppAdapter
from gateway.http.ingress import VERIFY_INLINE_BYTES
from gateway.simulator.sms import sign

from .conftest import STARTUP_SECONDS, base_config, config_from, hub_sign, webhook

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = "https://gateway.example.com"
AUTH_TOKEN = "limits-twilio-auth-token-0123456789"
SMS = {
    "id": "sms-main",
    "type": "sms",
    "api_base_url": "http://127.0.0.1:9",
    "account_sid": "AC" + "5e" * 16,
    "auth_token": AUTH_TOKEN,
    "from_number": "+14155550199",
}
VIBER = {
    "id": "viber-main",
    "type": "viber",
    "api_base_url": "http://127.0.0.1:9",
    "auth_token": "limits-viber-auth-token-0123456789",
    "sender_name": "Shop",
}
FORM = "application/x-www-form-urlencoded"


def sms_params(i: int, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": f"SM{i:032x}",
        "AccountSid": SMS["account_sid"],
        "From": "+14155550100",
        "To": "+14155550199",
        "Body": f"Where is order {i}?",
        "NumMedia": "0",
        **extra,
    }


def sms_headers(params: dict[str, str]) -> dict[str, str]:
    url = f"{PUBLIC}/webhooks/sms-main"
    return {"Content-Type": FORM, "X-Twilio-Signature": sign(AUTH_TOKEN, url, params)}


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    data = base_config(tmp_path)
    data["channels"] = [*data["channels"], SMS, VIBER]
    return await start_gateway(config_from(data))


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each signature check: the channel type, and the thread it ran on."""
    calls: list[tuple[str, int]] = []
    for adapter in (SmsAdapter, ViberAdapter, WhatsAppAdapter):

        def spy(self: Any, request: InboundRequest, _real: Any = adapter.verify) -> bool:
            calls.append((self.type, threading.get_ident()))
            return bool(_real(self, request))

        monkeypatch.setattr(adapter, "verify", spy)
    return calls


async def inbox_count(gw: Any) -> int:
    row = await gw.gateway.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM inbox"))
    return int(row[0])


def _chunks(body: bytes) -> Any:
    async def chunks() -> Any:
        for start in range(0, len(body), 16384):
            yield body[start : start + 16384]

    return chunks()


CAPPED = [
    # (name, channel, body, chunked, error): bodies refused before any signature check
    (
        "form over the SMS cap",
        "sms-main",
        b"Body=" + b"x" * MAX_WEBHOOK_BYTES,
        False,
        "body_too_large",
    ),
    (
        "chunked form over the SMS cap",
        "sms-main",
        b"Body=" + b"x" * MAX_WEBHOOK_BYTES,
        True,
        "body_too_large",
    ),
    (
        "form over the field cap",
        "sms-main",
        b"&".join([b"a=1"] * (MAX_WEBHOOK_FIELDS + 1)),
        False,
        "too_many_fields",
    ),
    (
        "JSON over the Viber cap",
        "viber-main",
        b'{"pad": "' + b"x" * 300_000 + b'"}',
        False,
        "body_too_large",
    ),
]


@pytest.mark.parametrize(
    ("name", "channel", "body", "chunked", "error"), CAPPED, ids=[c[0] for c in CAPPED]
)
async def test_webhooks_over_their_channels_caps_get_413_unparsed(
    gw: Any,
    verified: list[tuple[str, int]],
    name: str,
    channel: str,
    body: bytes,
    chunked: bool,
    error: str,
) -> None:
    content_type = FORM if channel == "sms-main" else "application/json"
    headers = {"Content-Type": content_type, "X-Twilio-Signature": "forged"}
    headers["X-Viber-Content-Signature"] = "forged"
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{gw.url}/webhooks/{channel}",
            content=_chunks(body) if chunked else body,
            headers=headers,
        )
    assert answer.status_code == 413
    assert answer.json()["error"] == error
    assert verified == []  # refused before the signature check read a byte of it
    assert await inbox_count(gw) == 0


async def test_an_oversized_body_is_refused_by_its_length_before_it_arrives(gw: Any) -> None:
    """413 as soon as the headers say too much, with the connection marked to close: what
    follows is discarded unread (aiohttp's lingering close), never parsed."""
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /webhooks/sms-main HTTP/1.1\r\nHost: gw\r\nContent-Type: "
        + FORM.encode()
        + b"\r\nX-Twilio-Signature: forged\r\nContent-Length: 1000000\r\n\r\nBody=x"
    )
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in head
    writer.close()
    assert '"reason": "body_too_large"' in gw.logs.getvalue()


async def test_a_large_genuine_mms_within_the_caps_is_stored(
    gw: Any, verified: list[tuple[str, int]]
) -> None:
    """The caps hold what Twilio sends: 10 media, a 1,600-character body of 3-byte characters,
    and the WhatsApp-through-Twilio extras."""
    media = {
        f"MediaUrl{i}": f"https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME{i:032x}"
        for i in range(10)
    }
    media |= {f"MediaContentType{i}": "image/jpeg" for i in range(10)}
    extras = {
        k: "x"
        for k in (
            "FromCity",
            "FromState",
            "FromZip",
            "FromCountry",
            "ToCity",
            "ToState",
            "ToZip",
            "ToCountry",
            "ProfileName",
            "WaId",
            "SmsStatus",
            "SmsMessageSid",
            "ApiVersion",
            "NumSegments",
            "MessagingServiceSid",
        )
    }
    params = sms_params(1, Body="語" * 1600, **media, **extras)
    params["NumMedia"] = "10"
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{gw.url}/webhooks/sms-main", content=urlencode(params), headers=sms_headers(params)
        )
    assert answer.status_code == 200, answer.text
    assert await inbox_count(gw) == 1
    assert [kind for kind, _ in verified] == ["sms"]


async def test_large_bodies_are_verified_off_the_event_loop(
    gw: Any, verified: list[tuple[str, int]]
) -> None:
    small = webhook("wamid.small", "hi")
    large = webhook("wamid.large", "x" * (VERIFY_INLINE_BYTES + 1))
    loop_thread = threading.get_ident()
    async with httpx.AsyncClient() as client:
        for body in (small, large):
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": hub_sign(body)}
            answer = await client.post(f"{gw.url}/webhooks/wa-main", content=body, headers=headers)
            assert answer.status_code == 200
    assert [thread == loop_thread for _, thread in verified] == [True, False]


async def _genuine_p99(gw: Any, count: int, start: int) -> float:
    latencies = []
    async with httpx.AsyncClient() as client:
        for i in range(start, start + count):
            params = sms_params(i)
            began = asyncio.get_running_loop().time()
            answer = await client.post(
                f"{gw.url}/webhooks/sms-main",
                content=urlencode(params),
                headers=sms_headers(params),
            )
            latencies.append(asyncio.get_running_loop().time() - began)
            assert answer.status_code == 200
    return statistics.quantiles(latencies, n=100)[98]


def _refused(gw: Any) -> int:
    return int(gw.logs.getvalue().count('"reason": "body_too_large"'))


async def test_a_flood_of_forged_1mb_forms_leaves_genuine_webhooks_fast(gw: Any) -> None:
    """20 forged 1 MB forms a second (the issue saw one or two stall every channel) from
    another process: genuine webhooks' p99 stays within a few times its value without the
    flood (bench/flood.py measures the same with the gateway on its own). The flood is
    stopped when the measurement ends; its own bound (120 s) only ends it should the test
    die. Bounded to 15 s, it ended first on a loaded machine, where 300 webhooks take longer."""
    await _genuine_p99(gw, 30, 0)  # warm up
    alone = await _genuine_p99(gw, 150, 1000)
    flood = [
        sys.executable,
        str(ROOT / "bench" / "flood.py"),
        "flood",
        f"{gw.url}/webhooks/sms-main",
    ]
    flooder = await asyncio.create_subprocess_exec(
        *flood, "--rate", "20", "--seconds", "120", "--connections", "4"
    )
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            while _refused(gw) < 5:  # the flood has started
                await asyncio.sleep(0.05)
        before = _refused(gw)
        flooded = await _genuine_p99(gw, 300, 100_000)
        assert flooder.returncode is None, "the flood ended before the measurement did"
        assert _refused(gw) - before >= 10  # it went on all along
    finally:
        flooder.terminate()
        await flooder.wait()
    # A floor under the baseline: a few ms on a loaded machine say nothing about the flood.
    assert flooded < 5 * max(alone, 0.01), (alone, flooded)
    assert await inbox_count(gw) == 30 + 150 + 300
