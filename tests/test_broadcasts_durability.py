"""SIGKILL during a broadcast: none of its members is forgotten, and where the provider takes
an idempotency key none gets two copies.

What each channel can promise, since a send the provider accepted but the gateway had not yet
recorded when it died is sent again after the restart:
- LINE: exactly one copy. Pushes carry `X-Line-Retry-Key`, derived from the message id, and
  LINE accepts a key once (providers.md §4): the second try is answered 409 and counted sent.
- WhatsApp, Messenger, Twilio SMS and Viber take no idempotency key: at least one copy, and a
  second only for a send the gateway had not recorded sent when it died. A send recorded sent
  is never sent again. How many were under way depends on the store's pace, so the test reads
  the store at the kill instead of guessing a number.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import yaml

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.line import LineSimulator
from gateway.simulator.sms import TwilioSimulator

from .broadcast_support import ROAD_CLOSED
from .conftest import API_KEY, base_config, eventually, with_backend
from .test_durability import free_port, start_process
from .test_line_e2e import LINE_A
from .test_sms_e2e import ACCOUNT_SID, AUTH_TOKEN, NUMBER, sms_channel

AUTH = {"Authorization": f"Bearer {API_KEY}"}
RATE = 40.0


def recorded_sent(database: Path, channel_id: str) -> set[str]:
    """The members of `channel_id` whose broadcast copy the store holds as sent (or beyond)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT bm.provider_id FROM broadcast_members bm JOIN messages m"
            " ON m.id = bm.message_id WHERE bm.channel_id = ? AND m.state != 'queued'",
            (channel_id,),
        ).fetchall()
    return {row[0] for row in rows}


async def test_sigkill_mid_broadcast_forgets_no_one_and_line_sends_once(
    tmp_path: Path, backend: BackendRecorder
) -> None:
    line = LineSimulator(
        channel_secret=LINE_A["channel_secret"], channel_access_token=LINE_A["channel_access_token"]
    )
    sms = TwilioSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, phone_number=NUMBER)
    await line.start()
    await sms.start()
    data = with_backend(base_config(tmp_path), backend)
    data["backends"][0]["events"] = ["broadcast.completed"]
    data["logging"] = {"level": "warning"}
    data["channels"] = [
        {"id": "line-main", "type": "line", "api_base_url": line.base_url, **LINE_A,
         "rate_limit_per_second": RATE},
        {**sms_channel("sms-main", sms.base_url), "rate_limit_per_second": RATE},
    ]  # fmt: skip
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    people = [f"U{i:032x}" for i in range(150)]
    numbers = [f"+3161235{i:04d}" for i in range(150)]
    members = [{"identity": {"channel": "line-main", "id": p}} for p in people] + [
        {"identity": {"channel": "sms-main", "id": n}} for n in numbers
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process: asyncio.subprocess.Process | None = None
    try:
        process = await start_process(config_path, port)
        async with httpx.AsyncClient(timeout=10) as client:
            body = {"members": members, "content": ROAD_CLOSED}
            accepted = await client.post(f"{url}/v1/broadcasts", json=body, headers=AUTH)
            assert accepted.status_code == 202
            broadcast_id = accepted.json()["id"]
            database = Path(data["storage"]["path"])
            await eventually(
                lambda: len(line.sent) >= 40 and len(recorded_sent(database, "sms-main")) >= 10
            )
            process.send_signal(signal.SIGKILL)  # mid-flight on both channels
            await process.wait()
            before = (len(line.sent), len(sms.sent))
            assert before[0] < 150 and before[1] < 150  # there is something left to do
            sms_recorded = recorded_sent(database, "sms-main")

            process = await start_process(config_path, port)
            await backend.wait_for(
                lambda ev: any(e.get("broadcast_id") == broadcast_id for e in ev), timeout=30
            )
            view = await client.get(f"{url}/v1/broadcasts/{broadcast_id}", headers=AUTH)
    finally:
        if process is not None and process.returncode is None:  # left running, it outlives
            process.terminate()  # the test (a failure above, say)
            await process.wait()
        await line.stop()
        await sms.stop()

    line_copies = Counter(s.to for s in line.sent)
    sms_copies = Counter(s["params"]["To"][0] for s in sms.sent)
    assert set(line_copies) == set(people) and set(line_copies.values()) == {1}
    assert set(sms_copies) == set(numbers)
    # A second copy only where the store had no record of the first: what was under way.
    twice = {number for number, copies in sms_copies.items() if copies > 1}
    assert sms_recorded and not twice & sms_recorded
    assert set(sms_copies.values()) <= {1, 2}
    counts = view.json()["counts"]
    assert counts["queued"] == 0 and counts["failed"] == 0 and sum(counts.values()) == 300
