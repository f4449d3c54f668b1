"""The console's pages and APIs through HTTP: bad input answered with the field named,
dead letters discarded, the charts drawn, the live socket refusing what a role may not see."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.cli import main
from gateway.simulator.backend import BackendRecorder

from .conftest import base_config, config_from
from .console_support import AGENT, OPERATOR, console_gateway, logged_in
from .test_everywhere import sims  # noqa: F401  (the simulators fixture)
from .test_store_contract_console import _dead


@pytest.fixture
async def gw(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> Any:
    return await console_gateway(tmp_path, start_gateway, sims, backend)


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/console/api/preview", {"content": {"type": "carousel", "items": []}}, 422, "content.items"),
        ("/console/api/preview", {"content": {"type": "nope"}}, 422, "content"),
        ("/console/api/send", {"channel": "tg-main", "to": "1", "content": {"type": "text", "text": "x"}}, 422, "channel"),
        ("/console/api/send", {"channel": "wa-main", "content": {"type": "text", "text": "x"}}, 422, "to"),
        ("/console/api/send", {"channel": "wa-main", "to": "15551234567", "content": {"type": "text"}}, 422, "content.text"),
        ("/console/api/send", [1, 2], 422, "body"),
    ],
)  # fmt: skip
async def test_bad_input_names_its_field(
    gw: Any, path: str, body: Any, status: int, field: str
) -> None:
    operator, token = await logged_in(gw.url, OPERATOR)
    async with aclosing(operator):
        answer = await operator.post(path, json=body, headers={"X-CSRF-Token": token})
    assert answer.status_code == status, answer.text
    assert field in [p["field"] for p in answer.json()["problems"]], answer.text


async def test_malformed_json_is_400(gw: Any) -> None:
    operator, token = await logged_in(gw.url, OPERATOR)
    async with aclosing(operator):
        answer = await operator.post(
            "/console/api/preview", content=b"{", headers={"X-CSRF-Token": token}
        )
    assert answer.status_code == 400 and answer.json()["problems"][0]["field"] == "body"


async def test_a_dead_letter_is_discarded_from_the_trouble_page(gw: Any) -> None:
    row = await _dead(gw.store, "msg_console_1")
    operator, token = await logged_in(gw.url, OPERATOR)
    async with aclosing(operator):
        page = await operator.get("/console/trouble")
        assert f'data-row="{row}"' in page.text and "HTTP 503" in page.text
        gone = await operator.post(f"/console/trouble/dead/{row}/discard", data={"csrf": token})
        assert gone.status_code == 303
        again = await operator.post(f"/console/trouble/dead/{row}/discard", data={"csrf": token})
        assert again.status_code == 404
        bad = await operator.post("/console/trouble/dead/x1/discard", data={"csrf": token})
        assert bad.status_code == 400
        assert "No dead-lettered deliveries" in (await operator.get("/console/trouble")).text


async def test_the_charts_page_draws_a_chart_per_channel_and_series(gw: Any) -> None:
    operator, _token = await logged_in(gw.url, OPERATOR)
    async with aclosing(operator):
        page = await operator.get("/console/charts")
    assert page.status_code == 200
    assert page.text.count("<svg") == 1 + 5 * 3  # the backlog, then 3 series of 5 channels


async def test_the_live_socket_refuses_what_the_role_may_not_see(gw: Any) -> None:
    agent, _token = await logged_in(gw.url, AGENT)
    cookie = agent.cookies.get("gateway_console")
    await agent.aclose()
    ws_url = gw.url.replace("http", "ws") + "/console/live"
    session = aiohttp.ClientSession(cookies={"gateway_console": cookie})
    async with session, session.ws_connect(ws_url) as socket:
        await socket.send_json({"watch": "channels"})
        assert (await socket.receive_json(timeout=5))["error"] == "unknown or forbidden watch"
        await socket.send_json({"watch": "conversations"})
        update = await socket.receive_json(timeout=5)
        assert update["watch"] == "conversations" and "conversation-list" in update["html"]
    async with aiohttp.ClientSession() as anonymous:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await anonymous.ws_connect(ws_url)


async def test_the_cli_discards_what_the_console_does(
    tmp_path: Path, start_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_config(tmp_path)
    gw = await start_gateway(config_from(data))
    row = await gw.store.append_inbox("wa-main", "k", "u", "{}", b"not json", 0.0)
    await gw.store.fail_inbox(row, "malformed JSON", 0.0)
    dead = await _dead(gw.store, "msg_cli_1")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    command = ["discard", "--config", str(config_path)]
    assert await asyncio.to_thread(main, command) == 2
    assert (
        await asyncio.to_thread(main, [*command, "--id", str(row), "--dead-letter", str(dead)]) == 0
    )
    assert capsys.readouterr().out.endswith(
        "1 failed inbox row(s) and 1 dead-lettered delivery(ies) discarded\n"
    )
    assert await gw.store.inbox_rows("failed") == [] and await gw.store.dead_letters() == []


async def test_the_live_socket_closes_when_its_session_ends(gw: Any) -> None:
    agent, token = await logged_in(gw.url, AGENT)
    cookie = agent.cookies.get("gateway_console")
    session = aiohttp.ClientSession(cookies={"gateway_console": cookie})
    async with (
        session,
        session.ws_connect(gw.url.replace("http", "ws") + "/console/live") as socket,
    ):
        await socket.send_json({"watch": "conversations"})
        assert "html" in await socket.receive_json(timeout=5)
        assert (await agent.post("/console/logout", data={"csrf": token})).status_code == 303
        closing = await socket.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE
    await agent.aclose()
