"""Provider groups end to end through the simulators: a LINE group and a WhatsApp group each
become a conversation, their messages carry its id and the member as author, and what the
backend posts in it goes to the group, never privately to a member (docs/conversations.md,
"Provider groups")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.line import LineSimulator
from gateway.simulator.whatsapp import WhatsAppSimulator

from .conftest import API_KEY, base_config, config_from, with_backend
from .test_e2e_whatsapp import whatsapp_simulator
from .test_line_e2e import GROUP, LINE_A, USER

AUTH = {"Authorization": f"Bearer {API_KEY}"}
WA_GROUP = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
MEMBER = "16505551234"


@pytest.fixture
async def sims() -> AsyncIterator[tuple[LineSimulator, WhatsAppSimulator]]:
    line = LineSimulator(
        channel_secret=LINE_A["channel_secret"],
        channel_access_token=LINE_A["channel_access_token"],
    )
    whatsapp = whatsapp_simulator()
    await line.start()
    await whatsapp.start()
    yield line, whatsapp
    await whatsapp.stop()
    await line.stop()


@pytest.fixture
async def stack(
    tmp_path: Path,
    start_gateway: Any,
    sims: tuple[LineSimulator, WhatsAppSimulator],
    backend: BackendRecorder,
) -> Any:
    line, whatsapp = sims
    data = with_backend(base_config(tmp_path), backend)
    data["channels"][0]["api_base_url"] = whatsapp.base_url
    data["channels"].append(
        {"id": "line-main", "type": "line", "api_base_url": line.base_url, **LINE_A}
    )
    data["backends"][0]["events"] = [
        "message",
        "status",
        "conversation.created",
        "participant.joined",
    ]
    data["conversations"] = {"provider_groups_owner": "orders"}
    gw = await start_gateway(config_from(data))
    line.webhook_url = f"{gw.url}/webhooks/line-main"
    whatsapp.webhook_url = f"{gw.url}/webhooks/wa-main"
    return gw


async def post(gw: Any, conversation_id: str, text: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/v1/conversations/{conversation_id}/messages",
            json={"content": {"type": "text", "text": text}},
            headers=AUTH,
        )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def message_from(backend: BackendRecorder, external_id: str) -> dict[str, Any]:
    events = await backend.wait_for(lambda ev: any(e.get("external_id") == external_id for e in ev))
    return next(e for e in events if e.get("external_id") == external_id)


async def test_a_line_group_is_a_conversation_and_a_reply_goes_to_the_group(
    stack: Any, sims: tuple[LineSimulator, WhatsAppSimulator], backend: BackendRecorder
) -> None:
    line, _whatsapp = sims
    said = await line.send_text(USER, "is the order ready?", group_id=GROUP)
    event = await message_from(backend, said["message"]["id"])
    conversation_id = event["conversation_id"]
    assert conversation_id.startswith("conv_") and event["sender"] == {"id": USER}
    assert event["author"]["role"] == "member"
    created = [e for e in backend.events if e["type"] == "conversation.created"]
    assert [e["conversation_id"] for e in created] == [conversation_id]

    answer = await post(stack, conversation_id, "Ready in 5 minutes")
    [copy] = answer["copies"]
    assert copy["participant"]["role"] == "group"
    await backend.wait_for(
        lambda ev: any(
            e["type"] == "status" and e["status"].get("message_id") == copy["message_id"]
            for e in ev
        )
    )
    # Within the reply token's minute the group's token answers it; either way, to the group.
    [reply] = line.replies()
    assert reply.body == {
        "replyToken": said["replyToken"],
        "messages": [{"type": "text", "text": "Ready in 5 minutes"}],
    }
    assert line.pushes() == []


async def test_a_whatsapp_group_is_a_conversation_and_a_reply_goes_to_the_group(
    stack: Any, sims: tuple[LineSimulator, WhatsAppSimulator], backend: BackendRecorder
) -> None:
    _line, whatsapp = sims
    wamid = await whatsapp.send_inbound(
        {"group_id": WA_GROUP, "type": "text", "text": {"body": "what time?"}},
        from_wa_id=MEMBER,
        name="Sheena",
    )
    event = await message_from(backend, wamid)
    assert event["author"]["display_name"] == "Sheena"
    answer = await post(stack, event["conversation_id"], "At 8")
    [copy] = answer["copies"]
    await backend.wait_for(
        lambda ev: any(
            e["type"] == "status"
            and e["status"].get("message_id") == copy["message_id"]
            and e["status"]["state"] == "delivered"
            for e in ev
        )
    )
    [sent] = whatsapp.sent
    assert sent["body"]["recipient_type"] == "group" and sent["body"]["to"] == WA_GROUP
    assert MEMBER not in str(sent["body"])
