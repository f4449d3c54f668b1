"""Config reload without a restart (gateway/reload.py): channels, backends and API keys change
under traffic; nothing acknowledged is dropped, nothing is sent twice, a broken config is
refused and the running one kept."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.whatsapp import WhatsAppSimulator

from .conftest import (
    API_KEY,
    BACKEND_SECRET,
    base_config,
    config_from,
    eventually,
    with_backend,
)
from .test_durability import free_port, start_process

AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Three WhatsApp numbers, each its own channel, app and token.
NUMBERS = {
    "wa-a": "106540352242901",
    "wa-b": "106540352242902",
    "wa-c": "106540352242903",
}


def channel(channel_id: str, sim: WhatsAppSimulator) -> dict[str, Any]:
    return {
        "id": channel_id,
        "type": "whatsapp",
        "api_base_url": sim.base_url,
        "phone_number_id": sim.phone_number_id,
        "access_token": sim.access_token,
        "app_secret": sim.app_secret,
        "verify_token": f"verify-{channel_id}",
    }


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, WhatsAppSimulator]]:
    made = {
        channel_id: WhatsAppSimulator(
            phone_number_id=number,
            display_phone_number="1555078" + number[-4:],
            access_token=f"token-{channel_id}-0123456789",
            app_secret=f"secret-{channel_id}-0123456789",
            auto_statuses=(),
        )
        for channel_id, number in NUMBERS.items()
    }
    for sim in made.values():
        await sim.start()
    yield made
    for sim in made.values():
        await sim.stop()


def config_with(
    tmp_path: Path,
    backend: BackendRecorder,
    sims: dict[str, WhatsAppSimulator],
    channel_ids: list[str],
) -> dict[str, Any]:
    data = with_backend(base_config(tmp_path), backend)
    data["channels"] = [channel(i, sims[i]) for i in channel_ids]
    data["logging"] = {"level": "info"}
    return data


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data))


def inbound(sim: WhatsAppSimulator, wamid: str) -> dict[str, Any]:
    return sim.webhook_payload(
        contacts=[{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
        messages=[
            {
                "from": "16505551234",
                "id": wamid,
                "timestamp": "1749416383",
                "type": "text",
                "text": {"body": wamid},
            }
        ],
    )


class Traffic:
    """Webhooks and API messages to every channel, as fast as they are answered, each
    answer recorded: what was acknowledged must arrive once, what was refused must have been
    refused for a channel not configured at that moment."""

    def __init__(self, url: str, sims: dict[str, WhatsAppSimulator]) -> None:
        self.url, self.sims = url, sims
        self.webhooks: dict[str, list[tuple[str, int]]] = {i: [] for i in sims}
        self.messages: dict[str, list[tuple[str, int]]] = {i: [] for i in sims}
        self.other: list[tuple[str, int, str]] = []
        self.running = True
        self._ids = itertools.count()

    async def run(self, channel_id: str) -> None:
        sim = self.sims[channel_id]
        async with httpx.AsyncClient(headers=AUTH) as client:
            while self.running:
                n = next(self._ids)
                wamid = f"wamid.{channel_id}.{n:05d}"
                sim.webhook_url = f"{self.url}/webhooks/{channel_id}"
                status = await sim.post_webhook(inbound(sim, wamid))
                self.webhooks[channel_id].append((wamid, status))
                text = f"out-{channel_id}-{n:05d}"
                answer = await client.post(
                    f"{self.url}/v1/messages",
                    json={
                        "to": {"channel": channel_id, "id": "16505551234"},
                        "content": template(text),  # outside the 24-hour window too
                    },
                )
                self.messages[channel_id].append((text, answer.status_code))
                if answer.status_code not in (202, 422):
                    self.other.append((channel_id, answer.status_code, answer.text))
                await asyncio.sleep(0.005)

    async def answered(self, channel_id: str, webhook: int, message: int | None = None) -> None:
        """Wait until `channel_id` has, from now on, a webhook answered `webhook` (and an API
        message answered `message`): what this phase of the config shows, however slow the
        machine makes the traffic. A fixed time could pass before the first answer."""
        hooks, messages = len(self.webhooks[channel_id]), len(self.messages[channel_id])
        await eventually(
            lambda: (
                any(s == webhook for _w, s in self.webhooks[channel_id][hooks:])
                and (
                    message is None
                    or any(s == message for _t, s in self.messages[channel_id][messages:])
                )
            )
        )

    def acknowledged(self, channel_id: str) -> list[str]:
        return [w for w, status in self.webhooks[channel_id] if status == 200]

    def accepted(self, channel_id: str) -> list[str]:
        return [t for t, status in self.messages[channel_id] if status == 202]


def template(text: str) -> dict[str, Any]:
    parameters = [{"type": "text", "text": text}]
    return {
        "type": "template",
        "template": {
            "name": "order_update",
            "language": "en_US",
            "components": [{"type": "body", "parameters": parameters}],
        },
    }


def sent_texts(sim: WhatsAppSimulator) -> Counter[str]:
    return Counter(
        s["body"]["template"]["components"][0]["parameters"][0]["text"] for s in sim.sent
    )


async def test_reload_under_traffic_drops_nothing_and_sends_nothing_twice(
    tmp_path: Path,
    start_gateway: Any,
    backend: BackendRecorder,
    sims: dict[str, WhatsAppSimulator],
) -> None:
    path = tmp_path / "gateway.yaml"
    first = config_with(tmp_path, backend, sims, ["wa-a", "wa-b"])
    write(path, first)
    gw = await start_gateway(config_from(first))
    traffic = Traffic(gw.url, sims)
    runs = [asyncio.create_task(traffic.run(i)) for i in sims]
    try:
        for configured in ("wa-a", "wa-b"):
            await traffic.answered(configured, 200, 202)
        await traffic.answered("wa-c", 404)  # not configured yet
        # wa-c added, wa-b removed.
        write(path, config_with(tmp_path, backend, sims, ["wa-a", "wa-c"]))
        assert await gw.gateway.reload_file(path)
        await traffic.answered("wa-c", 200, 202)
        await traffic.answered("wa-b", 404)
        broken = config_with(tmp_path, backend, sims, ["wa-a"])
        broken["channels"][0]["type"] = "whatsap"
        write(path, broken)
        assert not await gw.gateway.reload_file(path)
        await traffic.answered("wa-c", 200, 202)  # still on file
        # wa-b back, with what it had queued.
        write(path, config_with(tmp_path, backend, sims, ["wa-a", "wa-b", "wa-c"]))
        assert await gw.gateway.reload_file(path)
        await traffic.answered("wa-b", 200, 202)
    finally:
        traffic.running = False
        await asyncio.gather(*runs)

    assert traffic.other == []
    for channel_id in sims:
        statuses = {s for _w, s in traffic.webhooks[channel_id]} | {
            s for _t, s in traffic.messages[channel_id]
        }
        assert statuses <= {200, 202, 404, 422}, (channel_id, statuses)
    # The broken config changed nothing: wa-c kept being acknowledged while it was on file.
    assert set(gw.gateway.adapters) == {"wa-a", "wa-b", "wa-c"}
    log = gw.logs.getvalue()
    assert '"reload_refused"' in log and "whatsap" in log
    # Refused while not configured: a removed channel's webhooks are 404 unknown_channel.
    assert any(s == 404 for _w, s in traffic.webhooks["wa-b"])
    assert any(s == 404 for _w, s in traffic.webhooks["wa-c"])  # before it was added

    acknowledged = {w for i in sims for w in traffic.acknowledged(i)}
    accepted = {i: traffic.accepted(i) for i in sims}
    assert all(accepted.values()) and acknowledged

    def arrived(events: list[dict[str, Any]]) -> bool:
        seen = {e["external_id"] for e in events if e["type"] == "message"}
        return acknowledged <= seen

    await backend.wait_for(arrived, timeout=30)
    async with asyncio.timeout(30):
        while any(sum(sent_texts(sims[i]).values()) < len(accepted[i]) for i in sims):
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # time for a second copy, were one coming

    events = Counter(e["external_id"] for e in backend.events if e["type"] == "message")
    assert set(events) == acknowledged
    assert max(events.values()) == 1, "an event delivered twice"
    for channel_id in sims:
        sent = sent_texts(sims[channel_id])
        assert sorted(sent) == sorted(accepted[channel_id]), channel_id
        assert max(sent.values()) == 1, f"a message sent twice on {channel_id}"


async def test_a_removed_channel_keeps_its_queue_until_it_comes_back(
    tmp_path: Path,
    start_gateway: Any,
    backend: BackendRecorder,
    sims: dict[str, WhatsAppSimulator],
) -> None:
    path = tmp_path / "gateway.yaml"
    both = config_with(tmp_path, backend, sims, ["wa-a", "wa-b"])
    gw = await start_gateway(config_from(both))
    # Throttled for 3 s: the message waits in the outbox, due again after the removal (which
    # must come first: a second, as it was, is not long on a loaded machine).
    sims["wa-b"].fail_next(130429, http_status=429, retry_after=3.0)
    async with httpx.AsyncClient(headers=AUTH) as client:
        answer = await client.post(
            f"{gw.url}/v1/messages",
            json={
                "to": {"channel": "wa-b", "id": "16505551234"},
                "content": template("kept for later"),
            },
        )
        assert answer.status_code == 202
        message_id = answer.json()["id"]

        async def throttled() -> tuple[int, float]:
            return await gw.gateway.store.db.run(
                lambda tx: tx.one(
                    "SELECT attempts, next_attempt_at FROM outbox WHERE ref = ?", (message_id,)
                )
            )

        async with asyncio.timeout(30):
            while (await throttled())[0] == 0:  # the throttle recorded, its retry time set
                await asyncio.sleep(0.02)
        write(path, config_with(tmp_path, backend, sims, ["wa-a"]))
        assert await gw.gateway.reload_file(path)
        retry_at = (await throttled())[1]
        assert retry_at > time.time()  # removed before its retry was due
        # Past its retry time: no lane claims it, nothing fails it.
        await asyncio.sleep(retry_at - time.time() + 1.0)
        view = (await client.get(f"{gw.url}/v1/messages/{message_id}")).json()
        assert view["state"] == "queued"
        assert sims["wa-b"].sent == []
        refused = await client.post(
            f"{gw.url}/v1/messages",
            json={
                "to": {"channel": "wa-b", "id": "16505551234"},
                "content": template("to a removed channel"),
            },
        )
        assert refused.status_code == 422 and "to.channel" in refused.text
        sims["wa-b"].webhook_url = f"{gw.url}/webhooks/wa-b"
        assert await sims["wa-b"].post_webhook(inbound(sims["wa-b"], "wamid.gone")) == 404

        write(path, both)
        assert await gw.gateway.reload_file(path)
        async with asyncio.timeout(10):
            while not sims["wa-b"].sent:
                await asyncio.sleep(0.05)
        assert sent_texts(sims["wa-b"]) == Counter({"kept for later": 1})


async def test_api_keys_and_backends_reload(
    tmp_path: Path,
    start_gateway: Any,
    backend: BackendRecorder,
    sims: dict[str, WhatsAppSimulator],
) -> None:
    path = tmp_path / "gateway.yaml"
    data = config_with(tmp_path, backend, sims, ["wa-a"])
    gw = await start_gateway(config_from(data))
    second = BackendRecorder(BACKEND_SECRET)
    await second.start()
    try:
        new_key = "reloaded-key-0123456789"
        data["api_keys"] = [{"name": "ops", "key": new_key}]
        data["backends"] = [{"id": "second", "url": second.url, "secret": BACKEND_SECRET}]
        write(path, data)
        assert await gw.gateway.reload_file(path)
        async with httpx.AsyncClient() as client:
            old = await client.get(f"{gw.url}/v1/messages/msg_x", headers=AUTH)
            new = await client.get(
                f"{gw.url}/v1/messages/msg_x", headers={"Authorization": f"Bearer {new_key}"}
            )
        assert old.status_code == 401 and new.status_code == 404
        sims["wa-a"].webhook_url = f"{gw.url}/webhooks/wa-a"
        assert await sims["wa-a"].post_webhook(inbound(sims["wa-a"], "wamid.after")) == 200
        await second.wait_for(lambda ev: any(e.get("external_id") == "wamid.after" for e in ev))
        assert backend.events == []
        assert new_key not in gw.logs.getvalue()
    finally:
        await second.stop()


async def test_settings_that_need_a_restart_are_kept_and_named(
    tmp_path: Path,
    start_gateway: Any,
    backend: BackendRecorder,
    sims: dict[str, WhatsAppSimulator],
) -> None:
    path = tmp_path / "gateway.yaml"
    data = config_with(tmp_path, backend, sims, ["wa-a"])
    gw = await start_gateway(config_from(data))
    data["server"] = {"port": 9999}
    data["storage"] = {"path": str(tmp_path / "elsewhere.db")}
    data["channels"].append(channel("wa-b", sims["wa-b"]))
    write(path, data)
    assert await gw.gateway.reload_file(path)
    assert gw.gateway.config.server.port == 8080
    assert gw.gateway.config.storage.path == str(tmp_path / "gateway.db")
    assert set(gw.gateway.adapters) == {"wa-a", "wa-b"}
    [line] = [
        json.loads(line)
        for line in gw.logs.getvalue().splitlines()
        if "reload_needs_restart" in line
    ]
    assert line["settings"] == ["server.port", "storage.path"]


async def channel_status(port: int, channel_id: str) -> int:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{port}/webhooks/{channel_id}")
    return answer.status_code  # 404 unknown_channel, else the channel's handshake answer


async def eventually_status(port: int, channel_id: str, wanted: int) -> None:
    async with asyncio.timeout(10):
        while await channel_status(port, channel_id) != wanted:
            await asyncio.sleep(0.05)


async def read_until(stream: asyncio.StreamReader, wanted: bytes, logged: bytearray) -> None:
    """Read a process's log into `logged` until a line holds `wanted`."""
    async with asyncio.timeout(30):
        while wanted not in logged:
            line = await stream.readline()
            if not line:
                raise EOFError(f"the log ended without {wanted!r}")
            logged += line


