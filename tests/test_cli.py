"""The operator's tools: normalize a raw file, replay failed rows, print the schema, run the demo."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.cli import main
from gateway.simulator.backend import BackendRecorder

from .conftest import (
    STARTUP_SECONDS,
    base_config,
    config_from,
    inbox_settled,
    post_whatsapp,
    webhook,
    with_backend,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def test_normalize_prints_one_event_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.json"
    raw.write_bytes(webhook("wamid.cli1", "hello from the CLI"))
    assert main(["normalize", "--channel", "whatsapp", str(raw)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert (
        event["type"] == "message" and event["message"]["content"]["text"] == "hello from the CLI"
    )
    assert event["channel"] == {"id": "whatsapp", "type": "whatsapp"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["normalize", "--channel", "telegram", "x.json"], "unknown channel type 'telegram'"),
        (["normalize", "--channel", "whatsapp", "missing.json"], "missing.json: cannot read file"),
    ],
)
def test_normalize_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_normalize_unreadable_payload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw.json"
    raw.write_text('{"object": "page", "entry": []}')
    assert main(["normalize", "--channel", "whatsapp", str(raw)]) == 1
    assert "not a WhatsApp webhook" in capsys.readouterr().err


ODD_BODIES = {  # of the kinds tests/test_payload_fuzz.py generates
    "nested 2,000 levels": (
        b'{"object": "whatsapp_business_account", "entry": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        1,
        "malformed JSON: nested too deeply",
    ),
    "nested 100 levels": (
        b'{"object": "whatsapp_business_account", "entry": [' + b"[" * 99 + b"]" * 99 + b"]}",
        1,
        "malformed JSON: nested too deeply (over 64 levels)",
    ),
    "half an emoji in a text": ((FIXTURES / "whatsapp" / "cut_emoji.json").read_bytes(), 0, ""),
}


@pytest.mark.parametrize(("body", "code", "reason"), ODD_BODIES.values(), ids=ODD_BODIES.keys())
def test_normalize_prints_events_or_one_line_never_a_traceback(
    tmp_path: Path, body: bytes, code: int, reason: str
) -> None:
    """Run as an operator runs it, printing to a real pipe: an event that cannot be encoded
    as UTF-8 once failed only when printed."""
    raw = tmp_path / "raw.json"
    raw.write_bytes(body)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "normalize", "--channel", "whatsapp", str(raw)],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == code, done.stderr
    if code:
        assert done.stderr.decode() == f"{raw}: cannot parse as whatsapp: {reason}\n"
    else:
        assert done.stderr == b"" and "Thanks! \ufffd" in done.stdout.decode()


def test_normalize_names_the_field_of_an_odd_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator's tool says what the failed inbox row would: the field, not a traceback."""
    raw = tmp_path / "raw.json"
    raw.write_text(
        '{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field":'
        ' "messages", "value": {"metadata": "106540352242922"}}]}]}'
    )
    assert main(["normalize", "--channel", "whatsapp", str(raw)]) == 1
    assert capsys.readouterr().err == (
        f"{raw}: cannot parse as whatsapp: invalid payload: "
        "entry[0].changes[0].value.metadata: expected an object, got a string\n"
    )


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"EventBatch", "SendMessage", "TextContent", "CarouselContent", "FormContent"} <= set(
        schema["$defs"]
    )


async def test_unparseable_row_is_kept_failed_and_replayable(
    tmp_path: Path, start_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_config(tmp_path)
    gw = await start_gateway(config_from(data))
    # Valid JSON and a valid signature, but a message with no sender: stored, then fails to parse.
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messages": [
                                    {"id": "wamid.broken", "type": "text", "text": {"body": "x"}}
                                ]
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    response = await post_whatsapp(gw.url, body)
    assert response.status_code == 200
    await inbox_settled(gw)
    rows = await gw.store.inbox_rows("failed")
    assert len(rows) == 1 and "from" in (rows[0][2] or "")

    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    assert await _cli(["replay", "--config", str(config_path), "--list"]) == 0
    assert "entry[0].changes[0].value.messages[0].from: missing" in capsys.readouterr().out
    assert await _cli(["replay", "--config", str(config_path)]) == 0
    assert "1 failed inbox row(s) queued" in capsys.readouterr().out


