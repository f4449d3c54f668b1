"""Finding and changing conversations: GET /v1/conversations with its filters and pages, and
PATCH /v1/conversations/{id}; each scoped to the key that created them, each bad parameter
named."""

from __future__ import annotations

from typing import Any

import pytest

from .test_conversations_api import COURIER, CUSTOMER, create, gw, participant, refused
from .test_users_api import AUTH, OTHER, call

__all__ = ["gw"]  # the fixture, shared


async def listed(gw: Any, **query: str) -> list[dict[str, Any]]:
    """Every conversation the query finds, page by page (two a page)."""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "2", **query}
    while True:
        response = await call(gw, "GET", "/v1/conversations", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["conversations"]) <= 2
        found += page["conversations"]
        if "next_cursor" not in page:
            return found
        params["cursor"] = page["next_cursor"]


def ids(conversations: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in conversations]


async def test_the_list_pages_newest_first_and_filters(gw: Any) -> None:
    user = (await call(gw, "POST", "/v1/users", {"name": "Jasper"})).json()
    await call(gw, "POST", f"/v1/users/{user['id']}/identities", COURIER)
    jasper = {"user_id": user["id"], "role": "courier", "display_name": "Jasper"}
    first = await create(gw, participant(CUSTOMER), metadata={"order_id": "1234"})
    second = await create(gw, participant(CUSTOMER), jasper, metadata={"order_id": 1235})
    third = await create(gw, jasper, metadata={"order_id": "1234", "city": "Lyon"})
    fourth = await create(gw, participant(CUSTOMER))
    await call(gw, "POST", f"/v1/conversations/{third['id']}/close")
    theirs = await create(gw, participant(CUSTOMER), metadata={"order_id": "1234"})
    # Not theirs: another key created it (the table below reads with AUTH's key).
    await call(gw, "POST", "/v1/conversations", {"participants": []}, OTHER)

    everything = await listed(gw)
    assert ids(everything) == [theirs["id"], fourth["id"], third["id"], second["id"], first["id"]]
    assert everything[2]["state"] == "closed" and everything[2]["metadata"]["city"] == "Lyon"
    expected = {
        (("state", "open"),): [theirs, fourth, second, first],
        (("state", "closed"),): [third],
        (("metadata[order_id]", "1234"),): [theirs, third, first],
        (("metadata[order_id]", "1235"),): [second],  # a number matches as written
        (("metadata[order_id]", "1234"), ("state", "open")): [theirs, first],
        (("metadata[order_id]", "1234"), ("metadata[city]", "Lyon")): [third],
        (("user_id", user["id"]),): [third, second],
        (("user_id", "usr_nobody"),): [],
    }
    for query, conversations in expected.items():
        assert ids(await listed(gw, **dict(query))) == ids(conversations), query


async def test_another_keys_conversations_are_not_listed(gw: Any) -> None:
    await create(gw)
    response = await call(gw, "GET", "/v1/conversations", None, OTHER)
    assert response.status_code == 200 and response.json() == {"conversations": []}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"state": "ended"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"cursor": "conv_x"}, "cursor"),
        ({"metadata[order id]": "1"}, "metadata[order id]"),
        ({"metadata[order_id]": "1" * 257}, "metadata[order_id]"),
        ({"user_id": ""}, "user_id"),
        ({"order_id": "1234"}, "order_id"),  # metadata[order_id] was meant
    ],
)
async def test_a_bad_list_parameter_is_named(gw: Any, query: dict[str, str], field: str) -> None:
    refused(await call(gw, "GET", "/v1/conversations", params=query), 422, field)


async def test_patch_replaces_or_clears_the_metadata_open_or_closed(gw: Any) -> None:
    made = await create(gw, metadata={"order_id": "1234"})
    path = f"/v1/conversations/{made['id']}"
    changed = await call(gw, "PATCH", path, {"metadata": {"order_id": "1234", "eta": "10 min"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["metadata"] == {"order_id": "1234", "eta": "10 min"}
    assert (await call(gw, "PATCH", path, {})).json()["metadata"]["eta"] == "10 min"
    await call(gw, "POST", f"{path}/close")
    cleared = await call(gw, "PATCH", path, {"metadata": None})
    assert cleared.status_code == 200 and "metadata" not in cleared.json()
    assert cleared.json()["state"] == "closed"
    assert (await call(gw, "GET", path)).json() == cleared.json()


async def test_patch_refusals(gw: Any) -> None:
    made = await create(gw)
    path = f"/v1/conversations/{made['id']}"
    refused(await call(gw, "PATCH", path, {"metadata": "1234"}), 422, "metadata")
    refused(await call(gw, "PATCH", path, {"mode": "hub"}), 422, "mode")
    for cid, headers in ((made["id"], OTHER), ("conv_nobody", AUTH)):
        response = await call(gw, "PATCH", f"/v1/conversations/{cid}", {"metadata": {}}, headers)
        assert response.status_code == 404 and response.json()["error"] == "conversation_not_found"
