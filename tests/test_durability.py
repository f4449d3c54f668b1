"""Nothing lost: duplicates stored once, a killed gateway forwards everything, a down backend catches up."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.pipeline.delivery import WebhookDelivery
from gateway.simulator.backend import BackendRecorder

from .conftest import (
    STARTUP_SECONDS,
    base_config,
    config_from,
    hub_sign,
    webhook,
    with_backend,
)


async def post_all(client: httpx.AsyncClient, url: str, bodies: list[bytes]) -> list[int]:
    async def one(body: bytes) -> int:
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": hub_sign(body)}
        return (await client.post(url, content=body, headers=headers)).status_code

    return list(await asyncio.gather(*(one(b) for b in bodies)))


def message_ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["external_id"] for e in events if e["type"] == "message"]


async def test_same_webhook_twenty_times_is_forwarded_once(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder
) -> None:
    gw = await start_gateway(config_from(with_backend(base_config(tmp_path), backend)))
    body = webhook("wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA")
    async with httpx.AsyncClient() as client:
        statuses = await post_all(client, f"{gw.url}/webhooks/wa-main", [body] * 20)
    assert statuses == [200] * 20
    await backend.wait_for(lambda ev: len(message_ids(ev)) >= 1)
    await asyncio.sleep(0.5)  # room for a wrong second delivery to show up
    assert len(message_ids(backend.events)) == 1
    row = await gw.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM inbox"))
    assert row[0] == 1


async def test_backend_that_was_down_receives_everything(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder
) -> None:
    backend.available = False
    gw = await start_gateway(config_from(with_backend(base_config(tmp_path), backend)))
    bodies = [webhook(f"wamid.down{i}", f"message {i}") for i in range(5)]
    async with httpx.AsyncClient() as client:
        assert await post_all(client, f"{gw.url}/webhooks/wa-main", bodies) == [200] * 5

    async def retried() -> bool:
        row = await gw.store.db.run(
            lambda tx: tx.one("SELECT MAX(attempts) FROM outbox WHERE kind = 'webhook'")
        )
        return bool(row[0] and row[0] >= 2)

    async with asyncio.timeout(10):
        while not await retried():
            await asyncio.sleep(0.05)
    assert backend.events == []
    backend.available = True
    await backend.wait_for(lambda ev: len(message_ids(ev)) >= 5)
    assert sorted(message_ids(backend.events)) == [f"wamid.down{i}" for i in range(5)]


async def test_a_backlog_after_an_outage_reaches_the_backend_in_order(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder, monkeypatch: Any
) -> None:
    """However many claims a backlog takes, it arrives in the order its events were made: the
    events that failed keep their place in line, ahead of those queued while the backend was
    down."""
    monkeypatch.setattr(WebhookDelivery, "claim_limit", 3)
    backend.available = False
    gw = await start_gateway(config_from(with_backend(base_config(tmp_path), backend)))
    expected = [f"wamid.order{i:02d}" for i in range(10)]
    async with httpx.AsyncClient() as client:
        for n, external_id in enumerate(expected):  # one by one: the inbox keeps their order
            assert await post_all(
                client, f"{gw.url}/webhooks/wa-main", [webhook(external_id, f"step {n}")]
            ) == [200]

    async def failed_twice_with_all_queued() -> bool:
        row = await gw.store.db.run(
            lambda tx: tx.one("SELECT MAX(attempts), COUNT(*) FROM outbox WHERE kind = 'webhook'")
        )
        return bool(row[0] and row[0] >= 2 and row[1] == len(expected))

    async with asyncio.timeout(10):
        while not await failed_twice_with_all_queued():
            await asyncio.sleep(0.02)
    backend.available = True
    await backend.wait_for(lambda ev: len(message_ids(ev)) >= len(expected))
    assert message_ids(backend.events) == expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_process(
    config_path: Path, port: int, *options: str, stderr: int = asyncio.subprocess.DEVNULL
) -> asyncio.subprocess.Process:
    """`gateway serve` in a process of its own, once it answers /healthz."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(config_path),
        "--port",
        str(port),
        *options,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    # Starting takes a second or two, many more on a loaded machine (imports, migrations):
    # a generous limit, and a process that exits (its port taken, say) fails at once. One that
    # never answered is killed: left running, it outlived the test run.
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(STARTUP_SECONDS):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"gateway serve exited ({process.returncode}) on start")
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        return process
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


async def test_sigkill_after_acknowledging_loses_nothing(
    tmp_path: Path, backend: BackendRecorder
) -> None:
    data = with_backend(base_config(tmp_path), backend)
    data["logging"] = {"level": "warning"}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    port = free_port()
    bodies = [webhook(f"wamid.kill{i:03d}", f"burst {i}") for i in range(60)]

    backend.available = False  # nothing may leave before the kill: recovery must do it all
    process = await start_process(config_path, port)
    try:
        async with httpx.AsyncClient() as client:
            statuses = await post_all(client, f"http://127.0.0.1:{port}/webhooks/wa-main", bodies)
    finally:
        process.send_signal(signal.SIGKILL)  # right after the last acknowledgement
        await process.wait()
    assert statuses == [200] * 60
    assert backend.events == []
    backend.available = True

    process = await start_process(config_path, port)
    try:
        await backend.wait_for(lambda ev: len(set(message_ids(ev))) == 60, timeout=20)
    finally:
        process.terminate()
        await process.wait()
    assert set(message_ids(backend.events)) == {f"wamid.kill{i:03d}" for i in range(60)}