async def _cli(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


# A line of the demo's telling what a participant's app received.
DELIVERED = re.compile(r"\[ *(WhatsApp|SMS|Messenger) -> (customer|courier|restaurant)\] ")


def test_demo_runs_a_round_trip_and_the_group_scene(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--once", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    steps = [
        "customer -> WhatsApp",
        "message from Alex",
        "POST /v1/messages",
        "Cloud API send",
        "status sent",
        "status delivered",
        "status read",
        "round trip complete",
        "restaurant -> Messenger",
        "POST /v1/users: Alex on WhatsApp",
        "POST /v1/users: Jasper on SMS",
        "POST /v1/users: Luigi's on Messenger",
        "POST /v1/conversations: Order #1234",
        "conversation.created",
        "[          courier -> SMS] stuck in traffic, 10 min late",
        "from Jasper (courier): 'stuck in traffic, 10 min late'",
        "a carousel of 3 desserts",
        "/close",
        "conversation.closed",
        "group scene complete",
    ]
    lines = result.stdout.splitlines()
    said = [next(i for i, line in enumerate(lines) if s in line) for s in steps]
    assert said == sorted(said), result.stdout  # printed in the order they happened
    assert list(tmp_path.iterdir()) == []  # its temporary store is gone with it

    # What each participant received on their channel: the courier's news attributed, then
    # the carousel in each channel's richest form; never the courier's own message back.
    wrote, posted = (
        said[steps.index("[          courier -> SMS] stuck in traffic, 10 min late")],
        said[steps.index("a carousel of 3 desserts")],
    )
    relayed = [line for line in lines[wrote:posted] if DELIVERED.match(line)]
    late = "'Jasper (courier): stuck in traffic, 10 min late'"
    assert len(relayed) == 2 and set(relayed) == {
        f"[ Messenger -> restaurant] {late}",
        f"[    WhatsApp -> customer] {late}",
    }
    carousel = [line for line in lines[posted:] if DELIVERED.match(line)]
    assert any("WhatsApp -> customer] media carousel" in line for line in carousel)
    assert any("Messenger -> restaurant] generic template, 3" in line for line in carousel)
    [sms] = [line for line in carousel if "SMS -> courier" in line]
    assert "MMS with 3 images" in sms and "2. Panna cotta" in sms


async def test_demo_prints_a_ready_curl_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "gateway", "demo", "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        # Its start: 30 s was not always enough on a loaded machine (an exit ends it at once).
        async with asyncio.timeout(STARTUP_SECONDS):
            while not lines or "Write as the customer" not in lines[-1]:
                lines.append((await demo.stdout.readline()).decode())
                assert lines[-1], "".join(lines)
        [curl] = [line.split("] ", 1)[1] for line in lines if "/v1/messages -H" in line]
        words = shlex.split(curl)
        assert words[:3] == ["curl", "-X", "POST"]
        headers = dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")
        body = words[words.index("-d") + 1]
        async with httpx.AsyncClient() as client:  # the printed command, as curl would send it
            answer = await client.post(words[3], content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        async with asyncio.timeout(60):
            while "courier is two minutes away" not in lines[-1]:
                lines.append((await demo.stdout.readline()).decode())
        assert "WhatsApp <- gateway" in lines[-1]
        assert list(tmp_path.iterdir())  # its store, while it runs
    finally:
        demo.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await demo.wait() == 0
    assert list(tmp_path.iterdir()) == []  # gone on SIGTERM too


PG_UNREACHABLE = "postgresql://gw:Sup3r-Secret-pw@127.0.0.1:1/gateway"


@pytest.mark.parametrize(
    "command",
    [["serve", "--port", "0"], ["replay", "--list"], ["prune"]],
    ids=["serve", "replay", "prune"],
)
def test_a_store_that_cannot_be_opened_is_one_clear_line(
    tmp_path: Path, command: list[str]
) -> None:
    data = base_config(tmp_path)
    data["storage"] = {"backend": "postgres", "dsn": PG_UNREACHABLE}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))

    done = subprocess.run(
        [sys.executable, "-m", "gateway", command[0], "--config", str(path), *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert f"{path}: storage: cannot open the store: OperationalError: connection" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "Sup3r-Secret-pw" not in done.stderr + done.stdout


def test_a_driver_quoting_the_password_is_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    def refuse(dsn: str, **_kwargs: Any) -> None:
        raise psycopg.OperationalError('password "Sup3r-Secret-pw" was refused')

    monkeypatch.setattr(psycopg, "connect", refuse)
    data = base_config(tmp_path)
    data["storage"] = {"backend": "postgres", "dsn": PG_UNREACHABLE}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))

    assert main(["prune", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert 'password "[redacted]" was refused' in err and "Sup3r" not in err


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path)))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"server: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "address already in use" in done.stderr and "Traceback" not in done.stderr


