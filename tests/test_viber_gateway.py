"""Viber through a running gateway: signatures at ingress, two bots side by side, the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.viber import signature
from gateway.cli import main
from gateway.simulator.viber import ViberSimulator

from .conftest import assert_no_secrets, config_from, inbox_settled
from .viber_support import (
    OTHER_TOKEN,
    TOKEN,
    fixture,
    inbox_rows,
    post_callback,
    viber_channel,
    viber_config,
)

BODY = fixture("text.json")


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    return await start_gateway(config_from(viber_config(tmp_path)))


SIGNATURES = {
    "missing": (None, None, 401, "missing_signature"),
    "empty": (TOKEN, "", 401, "missing_signature"),
    "forged": (OTHER_TOKEN, None, 403, "invalid_signature"),
    "over other bytes": (TOKEN, signature(TOKEN, BODY + b" "), 403, "invalid_signature"),
}


@pytest.mark.parametrize(("token", "sig", "status", "code"), SIGNATURES.values(), ids=SIGNATURES)
async def test_bad_signatures_are_rejected_and_nothing_is_stored(
    gw: Any, token: str | None, sig: str | None, status: int, code: str
) -> None:
    response = await post_callback(f"{gw.url}/webhooks/vb-main", BODY, token, sig)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert await inbox_rows(gw) == []
    assert_no_secrets(gw.logs.getvalue(), gw.secrets())


async def test_a_signed_callback_is_stored_once_under_event_and_token(gw: Any) -> None:
    for _ in range(3):  # Viber retries until it gets a 200
        response = await post_callback(f"{gw.url}/webhooks/vb-main", BODY)
        assert response.status_code == 200
    await inbox_settled(gw)
    assert await inbox_rows(gw) == [("message:5741311803571721087", "done")]
    row = await gw.store.db.run(lambda tx: tx.one("SELECT external_id, type FROM events"))
    assert tuple(row) == ("5741311803571721087", "message")


async def test_the_webhook_check_is_answered_200_and_yields_no_event(gw: Any) -> None:
    response = await post_callback(f"{gw.url}/webhooks/vb-main", fixture("webhook.json"))
    assert response.status_code == 200
    await inbox_settled(gw)
    assert await inbox_rows(gw) == [("webhook:4912661846655238149", "done")]
    count = await gw.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM events"))
    assert count[0] == 0


async def test_a_float_token_is_refused_at_ingress(gw: Any) -> None:
    response = await post_callback(f"{gw.url}/webhooks/vb-main", fixture("token_float.json"))
    assert response.status_code == 400 and response.json()["error"] == "malformed_payload"
    assert await inbox_rows(gw) == []


async def test_two_bots_with_different_tokens_reject_each_others_callbacks(
    tmp_path: Path, start_gateway: Any
) -> None:
    data = viber_config(tmp_path, viber_channel("vb-a", TOKEN), viber_channel("vb-b", OTHER_TOKEN))
    gw = await start_gateway(config_from(data))
    for_a = await post_callback(f"{gw.url}/webhooks/vb-b", BODY, TOKEN)
    for_b = await post_callback(f"{gw.url}/webhooks/vb-a", BODY, OTHER_TOKEN)
    assert (for_a.status_code, for_b.status_code) == (403, 403)
    assert await inbox_rows(gw) == []
    assert (await post_callback(f"{gw.url}/webhooks/vb-a", BODY, TOKEN)).status_code == 200
    assert (await post_callback(f"{gw.url}/webhooks/vb-b", BODY, OTHER_TOKEN)).status_code == 200
    channels = await gw.store.db.run(
        lambda tx: tx.all("SELECT channel_id FROM inbox ORDER BY channel_id")
    )
    assert [c[0] for c in channels] == ["vb-a", "vb-b"]
    assert_no_secrets(gw.logs.getvalue(), gw.secrets())


def test_normalize_keeps_every_digit_of_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.json"
    raw.write_bytes(BODY)
    assert main(["normalize", "--channel", "viber", str(raw)]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    assert '"external_id":"5741311803571721087"' in line
    event = json.loads(line)
    assert event["channel"] == {"id": "viber", "type": "viber"}
    assert event["message"]["content"]["text"] == "a message to the service"
    assert event["sender"] == {"id": "01234567890A=", "name": "John McClane"}


def test_normalize_a_webhook_check_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.json"
    raw.write_bytes(fixture("webhook.json"))
    assert main(["normalize", "--channel", "viber", str(raw)]) == 0
    assert capsys.readouterr().out == ""


def test_normalize_unreadable_callback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw.json"
    raw.write_bytes(fixture("token_float.json"))
    assert main(["normalize", "--channel", "viber", str(raw)]) == 1
    assert "is not an integer" in capsys.readouterr().err


@pytest.fixture
async def simulator() -> AsyncIterator[ViberSimulator]:
    sim = ViberSimulator(auth_token=TOKEN)
    await sim.start()
    yield sim
    await sim.stop()


def write_config(tmp_path: Path, public_url: str, channel: dict[str, Any]) -> Path:
    path = tmp_path / "register.yaml"
    data = viber_config(tmp_path, channel, public_url=public_url)
    data["storage"]["path"] = str(tmp_path / "cli.db")
    path.write_text(yaml.safe_dump(data))
    return path


async def test_channels_register_sets_the_webhook_through_viber_s_check(
    tmp_path: Path,
    start_gateway: Any,
    simulator: ViberSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    channel = viber_channel(base_url=simulator.base_url)
    gw = await start_gateway(config_from(viber_config(tmp_path, channel)))
    path = write_config(tmp_path, gw.url, channel)

    code = await asyncio.to_thread(main, ["channels", "register", "vb-main", "--config", str(path)])

    out = capsys.readouterr()
    assert code == 0, out.err
    url = f"{gw.url}/webhooks/vb-main"
    assert out.out.strip() == (
        f"vb-main: webhook set to {url} (ok, event types: delivered, seen, failed,"
        " subscribed, unsubscribed, conversation_started)"
    )
    assert TOKEN not in out.out + out.err
    [request] = simulator.requests
    assert request.path == "/pa/set_webhook" and request.headers["X-Viber-Auth-Token"] == TOKEN
    assert request.json()["url"] == url and request.json()["send_name"] is True
    assert simulator.webhook_url == url
    # Viber's check reached the running gateway, which verified and kept it.
    await inbox_settled(gw)
    [(key, status)] = await inbox_rows(gw)
    assert key.startswith("webhook:") and status == "done"
    assert int(key.removeprefix("webhook:")) > 2**53


async def test_channels_register_fails_when_the_gateway_refuses_the_check(
    tmp_path: Path,
    start_gateway: Any,
    simulator: ViberSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The running gateway has another bot's token: it answers Viber's check with 403.
    wrong = viber_channel(token=OTHER_TOKEN, base_url=simulator.base_url)
    gw = await start_gateway(config_from(viber_config(tmp_path, wrong)))
    path = write_config(tmp_path, gw.url, viber_channel(base_url=simulator.base_url))

    code = await asyncio.to_thread(main, ["channels", "register", "vb-main", "--config", str(path)])

    assert code == 1
    err = capsys.readouterr().err
    assert "viber refused the webhook" in err and "invalidUrl" in err and "403" in err
    assert simulator.webhook_url is None
    assert await inbox_rows(gw) == []
