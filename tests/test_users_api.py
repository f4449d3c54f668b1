"""The users API: every endpoint, each refusal naming its field, the API-key scope, and the
events about users reaching a backend; link by phone end to end (WhatsApp and SMS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder
from gateway.simulator.sms import sign

from .conftest import (
    API_KEY,
    BACKEND_SECRET,
    base_config,
    config_from,
    inbox_settled,
    post_whatsapp,
    webhook,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OTHER_KEY = "couriers-key-0123456789"
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
TWILIO_TOKEN = "users-twilio-auth-token-0123456789"
PUBLIC = "https://gateway.example.com"
NUMBER = "+16505551234"


def config(tmp_path: Path, backend: BackendRecorder, link_by_phone: bool = False) -> Any:
    data = base_config(tmp_path)
    data["api_keys"].append({"name": "couriers", "key": OTHER_KEY})
    data["channels"].append(
        {
            "id": "sms-us",
            "type": "sms",
            "api_base_url": "http://127.0.0.1:9",
            "account_sid": "AC" + "7c" * 16,
            "auth_token": TWILIO_TOKEN,
            "from_number": "+14155550199",
        }
    )
    data["backends"] = [
        {
            "id": "crm",
            "url": backend.url,
            "secret": BACKEND_SECRET,
            "events": ["message", "user.merged", "identity.linked", "identity.unlinked"],
        }
    ]
    data["identities"] = {"link_by_phone": link_by_phone}
    return config_from(data)


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any, backend: BackendRecorder) -> Any:
    return await start_gateway(config(tmp_path, backend))


async def call(
    gw: Any, method: str, path: str, body: Any = None, headers: dict[str, str] = AUTH, **kw: Any
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.url) as client:
        return await client.request(method, path, json=body, headers=headers, **kw)


async def create(gw: Any, headers: dict[str, str] = AUTH, **fields: Any) -> dict[str, Any]:
    response = await call(gw, "POST", "/v1/users", fields, headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def link(gw: Any, user_id: str, channel: str, provider_id: str) -> httpx.Response:
    return await call(
        gw, "POST", f"/v1/users/{user_id}/identities", {"channel": channel, "id": provider_id}
    )


async def test_create_get_update(gw: Any) -> None:
    user = await create(gw, external_id="cust-1", name="Ana", locale="pt-BR", metadata={"a": 1})
    assert user["id"].startswith("usr_") and user["identities"] == []
    got = await call(gw, "GET", f"/v1/users/{user['id']}")
    assert got.status_code == 200 and got.json() == user
    patched = await call(gw, "PATCH", f"/v1/users/{user['id']}", {"name": "Ana S", "locale": None})
    assert patched.status_code == 200
    body = patched.json()
    assert (body["name"], body.get("locale"), body["external_id"]) == ("Ana S", None, "cust-1")
    assert body["metadata"] == {"a": 1}  # left out: kept


async def test_country_and_preferred_channel(gw: Any) -> None:
    user = await create(gw, country="JP", preferred_channel="line")
    assert (user["country"], user["preferred_channel"]) == ("JP", "line")
    patched = await call(
        gw, "PATCH", f"/v1/users/{user['id']}", {"preferred_channel": "wa-main", "country": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["preferred_channel"] == "wa-main" and "country" not in patched.json()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/v1/users", {"name": ""}, 422, "name"),
        ("POST", "/v1/users", {"locale": "english please"}, 422, "locale"),
        ("POST", "/v1/users", {"metadata": [1]}, 422, "metadata"),
        ("POST", "/v1/users", {"nickname": "x"}, 422, "nickname"),
        ("POST", "/v1/users", {"external_id": "a\x00b"}, 422, "external_id"),
        ("POST", "/v1/users", {"country": "jp"}, 422, "country"),
        ("POST", "/v1/users", {"country": "XX"}, 422, "country"),
        ("POST", "/v1/users", {"preferred_channel": "fax"}, 422, "preferred_channel"),
        ("PATCH", "/v1/users/{id}", {"preferred_channel": "fax"}, 422, "preferred_channel"),
        ("PATCH", "/v1/users/{id}", {"name": 3}, 422, "name"),
        ("POST", "/v1/users/{id}/identities", {"channel": "fax", "id": "1"}, 422, "channel"),
        ("POST", "/v1/users/{id}/identities", {"channel": "wa-main"}, 422, "id"),
        ("DELETE", "/v1/users/{id}/identities?channel=wa-main", None, 422, "id"),
        ("POST", "/v1/users/{id}/merge", {}, 422, "user_id"),
        ("GET", "/v1/users/{id}/messages?limit=0", None, 422, "limit"),
        ("GET", "/v1/users/{id}/messages?limit=x", None, 422, "limit"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    gw: Any, method: str, path: str, body: Any, status: int, field: str
) -> None:
    user = await create(gw)
    response = await call(gw, method, path.replace("{id}", user["id"]), body)
    assert response.status_code == status, response.text
    assert [p["field"] for p in response.json()["problems"]] == [field]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/users/usr_nope", None),
        ("PATCH", "/v1/users/usr_nope", {"name": "x"}),
        ("POST", "/v1/users/usr_nope/identities", {"channel": "wa-main", "id": "1"}),
        ("DELETE", "/v1/users/usr_nope/identities?channel=wa-main&id=1", None),
        ("POST", "/v1/users/usr_nope/merge", {"user_id": "{id}"}),
        ("POST", "/v1/users/{id}/merge", {"user_id": "usr_nope"}),
        ("GET", "/v1/users/usr_nope/messages", None),
    ],
)
async def test_unknown_users_are_404(gw: Any, method: str, path: str, body: Any) -> None:
    user = await create(gw)
    if isinstance(body, dict):
        body = {k: v.replace("{id}", user["id"]) for k, v in body.items()}
    response = await call(gw, method, path.replace("{id}", user["id"]), body)
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"


async def test_a_key_sees_only_the_users_it_created(gw: Any) -> None:
    theirs = await create(gw, OTHER, external_id="cust-1")
    mine = await create(gw, external_id="cust-1")  # external ids are per key
    for method, path, body in [
        ("GET", f"/v1/users/{theirs['id']}", None),
        ("PATCH", f"/v1/users/{theirs['id']}", {"name": "x"}),
        ("POST", f"/v1/users/{theirs['id']}/identities", {"channel": "wa-main", "id": "1"}),
        ("POST", f"/v1/users/{mine['id']}/merge", {"user_id": theirs["id"]}),
        ("POST", f"/v1/users/{theirs['id']}/merge", {"user_id": mine["id"]}),
        ("GET", f"/v1/users/{theirs['id']}/messages", None),
    ]:
        response = await call(gw, method, path, body)
        assert response.status_code == 404, (method, path)
    assert (await call(gw, "GET", f"/v1/users/{theirs['id']}", headers=OTHER)).status_code == 200


async def test_conflicts_are_409(gw: Any) -> None:
    first = await create(gw, external_id="cust-1")
    second = await create(gw)
    taken = await call(gw, "POST", "/v1/users", {"external_id": "cust-1"})
    assert taken.status_code == 409 and taken.json()["problems"][0]["field"] == "external_id"
    renamed = await call(gw, "PATCH", f"/v1/users/{second['id']}", {"external_id": "cust-1"})
    assert renamed.status_code == 409
    assert (await link(gw, first["id"], "wa-main", "16505551234")).status_code == 201
    assert (await link(gw, first["id"], "wa-main", "16505551234")).status_code == 200
    held = await link(gw, second["id"], "wa-main", "16505551234")
    assert held.status_code == 409 and held.json()["error"] == "identity_taken"
    itself = await call(gw, "POST", f"/v1/users/{first['id']}/merge", {"user_id": first["id"]})
    assert itself.status_code == 409 and itself.json()["error"] == "same_user"
    absent = await call(
        gw,
        "DELETE",
        f"/v1/users/{second['id']}/identities",
        params={"channel": "wa-main", "id": "16505551234"},
    )
    assert absent.status_code == 404 and absent.json()["error"] == "not_linked"


async def test_link_unlink_merge_reach_the_backend_and_history_follows(
    gw: Any, backend: BackendRecorder
) -> None:
    survivor = await create(gw, external_id="cust-1")
    merged = await create(gw, external_id="cust-2")
    assert (await link(gw, survivor["id"], "wa-main", "16505551234")).status_code == 201
    assert (await link(gw, merged["id"], "sms-us", "+16505550000")).status_code == 201
    sent = []
    for channel, to in (("wa-main", "16505551234"), ("sms-us", "+16505550000")):
        message = {"to": {"channel": channel, "id": to}, "content": {"type": "text", "text": "hi"}}
        response = await call(gw, "POST", "/v1/messages", message)
        sent.append(response.json()["id"])
    response = await call(
        gw, "POST", f"/v1/users/{survivor['id']}/merge", {"user_id": merged["id"]}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["merged_ids"] == [merged["id"]] and len(body["identities"]) == 2
    # The merged-away id answers with the survivor; its messages are the survivor's.
    assert (await call(gw, "GET", f"/v1/users/{merged['id']}")).json()["id"] == survivor["id"]
    listed = (await call(gw, "GET", f"/v1/users/{merged['id']}/messages")).json()["messages"]
    assert sorted(m["id"] for m in listed) == sorted(sent)
    assert (
        await call(gw, "GET", f"/v1/users/{survivor['id']}/messages", headers=OTHER)
    ).status_code == 404
    unlinked = await call(
        gw,
        "DELETE",
        f"/v1/users/{survivor['id']}/identities",
        params={"channel": "sms-us", "id": "+16505550000"},
    )
    assert unlinked.status_code == 200 and len(unlinked.json()["identities"]) == 1

    events = await backend.wait_for(lambda got: len(got) >= 4)
    assert [(e["type"], e["user_id"]) for e in events] == [
        ("identity.linked", survivor["id"]),
        ("identity.linked", merged["id"]),
        ("user.merged", survivor["id"]),
        ("identity.unlinked", survivor["id"]),
    ]
    assert events[2]["merge"] == {"merged_id": merged["id"], "merged_external_id": "cust-2"}
    assert events[1]["identity"] == {"channel": "sms-us", "id": "+16505550000", "linked_by": "api"}


async def test_backends_not_naming_user_events_do_not_get_them(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder
) -> None:
    data = base_config(tmp_path)
    data["backends"] = [{"id": "orders", "url": backend.url, "secret": BACKEND_SECRET}]
    gw = await start_gateway(config_from(data))
    user = await create(gw)
    await link(gw, user["id"], "wa-main", "16505551234")
    await post_whatsapp(gw.url, webhook("wamid.after-link"))
    events = await backend.wait_for(lambda got: len(got) >= 1)
    assert [e["type"] for e in events] == ["message"]


async def post_sms(gw: Any, sid: str, sender: str) -> None:
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "7c" * 16,
        "From": sender,
        "To": "+14155550199",
        "Body": "where is my order?",
        "NumMedia": "0",
    }
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(TWILIO_TOKEN, f"{PUBLIC}/webhooks/sms-us", params),
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/webhooks/sms-us", content=urlencode(params), headers=headers
        )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("link_by_phone", [True, False])
@pytest.mark.parametrize("first", ["sms", "whatsapp"])
async def test_link_by_phone_across_whatsapp_and_sms(
    tmp_path: Path, start_gateway: Any, backend: BackendRecorder, link_by_phone: bool, first: str
) -> None:
    gw = await start_gateway(config(tmp_path, backend, link_by_phone))
    user = await create(gw)
    identities = {"sms": ("sms-us", NUMBER), "whatsapp": ("wa-main", NUMBER.lstrip("+"))}
    then = "whatsapp" if first == "sms" else "sms"

    async def receive(kind: str, n: int) -> None:
        if kind == "sms":
            await post_sms(gw, f"SM{n:032x}", NUMBER)
        else:
            await post_whatsapp(gw.url, webhook(f"wamid.{n}", sender=NUMBER.lstrip("+")))
        await inbox_settled(gw)

    await receive(first, 1)  # the provider sends the phone with this identity's message
    assert (await link(gw, user["id"], *identities[first])).status_code == 201
    await receive(then, 2)  # the same number on the other channel
    found = (await call(gw, "GET", f"/v1/users/{user['id']}")).json()["identities"]
    linked = {(i["channel"], i["id"], i["linked_by"], i.get("phone")) for i in found}
    expected = {(*identities[first], "api", NUMBER)}
    if link_by_phone:
        expected.add((*identities[then], "phone", NUMBER))
    assert linked == expected
    wanted = 4 if link_by_phone else 3
    events = await backend.wait_for(lambda got: len(got) >= wanted)
    by_phone = [
        e
        for e in events
        if e["type"] == "identity.linked" and e["identity"].get("linked_by") == "phone"
    ]
    assert len(by_phone) == (1 if link_by_phone else 0)


async def test_answers_are_what_the_openapi_document_says(gw: Any) -> None:
    from .test_openapi import conforms

    user = await create(gw, external_id="cust-1", metadata={"a": [1]})
    linked = await link(gw, user["id"], "wa-main", "16505551234")
    listed = await call(gw, "GET", f"/v1/users/{user['id']}/messages")
    refused = await call(gw, "POST", "/v1/users", {"locale": 1})
    for response, model in ((linked, "UserView"), (listed, "UserMessages"), (refused, "ErrorBody")):
        conforms(response.json(), model)
    conforms(user, "UserView")