async def test_unknown_payloads_are_listed_and_replayable(
    tmp_path: Path, start_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_config(tmp_path)
    gw = await start_gateway(config_from(data))
    body = (Path(__file__).parent / "fixtures" / "whatsapp" / "unsupported.json").read_bytes()
    response = await post_whatsapp(gw.url, body)
    assert response.status_code == 200
    await inbox_settled(gw)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))

    assert await _cli(["replay", "--config", str(config_path), "--unsupported", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "\twa-main\t" in listed and "poll_creation" in listed
    assert "1 unsupported inbox row(s)" in listed
    assert await _cli(["replay", "--config", str(config_path), "--unsupported"]) == 0
    assert "1 unsupported inbox row(s) queued" in capsys.readouterr().out
    gw.gateway.normaliser.wake()
    await inbox_settled(gw)
    # Parsed again by the same adapter: still unknown, so nothing new reaches the backend.
    rows = await gw.store.db.run(lambda tx: tx.all("SELECT type FROM events"))
    assert [r[0] for r in rows] == ["unsupported"]


def test_a_reader_that_stops_early_is_no_error() -> None:
    """`gateway openapi | head`: the pipe closes under the writer."""
    done = subprocess.run(
        f"{sys.executable} -m gateway openapi | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == '{\n  "compo'
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_serve_freezes_startup_objects_and_runs_on_a_loop_that_measures_its_idle_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What startup built is frozen before serving, so a full collection under load walks
    only what requests create (gateway/cli.py: a 50 ms pause otherwise, every second or two).
    The loop counts its idle time, by which the normaliser paces itself (gateway/pipeline/cpu_pacing.py)."""
    import gc

    from aiohttp import web

    from gateway.pipeline.cpu_pacing import IdleSelector

    seen: dict[str, Any] = {}

    def run_app(app: web.Application, **kwargs: Any) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["selector"] = kwargs["loop"]._selector  # the loop's own, as asyncio keeps it
        kwargs["loop"].close()

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path)))
    monkeypatch.setattr(web, "run_app", run_app)
    try:
        assert main(["serve", "--config", str(path), "--port", "0"]) == 0
    finally:
        gc.unfreeze()
    assert seen["frozen"] > 10_000  # the modules, models and adapters startup made
    assert isinstance(seen["selector"], IdleSelector)


async def test_dead_letters_are_listed_and_queued_again_per_backend(
    tmp_path: Path,
    start_gateway: Any,
    backend: BackendRecorder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend.available = False
    data = with_backend(base_config(tmp_path), backend)
    data["delivery"]["dead_letter_after_seconds"] = 0.001  # the first failure is the last
    gw = await start_gateway(config_from(data))
    assert (await post_whatsapp(gw.url, webhook("wamid.DEAD1", "hello"))).status_code == 200
    async with asyncio.timeout(5):
        while not await gw.store.dead_letters():
            await asyncio.sleep(0.02)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    replay = ["replay", "--config", str(config_path), "--dead-letters"]

    assert await _cli([*replay, "--list"]) == 0
    [row, total] = capsys.readouterr().out.splitlines()
    assert row.split("\t")[1:2] + row.split("\t")[3:] == ["orders", "HTTP 503"]
    assert total == "1 dead-lettered delivery"
    assert await _cli([*replay, "--backend", "billing"]) == 0
    assert capsys.readouterr().out == "0 dead-lettered deliveries queued again\n"
    assert await _cli([*replay, "--channel", "wa-main"]) == 2
    assert "--dead-letters takes --backend and --list only" in capsys.readouterr().err

    backend.available = True
    assert await _cli([*replay, "--backend", "orders"]) == 0
    assert capsys.readouterr().out == "1 dead-lettered delivery queued again\n"
    gw.gateway.delivery.wake()
    await backend.wait_for(lambda events: len(events) == 1)
