"""An agent's actions through HTTP, as the conversation page posts them: join silently (no
one is told), speak (then the others are told, once), hand control back, leave; and the
refusals: speaking before joining, joining twice, an unknown action or conversation."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder

from .conftest import API_KEY
from .console_support import AGENT, console_gateway, logged_in
from .test_console_browser_agent import marketplace
from .test_everywhere import WA_USER, sims  # noqa: F401  (the simulators fixture)
from .test_messenger_e2e import PSID


@pytest.fixture
async def gw(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> Any:
    gateway = await console_gateway(tmp_path, start_gateway, sims, backend)
    await sims["whatsapp"].send_inbound_text(WA_USER, "Where is my order?")
    await sims["messenger"].send_inbound_text(PSID, "Order 1234 is ready")
    await backend.wait_for(lambda ev: len([e for e in ev if e["type"] == "message"]) >= 2)
    return gateway


async def history(url: str, conversation: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as api:
        page = await api.get(f"/v1/conversations/{conversation}/messages")
    return list(reversed(page.json()["messages"]))


async def test_an_agent_observes_silently_then_speaks_hands_back_and_leaves(gw: Any) -> None:
    conversation = await marketplace(gw.url)
    agent, token = await logged_in(gw.url, AGENT)
    base = f"/console/conversations/{conversation}"

    async def act(action: str, **fields: str) -> httpx.Response:
        return await agent.post(f"{base}/{action}", data={"csrf": token, **fields})

    async with aclosing(agent):
        assert (await act("speak", text="hello")).status_code == 422  # not in it yet
        assert (await act("join-silently")).status_code == 303
        assert (await act("join-silently")).status_code == 422  # once is enough
        page = await agent.get(base)
        assert "observing silently" in page.text and 'id="speak"' in page.text
        assert await history(gw.url, conversation) == []  # nobody was told

        assert (await act("speak", text="")).status_code == 422
        assert (await act("speak", text="I'm looking into it")).status_code == 303
        said = await history(gw.url, conversation)
        # Speaking made them visible: announced first, once, then their message.
        assert [m["content"]["text"] for m in said] == ["sam (agent) joined", "I'm looking into it"]
        assert said[1]["author"]["display_name"] == AGENT[0]
        assert {c["participant"]["display_name"] for c in said[1]["copies"]} == {
            "Sheena", "Jasper", "Luigi's"
        }  # fmt: skip

        assert (await act("hand-back")).status_code == 303
        assert (await act("leave")).status_code == 303
        assert (await act("leave")).status_code == 422
        left = await history(gw.url, conversation)
        assert left[-1]["content"]["text"] == "sam (agent) left"
        assert (await act("dance")).status_code == 422
        missing = await agent.post(
            "/console/conversations/conv_01J0000000000000000000000A/join-visibly",
            data={"csrf": token},
        )
        assert missing.status_code == 404


async def test_the_composer_posts_to_a_group_conversation(gw: Any) -> None:
    from .console_support import OPERATOR

    conversation = await marketplace(gw.url)
    operator, token = await logged_in(gw.url, OPERATOR)
    headers = {"X-CSRF-Token": token}
    carousel = {"type": "text", "text": "Your order is on its way"}
    async with aclosing(operator):
        posted = await operator.post(
            "/console/api/send",
            json={"conversation": conversation, "content": carousel},
            headers=headers,
        )
        assert posted.status_code == 202, posted.text
        assert len(posted.json()["copies"]) == 3
        missing = await operator.post(
            "/console/api/send",
            json={"conversation": "conv_01J0000000000000000000000A", "content": carousel},
            headers=headers,
        )
        assert (
            missing.status_code == 404 and missing.json()["problems"][0]["field"] == "conversation"
        )
    [said] = await history(gw.url, conversation)
    assert said["content"]["text"] == "Your order is on its way" and "author" not in said
