"""`gateway simulate` + `gateway serve` with config.example.yaml, as its comments say to run
them, as two processes: a five-channel setup with no code written. Each channel's simulated
user writes (a webhook signed with the secret the environment holds, reaching the backend as an
event) and is answered through the API (the simulator receives the provider send)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.config import env_variables_of
from gateway.simulator.backend import BackendRecorder
from gateway.simulator.launch import INBOUND_EXAMPLE, sample_channels

from .conftest import STARTUP_SECONDS
from .test_durability import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
API_KEY = "example-api-key-0123456789"
BACKEND_SECRET = "example-backend-secret"


def example_environment(backend_url: str) -> dict[str, str]:
    """Every variable config.example.yaml reads without a default, set to some value, as its
    comments say; the backend's URL is this test's recorder."""
    text = EXAMPLE.read_text()
    names = {
        match.group(1)
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", line)
    }
    env = {name: f"value-of-{name.lower()}" for name in names}
    return {
        **env,
        "ORDERS_API_KEY": API_KEY,
        "ORDERS_WEBHOOK_SECRET": BACKEND_SECRET,
        "ORDERS_WEBHOOK_URL": backend_url,
    }


async def start(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
    )


async def read_until(stream: asyncio.StreamReader, marker: str) -> list[str]:
    lines: list[str] = []
    # A process's start: 30 s was not always enough on a loaded machine. An early exit ends
    # the wait at once (the assert below).
    async with asyncio.timeout(STARTUP_SECONDS):
        while marker not in (lines[-1] if lines else ""):
            line = await stream.readline()
            assert line, "\n".join(lines)  # the process ended before saying it
            lines.append(line.decode().rstrip("\n"))
    return lines


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            await process.wait()


async def test_simulate_and_serve_with_the_example_config_give_five_working_channels(
    tmp_path: Path,
) -> None:
    backend = BackendRecorder(BACKEND_SECRET)
    await backend.start()
    env = example_environment(backend.url)
    port = free_port()
    simulate = await start(
        "simulate",
        "--config",
        str(EXAMPLE),
        "--port",
        "0",
        "--gateway",
        f"http://127.0.0.1:{port}",
        env=env,
        cwd=tmp_path,
    )
    serve = None
    try:
        assert simulate.stdout is not None
        said = await read_until(simulate.stdout, "simulator(s) running")
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in said
            if line.startswith("export ")
        )
        assert set(exports) == {
            "WA_API_BASE_URL",
            "FB_API_BASE_URL",
            "TWILIO_API_BASE_URL",
            "LINE_API_BASE_URL",
            "VIBER_API_BASE_URL",
        }
        inbound = dict(
            re.findall(r"curl -X POST (\S+/_sim/inbound) -d '(.*)'$", "\n".join(said), re.M)
        )
        assert len(inbound) == 5
        serve = await start(
            "serve",
            "--config",
            str(EXAMPLE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env={**env, **exports},
            cwd=tmp_path,
        )
        assert serve.stderr is not None
        logged = await read_until(serve.stderr, '"listening"')
        assert json.loads(logged[-1])["url"] == f"http://127.0.0.1:{port}"

        async with httpx.AsyncClient(timeout=10) as client:
            for url, example in inbound.items():  # a user writes on each channel
                answer = await client.post(url, content=example)
                assert answer.status_code == 200, answer.text
            channels = {"wa-main", "fb-page", "sms-us", "line-jp", "viber-bot"}
            events = await backend.wait_for(
                lambda ev: {e["channel"]["id"] for e in ev if e["type"] == "message"} >= channels,
                timeout=30,
            )
            assert backend.rejected == 0
            senders = {
                e["channel"]["id"]: e["sender"]["id"] for e in events if e["type"] == "message"
            }
            for channel, sender in senders.items():  # and is answered through the API
                queued = await client.post(
                    f"http://127.0.0.1:{port}/v1/messages",
                    json={
                        "to": {"channel": channel, "id": sender},
                        "content": {"type": "text", "text": f"Hello on {channel}"},
                    },
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
                assert queued.status_code == 202, queued.text
            for url in inbound:
                sent_url = url.replace("/_sim/inbound", "/_sim/sent")
                async with asyncio.timeout(30):
                    while not (await client.get(sent_url)).json():
                        await asyncio.sleep(0.1)
            await backend.wait_for(
                lambda ev: {e["channel"]["id"] for e in ev if e["type"] == "status"} >= channels,
                timeout=30,
            )  # delivery statuses, signed and posted back by each simulator
    finally:
        await stop(simulate)
        if serve is not None:
            await stop(serve)
        await backend.stop()


def test_simulate_refuses_an_unknown_channel_with_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "--channels", "whatsap"]) == 2
    assert "no channel 'whatsap'; did you mean 'whatsapp'?" in capsys.readouterr().err


def test_every_channel_type_has_a_sample_and_an_inbound_example() -> None:
    assert {c.type for c in sample_channels()} == set(INBOUND_EXAMPLE)
    assert env_variables_of("${A:-x} and ${B}") == ["A", "B"]