@pytest.mark.parametrize("trigger", ["sighup", "watch"])
async def test_serve_reloads_on_sighup_and_with_watch_on_change(
    tmp_path: Path, backend: BackendRecorder, sims: dict[str, WhatsAppSimulator], trigger: str
) -> None:
    path = tmp_path / "gateway.yaml"
    write(path, config_with(tmp_path, backend, sims, ["wa-a"]))
    port = free_port()
    process = await start_process(
        path, port, *(["--watch"] if trigger == "watch" else []), stderr=asyncio.subprocess.PIPE
    )
    logged = bytearray()  # its log, as read so far
    try:
        assert await channel_status(port, "wa-b") == 404
        write(path, config_with(tmp_path, backend, sims, ["wa-a", "wa-b"]))
        if trigger == "sighup":
            process.send_signal(signal.SIGHUP)
        await eventually_status(port, "wa-b", 403)  # a handshake with no verify token
        broken = config_with(tmp_path, backend, sims, ["wa-a"])
        del broken["channels"][0]["app_secret"]
        write(path, broken)
        if trigger == "sighup":
            process.send_signal(signal.SIGHUP)
        # Refused when the process gets to it (the watch debounces, a loaded machine is slow).
        assert process.stderr is not None
        await read_until(process.stderr, b'"reload_refused"', logged)
        await asyncio.sleep(1.0)
        assert process.returncode is None  # SIGHUP used to end the process
        assert await channel_status(port, "wa-b") == 403  # the running config was kept
    finally:
        process.terminate()
        _out, err = await process.communicate()
    log = (logged + err).decode()
    assert '"reload_refused"' in log and "app_secret" in log
    assert '"config_reloaded"' in log


