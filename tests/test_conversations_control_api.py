"""The control endpoint and agent participants through the API: each refusal names its
field, the conversation view shows who controls it, conversations.default_controller
applies to new conversations, and API-only observers are represented without an identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.simulator.backend import BackendRecorder

from .conftest import base_config, config_from, with_backend
from .test_conversations_api import (  # noqa: F401  (gw: the gateway fixture)
    COURIER,
    CUSTOMER,
    TEXT,
    create,
    gw,
    participant,
    refused,
)
from .test_users_api import call

AGENT = {"api_only": True, "observer": True, "role": "support", "display_name": "Sam"}


async def test_control_refusals_name_the_field(gw: Any) -> None:
    made = await create(gw)
    path = f"/v1/conversations/{made['id']}/control"
    refused(await call(gw, "POST", path, {"action": "pass", "backend": "nope"}), 422, "backend")
    refused(await call(gw, "POST", path, {"action": "pass"}), 422, "backend")
    refused(await call(gw, "POST", path, {"action": "take"}), 422, "backend")  # no default
    refused(await call(gw, "POST", path, {"action": "steal", "backend": "orders"}), 422, "action")
    refused(
        await call(gw, "POST", path, {"action": "release", "backend": "legacy"}), 409, "backend"
    )
    await call(gw, "POST", f"/v1/conversations/{made['id']}/close")
    body = refused(await call(gw, "POST", path, {"action": "pass", "backend": "orders"}), 409,
                   "conversation")  # fmt: skip
    assert body["error"] == "conversation_closed"


async def test_control_is_passed_taken_and_released(gw: Any) -> None:
    made = await create(gw)
    assert "controller" not in made  # no default controller configured: no one controls
    path = f"/v1/conversations/{made['id']}/control"
    passed = await call(gw, "POST", path, {"action": "pass", "backend": "orders"})
    assert passed.status_code == 200 and passed.json()["controller"] == "orders"
    taken = await call(gw, "POST", path, {"action": "take", "backend": "legacy"})
    assert taken.json()["controller"] == "legacy"
    released = await call(gw, "POST", path, {"action": "release"})
    assert released.status_code == 200 and "controller" not in released.json()
    got = await call(gw, "GET", f"/v1/conversations/{made['id']}")
    assert "controller" not in got.json()


async def test_the_default_controller_controls_new_conversations(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder
) -> None:
    data = with_backend(base_config(tmp_path), backend)
    data["conversations"] = {"default_controller": "orders"}
    running = await start_gateway(config_from(data))
    made = await create(running)
    assert made["controller"] == "orders"
    path = f"/v1/conversations/{made['id']}/control"
    released = await call(running, "POST", path, {"action": "release", "backend": "orders"})
    assert "controller" not in released.json()  # the default controller released it: no one
    taken = await call(running, "POST", path, {"action": "take"})  # the default takes it back
    assert taken.json()["controller"] == "orders"


async def test_agent_participants_and_their_refusals(gw: Any) -> None:
    made = await create(gw, participant(CUSTOMER), participant(COURIER, "courier", "Jasper"))
    people = f"/v1/conversations/{made['id']}/participants"
    refused(await call(gw, "POST", people, {**AGENT, "identity": CUSTOMER}), 422, "identity")
    refused(await call(gw, "POST", people, {"role": "support", "display_name": "Sam"}), 422,
            "identity")  # fmt: skip
    joined = await call(gw, "POST", people, AGENT)
    assert joined.status_code == 201, joined.text
    [sam] = [p for p in joined.json()["participants"] if p["display_name"] == "Sam"]
    assert sam["api_only"] is True and sam["observer"] is True and "identity" not in sam
    messages = f"/v1/conversations/{made['id']}/messages"
    refused(await call(gw, "POST", messages, {"content": TEXT, "to": [sam["id"]]}), 422, "to[0]")
    posted = await call(gw, "POST", messages, {"content": TEXT, "author": sam["id"]})
    assert posted.status_code == 202, posted.text
    # The others got the announcement first, then the message; Sam got no copy.
    copies = posted.json()["copies"]
    assert {c["participant"]["id"] for c in copies} == {p["id"] for p in made["participants"]}
    history = (await call(gw, "GET", messages)).json()["messages"]
    assert [m["content"]["text"] for m in history] == [TEXT["text"], "Sam (support) joined"]
    after = (await call(gw, "GET", f"/v1/conversations/{made['id']}")).json()
    assert [p.get("observer") for p in after["participants"] if p["id"] == sam["id"]] == [None]
