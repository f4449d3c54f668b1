"""`gateway broadcast --config FILE --group ID MESSAGE.json`: accepted, then progress lines
until the broadcast has completed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.broadcast_cli import follow, read_body, request_body
from gateway.cli import parser
from gateway.simulator.backend import BackendRecorder

from .broadcast_support import ROAD_CLOSED, broadcast_gateway
from .conftest import API_KEY
from .test_everywhere import sims  # noqa: F401  (the simulators fixture)

RATES = {"wa-main": 100, "fb-main": 100, "sms-main": 100, "line-main": 100, "vb-main": 100}


def test_message_file_is_a_content_or_a_body_without_audience() -> None:
    assert request_body(ROAD_CLOSED, "grp_1") == {"content": ROAD_CLOSED, "group_id": "grp_1"}
    body = {"content": ROAD_CLOSED, "options": {"ttl": 3600}}
    assert request_body(body, "grp_1") == {**body, "group_id": "grp_1"}
    with pytest.raises(ValueError, match="--group"):
        request_body({**body, "members": []}, "grp_1")


async def test_broadcast_prints_progress_until_completed(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await broadcast_gateway(tmp_path, start_gateway, sims, backend, RATES)
    numbers = [f"+3161235{i:04d}" for i in range(30)]
    async with httpx.AsyncClient() as client:
        made = await client.post(
            f"{gw.url}/v1/groups",
            json={"members": [{"identity": {"channel": "sms-main", "id": n}} for n in numbers]},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    message = tmp_path / "road-closed.json"
    message.write_text(json.dumps(ROAD_CLOSED))
    args = parser().parse_args(
        ["broadcast", "--config", "unused.yaml", "--group", made.json()["id"],
         "--gateway", gw.url, str(message)]
    )  # fmt: skip
    out = io.StringIO()
    assert await follow(gw.gateway.config, args, read_body(args), out, interval=0.1) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("accepted for 30 members")
    assert lines[-1].startswith("completed: 30/30 ") and len(numbers) == len(sims["sms"].sent)
