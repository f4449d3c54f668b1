"""`gateway demo` opens the console on its data: the printed login works, and every page
answers on the demo's channels and its order conversation."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx

from .conftest import STARTUP_SECONDS

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_LINE = re.compile(
    r"console: (http://\S+)/console, log in as operator or agent, password (\S+)"
)


async def test_the_demo_console_shows_every_page(tmp_path: Path) -> None:
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
        async with asyncio.timeout(STARTUP_SECONDS):
            while not lines or "Write as the customer" not in lines[-1]:
                lines.append((await demo.stdout.readline()).decode())
                assert lines[-1], "".join(lines)
        [found] = [m for m in map(CONSOLE_LINE.search, lines) if m]
        url, password = found.group(1), found.group(2)
        async with httpx.AsyncClient(base_url=url) as client:
            login = await client.post(
                "/console/login", data={"name": "operator", "password": password}
            )
            assert login.status_code == 303
            channels = await client.get("/console/channels")
            for channel in ("wa-demo", "sms-demo", "fb-demo"):
                assert f'data-channel="{channel}"' in channels.text
            for path in ("/console/trouble", "/console/composer", "/console/charts"):
                assert (await client.get(path)).status_code == 200, path
            listed = await client.get("/console/conversations?key=order_id&value=1234")
            [conversation] = re.findall(r'href="/console/conversations/(conv_\w+)"', listed.text)
            shown = await client.get(f"/console/conversations/{conversation}")
            assert "stuck in traffic, 10 min late" in shown.text
    finally:
        demo.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await demo.wait() == 0
