"""Outbound HTTP to providers: a whole exchange has a deadline, whatever its pace."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from adapters.base import ProviderRequest, SendError
from gateway import transport
from gateway.app import build_adapters

from .conftest import base_config, config_from
from .test_lanes import trickle


async def test_an_answer_that_trickles_in_is_cut_at_the_send_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx's timeouts bound each read: a byte every 100 ms would have held the send, and its
    channel's lane, for ever."""

    app = web.Application()
    app.router.add_post("/{tail:.*}", trickle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    data = base_config(tmp_path)
    data["channels"][0]["api_base_url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
    adapter = build_adapters(config_from(data))["wa-main"]
    monkeypatch.setattr(transport, "SEND_DEADLINE_SECONDS", 0.5)
    request = ProviderRequest("POST", "/v21.0/106540352242922/messages", json={"to": "1"})
    try:
        async with httpx.AsyncClient() as client:
            started = time.monotonic()
            with pytest.raises(SendError) as refused:
                await transport.Transport(client).send(adapter, request)
        assert 0.5 <= time.monotonic() - started < 3
        assert (refused.value.category, refused.value.code) == ("retry", "timeout")
    finally:
        await runner.cleanup()
