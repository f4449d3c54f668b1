"""Captured webhooks replayed later: refused while their dedupe key is kept, which retention
keeps for the whole acceptance window, and refused by their own date past it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.line import signature
from gateway.simulator.sms import sign

from .conftest import base_config, config_from, inbox_settled

FIXTURES = Path(__file__).parent / "fixtures"
PUBLIC = "https://gateway.example.com"
DAY = 86400.0
LINE_SECRET = "replays-line-channel-secret-0123"
SMS_TOKEN = "replays-twilio-auth-token-0123456789"
CHANNELS = [
    {
        "id": "line-main",
        "type": "line",
        "api_base_url": "http://127.0.0.1:9",
        "channel_secret": LINE_SECRET,
        "channel_access_token": "replays-line-access-token",
    },
    {
        "id": "sms-main",
        "type": "sms",
        "api_base_url": "http://127.0.0.1:9",
        "account_sid": "AC" + "9d" * 16,
        "auth_token": SMS_TOKEN,
        "from_number": "+14155550199",
    },
]


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    """A day's acceptance window, and retention that would prune a webhook after ~9 s."""
    data = base_config(tmp_path, ingress={"acceptance_window_seconds": DAY}, channels=CHANNELS)
    data["storage"]["retention"] = {"days": 0.0001}
    return await start_gateway(config_from(data))


def line_request(dated: float, event_id: str = "01FZ74A0TDDPYRVKNK77XKC3ZR") -> dict[str, Any]:
    payload = json.loads((FIXTURES / "line" / "text.json").read_text())
    payload["events"][0]["timestamp"] = int(dated * 1000)
    payload["events"][0]["webhookEventId"] = event_id
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Line-Signature": signature(LINE_SECRET, body)}
    return {"url": "/webhooks/line-main", "content": body, "headers": headers}


def sms_request() -> dict[str, Any]:
    params = {
        "MessageSid": "SM" + "4f" * 16,
        "AccountSid": "AC" + "9d" * 16,
        "From": "+14155550100",
        "To": "+14155550199",
        "Body": "Is my order ready?",
        "NumMedia": "0",
    }
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(SMS_TOKEN, f"{PUBLIC}/webhooks/sms-main", params),
    }
    return {"url": "/webhooks/sms-main", "content": urlencode(params), "headers": headers}


async def post(gw: Any, request: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            gw.url + request["url"], content=request["content"], headers=request["headers"]
        )


async def count(gw: Any, table: str) -> int:
    row = await gw.store.db.run(lambda tx: tx.one(f"SELECT COUNT(*) FROM {table}"))
    return int(row[0])


async def received_ago(gw: Any, seconds: float) -> None:
    """Every stored request, as if it had arrived `seconds` ago."""
    at = time.time() - seconds
    await gw.store.db.run(lambda tx: tx.execute("UPDATE inbox SET received_at = ?", (at,)))


@pytest.mark.parametrize(
    "make", [lambda: line_request(time.time()), sms_request], ids=["line", "twilio"]
)
async def test_a_replay_after_retention_would_have_pruned_it_is_still_a_duplicate(
    gw: Any, make: Any
) -> None:
    request = make()
    assert (await post(gw, request)).status_code == 200
    await inbox_settled(gw)
    stored_events = await count(gw, "events")
    assert stored_events >= 1
    await received_ago(gw, 3600)  # past retention.days, inside the acceptance window
    await gw.gateway.retention.prune()
    assert await count(gw, "inbox") == 1  # its dedupe key is kept

    assert (await post(gw, request)).status_code == 200
    await inbox_settled(gw)
    assert await count(gw, "inbox") == 1
    assert await count(gw, "events") == stored_events
    assert '"event": "webhook_duplicate"' in gw.logs.getvalue()


async def test_keys_older_than_the_acceptance_window_are_pruned(gw: Any) -> None:
    assert (await post(gw, sms_request())).status_code == 200
    await inbox_settled(gw)
    await received_ago(gw, DAY + 60)
    await gw.gateway.retention.prune()
    assert await count(gw, "inbox") == 0


async def test_a_line_webhook_dated_before_the_window_is_acknowledged_logged_and_not_stored(
    gw: Any,
) -> None:
    answer = await post(gw, line_request(time.time() - DAY - 60))
    assert answer.status_code == 200  # LINE stops redelivering; nothing else is done with it
    assert await count(gw, "inbox") == 0
    assert await count(gw, "events") == 0
    logged = [
        json.loads(line) for line in gw.logs.getvalue().splitlines() if "webhook_stale" in line
    ]
    assert len(logged) == 1
    assert logged[0]["channel"] == "line-main"
    assert logged[0]["reason"] == "older than ingress.acceptance_window_seconds"
    assert logged[0]["dedupe_key"] == "evt:01FZ74A0TDDPYRVKNK77XKC3ZR"
    assert DAY < logged[0]["age_seconds"] < DAY + 120


async def test_a_line_webhook_dated_inside_the_window_is_stored(gw: Any) -> None:
    """An event LINE redelivers hours later is no replay: it is stored and normalised."""
    answer = await post(gw, line_request(time.time() - DAY + 600))
    assert answer.status_code == 200
    await inbox_settled(gw)
    assert await count(gw, "inbox") == 1
    assert await count(gw, "events") == 1
