"""Shared by the web channel's tests: its config, tokens and a socket client."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from tests.conftest import API_KEY, base_config

AUTH = {"Authorization": f"Bearer {API_KEY}"}
TOKEN_SECRET = "web-token-secret-0123456789abcdefghijkl"
CHANNEL = "web"


def web_channel(**overrides: Any) -> dict[str, Any]:
    return {"id": CHANNEL, "type": "web", "token_secret": TOKEN_SECRET, **overrides}


def web_config(tmp_path: Path, **channel: Any) -> dict[str, Any]:
    return base_config(tmp_path, channels=[web_channel(**channel)])


async def token(url: str, user: str, **extra: Any) -> str:
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{url}/v1/web/tokens", json={"channel": CHANNEL, "user": user, **extra}, headers=AUTH
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


async def send(url: str, user: str, content: dict[str, Any]) -> str:
    message = {"to": {"channel": CHANNEL, "id": user}, "content": content}
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/v1/messages", json=message, headers=AUTH)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


class Device:
    """One app connected to the socket, reading what it is sent."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self.frames: list[dict[str, Any]] = []  # every frame received, in order
        self.unread: list[dict[str, Any]] = []  # received, not yet returned by `until`

    @classmethod
    async def connect(
        cls, url: str, token_text: str, last_event_id: int = 0, ready: bool = True
    ) -> Device:
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(f"{url.replace('http', 'ws', 1)}/web/{CHANNEL}/socket")
        device = cls(session, ws)
        await device.send({"type": "auth", "token": token_text, "last_event_id": last_event_id})
        if ready:
            await device.until("ready")
            device.unread = device.frames[:-1]  # what came before `ready`: the resumed log
        return device

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def say(self, text: str) -> str:
        frame_id = uuid.uuid4().hex
        await self.send(
            {"type": "message", "id": frame_id, "content": {"type": "text", "text": text}}
        )
        return frame_id

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        message = await self.ws.receive(timeout=timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket closed: {self.ws.close_code} {message.extra!r}")
        frame: dict[str, Any] = json.loads(message.data)
        self.frames.append(frame)
        return frame

    async def until(self, frame_type: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first unread frame of `frame_type` (those of other types before it are read)."""
        while self.unread:
            frame = self.unread.pop(0)
            if frame["type"] == frame_type:
                return frame
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout)
                if frame["type"] == frame_type:
                    return frame

    async def closed(self, timeout: float = 10.0) -> tuple[int | None, str]:
        """The close code and reason the gateway closed with."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.receive()
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):  # fmt: skip
                    return self.ws.close_code, str(message.extra or "")

    def messages(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "message"]

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()
