"""The conversations API: every endpoint, each refusal naming its field, the API-key scope,
and the lifecycle events reaching only the backends that asked for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder

from .conftest import BACKEND_SECRET, base_config, config_from, post_whatsapp, webhook
from .test_users_api import AUTH, OTHER, OTHER_KEY, call

CUSTOMER = {"channel": "wa-main", "id": "16505551234"}
COURIER = {"channel": "wa-main", "id": "16505550000"}
TEXT = {"type": "text", "text": "on my way"}


def config(tmp_path: Path, backend: BackendRecorder) -> Any:
    data = base_config(tmp_path)
    data["api_keys"].append({"name": "couriers", "key": OTHER_KEY})
    data["backends"] = [
        {
            "id": "orders",
            "url": backend.url,
            "secret": BACKEND_SECRET,
            "events": ["message", "conversation.created", "participant.joined",
                       "participant.left", "conversation.closed"],
        },
        # Names no events: keeps receiving exactly what it did before conversations.
        {"id": "legacy", "url": "http://127.0.0.1:9/events", "secret": BACKEND_SECRET},
    ]  # fmt: skip
    return config_from(data)


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any, backend: BackendRecorder) -> Any:
    return await start_gateway(config(tmp_path, backend))


def participant(identity: dict[str, str], role: str = "customer", name: str = "Sheena") -> Any:
    return {"identity": identity, "role": role, "display_name": name}


async def create(gw: Any, *people: Any, **fields: Any) -> dict[str, Any]:
    body = {"participants": list(people or [participant(CUSTOMER)]), **fields}
    response = await call(gw, "POST", "/v1/conversations", body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def refused(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert [p["field"] for p in body["problems"]] == [field], body
    return body


async def test_create_read_add_remove_close(gw: Any, backend: BackendRecorder) -> None:
    made = await create(gw, participant(CUSTOMER), metadata={"order_id": "1234"}, mode="hub")
    assert (made["mode"], made["state"], made["metadata"]) == ("hub", "open", {"order_id": "1234"})
    assert made["id"].startswith("conv_")
    [customer] = made["participants"]
    assert customer["identity"] == CUSTOMER and customer["role"] == "customer"
    assert (await call(gw, "GET", f"/v1/conversations/{made['id']}")).json() == made

    added = await call(
        gw, "POST", f"/v1/conversations/{made['id']}/participants",
        participant(COURIER, "courier", "Jasper"),
    )  # fmt: skip
    assert added.status_code == 201, added.text
    courier = added.json()["participants"][1]
    assert (courier["display_name"], courier["role"]) == ("Jasper", "courier")

    left = await call(gw, "DELETE", f"/v1/conversations/{made['id']}/participants/{courier['id']}")
    assert left.status_code == 200 and "left_at" in left.json()["participants"][1]
    closed = await call(gw, "POST", f"/v1/conversations/{made['id']}/close")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    again = await call(gw, "POST", f"/v1/conversations/{made['id']}/close")
    assert again.status_code == 200 and again.json()["closed_at"] == closed.json()["closed_at"]

    events = await backend.wait_for(lambda ev: any(e["type"] == "conversation.closed" for e in ev))
    assert [e["type"] for e in events] == [
        "conversation.created",
        "participant.joined",
        "participant.left",
        "conversation.closed",
    ]
    assert events[1]["participant"]["id"] == courier["id"]
    assert all(e["conversation_id"] == made["id"] for e in events)
    assert "identity" not in events[0]["participants"][0]  # no address in the events
    legacy = await gw.store.db.run(
        lambda tx: tx.all(
            "SELECT e.type FROM outbox o JOIN events e ON e.id = o.ref WHERE o.target = 'legacy'"
        )
    )
    assert legacy == []


async def test_a_post_fans_out_and_history_pages(gw: Any) -> None:
    made = await create(gw, participant(CUSTOMER), participant(COURIER, "courier", "Jasper"))
    cid = made["id"]
    customer, courier = (p["id"] for p in made["participants"])
    posted = await call(gw, "POST", f"/v1/conversations/{cid}/messages", {"content": TEXT})
    assert posted.status_code == 202, posted.text
    assert {c["participant"]["id"] for c in posted.json()["copies"]} == {customer, courier}
    posted = await call(
        gw, "POST", f"/v1/conversations/{cid}/messages", {"content": TEXT, "author": courier}
    )
    [copy] = posted.json()["copies"]
    assert copy["participant"]["id"] == customer and copy["state"] == "queued"
    sent = await call(gw, "GET", f"/v1/messages/{copy['message_id']}")
    assert sent.json()["content"]["text"] == "Jasper (courier): on my way"
    assert sent.json()["conversation_id"] == cid

    page = (await call(gw, "GET", f"/v1/conversations/{cid}/messages?limit=1")).json()
    assert [m["author"]["id"] for m in page["messages"]] == [courier]
    older = await call(
        gw, "GET", f"/v1/conversations/{cid}/messages", params={"cursor": page["next_cursor"]}
    )
    [first] = older.json()["messages"]
    assert "author" not in first and len(first["copies"]) == 2
    assert "next_cursor" not in older.json()


async def test_a_participants_message_reaches_the_backend_with_its_conversation(
    gw: Any, backend: BackendRecorder
) -> None:
    made = await create(gw, participant(CUSTOMER), participant(COURIER, "courier", "Jasper"))
    assert (await post_whatsapp(gw.url, webhook("wamid.A", "hi", COURIER["id"]))).status_code == 200
    events = await backend.wait_for(lambda ev: any(e["type"] == "message" for e in ev))
    [message] = [e for e in events if e["type"] == "message"]
    assert message["conversation_id"] == made["id"]
    assert message["author"] == {
        "id": made["participants"][1]["id"], "role": "courier", "display_name": "Jasper",
    }  # fmt: skip
    history = await call(gw, "GET", f"/v1/conversations/{made['id']}/messages")
    [said] = history.json()["messages"]
    assert said["event_id"] == message["id"] and said["content"]["text"] == "hi"
    assert [c["participant"]["display_name"] for c in said["copies"]] == ["Sheena"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"participants": [{"identity": CUSTOMER, "display_name": "S"}]}, 422,
         "participants[0].role"),
        ({"participants": [participant({"channel": "tg", "id": "1"})]}, 422,
         "participants[0].identity.channel"),
        ({"participants": [{"role": "customer", "display_name": "S"}]}, 422,
         "participants[0].identity"),
        ({"participants": [{"user_id": "usr_nobody", "role": "c", "display_name": "S"}]}, 422,
         "participants[0].user_id"),
        ({"participants": [participant(CUSTOMER), participant(CUSTOMER)]}, 409,
         "participants[1].identity"),
        ({"mode": "broadcast"}, 422, "mode"),
        ({"participants": [participant(CUSTOMER, name="a\\nb")]}, 422,
         "participants[0].display_name"),
    ],
)  # fmt: skip
async def test_create_refusals_name_the_field(
    gw: Any, body: dict[str, Any], status: int, field: str
) -> None:
    if field.endswith("display_name"):
        body = {"participants": [participant(CUSTOMER, name="a\nb")]}
    refused(await call(gw, "POST", "/v1/conversations", body), status, field)


async def test_a_user_of_another_key_cannot_join(gw: Any) -> None:
    theirs = (await call(gw, "POST", "/v1/users", {"name": "X"}, OTHER)).json()
    body = {"participants": [{"user_id": theirs["id"], "role": "c", "display_name": "X"}]}
    refused(await call(gw, "POST", "/v1/conversations", body), 422, "participants[0].user_id")


async def test_participant_refusals(gw: Any) -> None:
    made = await create(gw)
    path = f"/v1/conversations/{made['id']}/participants"
    refused(await call(gw, "POST", path, participant({"channel": "tg", "id": "1"})), 422,
            "identity.channel")  # fmt: skip
    refused(await call(gw, "POST", path, participant(CUSTOMER)), 409, "identity")
    refused(await call(gw, "DELETE", f"{path}/par_nobody"), 404, "participant_id")
    await call(gw, "POST", f"/v1/conversations/{made['id']}/close")
    body = refused(await call(gw, "POST", path, participant(COURIER)), 409, "conversation")
    assert body["error"] == "conversation_closed"


async def test_post_refusals(gw: Any) -> None:
    made = await create(gw)
    path = f"/v1/conversations/{made['id']}/messages"
    refused(await call(gw, "POST", path, {"content": TEXT, "author": "par_x"}), 422, "author")
    refused(await call(gw, "POST", path, {"content": TEXT, "to": ["par_x"]}), 422, "to[0]")
    refused(await call(gw, "POST", path, {"content": {"type": "text"}}), 422, "content.text")
    refused(await call(gw, "GET", path, params={"limit": "0"}), 422, "limit")
    refused(await call(gw, "GET", path, params={"cursor": "abc"}), 422, "cursor")
    await call(gw, "POST", f"/v1/conversations/{made['id']}/close")
    body = refused(await call(gw, "POST", path, {"content": TEXT}), 409, "conversation")
    assert body["error"] == "conversation_closed"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("POST", "/participants", participant(COURIER)),
        ("DELETE", "/participants/par_x", None),
        ("POST", "/close", None),
        ("POST", "/messages", {"content": TEXT}),
        ("GET", "/messages", None),
        ("POST", "/control", {"action": "pass", "backend": "orders"}),
    ],
)
async def test_another_keys_conversation_is_not_found(
    gw: Any, method: str, suffix: str, body: Any
) -> None:
    made = await create(gw)
    for cid, headers in ((made["id"], OTHER), ("conv_nobody", AUTH)):
        response = await call(gw, method, f"/v1/conversations/{cid}{suffix}", body, headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "conversation_not_found"
    assert (await call(gw, "GET", f"/v1/conversations/{made['id']}", None, {})).status_code == 401