async def test_a_channel_whose_credentials_change_sends_with_the_new_ones(
    tmp_path: Path, start_gateway: Any
) -> None:
    """Twilio's channels send through the SDK, with a client made per channel: a reload that
    changes the auth token must bring a new one, not keep the old credentials."""
    from gateway.simulator.sms import TwilioSimulator

    from .test_sms_e2e import ACCOUNT_SID, AUTH_TOKEN, NUMBER, OTHER_TOKEN, USER, sms_channel

    sim = TwilioSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, phone_number=NUMBER)
    await sim.start()
    try:
        path = tmp_path / "gateway.yaml"
        data = base_config(tmp_path, channels=[sms_channel("sms", sim.base_url, OTHER_TOKEN)])
        gw = await start_gateway(config_from(data))
        async with httpx.AsyncClient(headers=AUTH) as client:

            async def send(text: str) -> str:
                message = {
                    "to": {"channel": "sms", "id": USER},
                    "content": {"type": "text", "text": text},
                }
                answer = await client.post(f"{gw.url}/v1/messages", json=message)
                assert answer.status_code == 202
                return str(answer.json()["id"])

            async def state(message_id: str) -> str:
                async with asyncio.timeout(10):
                    while True:
                        view = (await client.get(f"{gw.url}/v1/messages/{message_id}")).json()
                        if view["state"] != "queued":
                            return str(view["state"])
                        await asyncio.sleep(0.05)

            assert await state(await send("with the wrong token")) == "failed"
            data["channels"] = [sms_channel("sms", sim.base_url, AUTH_TOKEN)]
            write(path, data)
            assert await gw.gateway.reload_file(path)
            assert await state(await send("with the right one")) != "failed"
        assert [s["params"]["Body"] for s in sim.sent] == [["with the right one"]]
    finally:
        await sim.stop()
