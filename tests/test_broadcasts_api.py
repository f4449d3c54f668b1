"""Groups and broadcasts through the API: bad input is refused naming the field, an import
keeps its good rows and names each bad one by line, a key sees only its own, and a cancel
stops what has not left, with counts that say how many had."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from gateway.simulator.backend import BackendRecorder

from .broadcast_support import OTHER_KEY, ROAD_CLOSED, TEMPLATE, broadcast_gateway, received
from .conftest import API_KEY
from .test_everywhere import sims  # noqa: F401  (the simulators fixture)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
RATES = {"wa-main": 100, "fb-main": 100, "sms-main": 100, "line-main": 100, "vb-main": 100}


async def _gateway(
    tmp_path: Path, start_gateway: Any, sims: Any, backend: Any, **rates: float
) -> Any:
    return await broadcast_gateway(tmp_path, start_gateway, sims, backend, {**RATES, **rates})


def _problems(response: httpx.Response) -> dict[str, str]:
    return {p["field"]: p["message"] for p in response.json()["problems"]}


async def test_bad_broadcasts_are_refused_naming_the_field(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await _gateway(tmp_path, start_gateway, sims, backend)
    url = f"{gw.url}/v1/broadcasts"
    async with httpx.AsyncClient() as client:
        empty = await client.post(url, json={"members": [], "content": ROAD_CLOSED}, headers=AUTH)
        assert empty.status_code == 422 and "members" in _problems(empty)

        group = (await client.post(f"{gw.url}/v1/groups", json={}, headers=AUTH)).json()["id"]
        no_one = await client.post(
            url, json={"group_id": group, "content": ROAD_CLOSED}, headers=AUTH
        )
        assert no_one.status_code == 422 and no_one.json()["error"] == "empty_audience"

        unknown = await client.post(
            url, json={"group_id": "grp_nope", "content": ROAD_CLOSED}, headers=AUTH
        )
        assert unknown.status_code == 422 and unknown.json()["error"] == "group_not_found"
        # Another key's group is as unknown as one that never was.
        theirs = await client.post(
            url, json={"group_id": group, "content": ROAD_CLOSED}, headers=OTHER
        )
        assert theirs.status_code == 422 and theirs.json()["error"] == "group_not_found"

        member = [{"identity": {"channel": "wa-main", "id": "31612340000"}}]
        for template, field, message in (
            ({"wa-main": {"name": "summer_sale", "language": "nl"}}, "options.template.wa-main.name",
             "template 'summer_sale' is not configured for channel 'wa-main'"),
            ({"sms-main": TEMPLATE}, "options.template.sms-main", "channel 'sms-main' (sms) has no templates"),
            ({"tg-main": TEMPLATE}, "options.template.tg-main", "unknown channel 'tg-main'"),
        ):  # fmt: skip
            body = {"members": member, "content": ROAD_CLOSED, "options": {"template": template}}
            refused = await client.post(url, json=body, headers=AUTH)
            assert refused.status_code == 422 and _problems(refused) == {field: message}

        both = {"group_id": group, "members": member, "content": ROAD_CLOSED}
        assert (await client.post(url, json=both, headers=AUTH)).status_code == 422
        stranger = [{"user_id": "usr_not_mine"}]
        body = {"members": stranger, "content": ROAD_CLOSED}
        refused = await client.post(url, json=body, headers=AUTH)
        assert refused.status_code == 422 and _problems(refused) == {
            "members[0].user_id": "no user of this API key has this id"
        }
        off = {"members": [{"identity": {"channel": "nowhere", "id": "1"}}], "content": ROAD_CLOSED}
        assert "members[0].identity.channel" in _problems(
            await client.post(url, json=off, headers=AUTH)
        )
        missing = await client.get(f"{url}/bc_nope", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"] == "broadcast_not_found"


async def test_an_import_keeps_good_rows_and_names_each_bad_one_by_line(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await _gateway(tmp_path, start_gateway, sims, backend)
    async with httpx.AsyncClient() as client:
        user = (await client.post(f"{gw.url}/v1/users", json={}, headers=AUTH)).json()["id"]
        group = (
            await client.post(f"{gw.url}/v1/groups", json={"name": "Utrecht"}, headers=AUTH)
        ).json()["id"]
        csv = (
            "channel,id,user_id\n"          # line 1: the header
            "sms-main,+31612350001,\n"      # 2: good
            "fax-main,+31612350002,\n"      # 3: unknown channel
            ",,usr_someone_else\n"          # 4: not this key's user
            "sms-main,,\n"                  # 5: no id
            f",,{user}\n"                   # 6: good
            "\n"                            # 7: blank, skipped
            "sms-main,+31612350001,\n"      # 8: already there
            "wa-main,31612340001,extra,x\n" # 9: too many values
        )  # fmt: skip
        imported = await client.post(
            f"{gw.url}/v1/groups/{group}/members/import",
            content=csv.encode(),
            headers={**AUTH, "Content-Type": "text/csv"},
        )
        assert imported.status_code == 200, imported.text
        body = imported.json()
        assert (body["added"], body["already"], body["refused_total"]) == (2, 1, 4)
        assert [p["line"] for p in body["refused"]] == [3, 4, 5, 9]
        assert "unknown channel 'fax-main'" in body["refused"][0]["message"]
        assert "no user of this API key" in body["refused"][1]["message"]

        lines = (
            '{"identity": {"channel": "line-main", "id": "U0123"}}\n'
            "{not json\n"
            '{"user_id": "' + user + '"}\n'
        )
        jsonl = await client.post(
            f"{gw.url}/v1/groups/{group}/members/import",
            content=lines.encode(),
            headers={**AUTH, "Content-Type": "application/x-ndjson"},
        )
        assert jsonl.json()["added"] == 1 and jsonl.json()["already"] == 1
        assert [p["line"] for p in jsonl.json()["refused"]] == [2]

        first = await client.get(f"{gw.url}/v1/groups/{group}/members?limit=2", headers=AUTH)
        second = await client.get(
            f"{gw.url}/v1/groups/{group}/members?limit=2&cursor={first.json()['next_cursor']}",
            headers=AUTH,
        )
        listed = first.json()["members"] + second.json()["members"]
        assert "next_cursor" not in second.json()
        assert [m.get("user_id") or m["identity"]["id"] for m in listed] == [
            "+31612350001",
            user,
            "U0123",
        ]
        assert (await client.get(f"{gw.url}/v1/groups/{group}", headers=OTHER)).status_code == 404
        removed = await client.delete(
            f"{gw.url}/v1/groups/{group}/members", params={"user_id": user}, headers=AUTH
        )
        assert removed.status_code == 200 and removed.json()["size"] == 2
        bad_type = await client.post(
            f"{gw.url}/v1/groups/{group}/members/import",
            content=b"x",
            headers={**AUTH, "Content-Type": "text/plain"},
        )
        assert bad_type.status_code == 415


async def test_cancel_mid_way_stops_what_has_not_left(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> None:
    gw = await _gateway(tmp_path, start_gateway, sims, backend, **{"sms-main": 20.0})
    numbers = [f"+3161235{i:04d}" for i in range(200)]  # 10 s at 20 a second
    members = [{"identity": {"channel": "sms-main", "id": n}} for n in numbers]
    async with httpx.AsyncClient() as client:
        accepted = await client.post(
            f"{gw.url}/v1/broadcasts",
            json={"members": members, "content": ROAD_CLOSED},
            headers=AUTH,
        )
        assert accepted.status_code == 202
        broadcast_id = accepted.json()["id"]
        while len(sims["sms"].sent) < 30:
            await asyncio.sleep(0.02)
        cancelled = await client.post(f"{gw.url}/v1/broadcasts/{broadcast_id}/cancel", headers=AUTH)
        assert cancelled.status_code == 200
        at_answer = len(sims["sms"].sent)
        events = await backend.wait_for(
            lambda ev: any(e.get("broadcast_id") == broadcast_id for e in ev), timeout=15
        )
        await asyncio.sleep(1.0)  # anything still to leave would have by now, at 20 a second
        view = (
            await client.get(f"{gw.url}/v1/broadcasts/{broadcast_id}?limit=200", headers=AUTH)
        ).json()
        again = await client.post(f"{gw.url}/v1/broadcasts/{broadcast_id}/cancel", headers=AUTH)

    left = len(received(sims)["sms-main"])
    # Sends already let out when the cancel committed still land: a few, no more.
    assert left - at_answer <= 5 and left < 60, (at_answer, left)
    [done] = [e for e in events if e.get("broadcast_id") == broadcast_id]
    assert done["cancelled"] is True and view["state"] == "cancelled"
    counts = view["counts"]
    went = counts["sent"] + counts["delivered"] + counts["read"]
    assert went == left and counts["cancelled"] == 200 - left and counts["queued"] == 0
    assert again.status_code == 200  # cancelling again changes nothing
    assert sum(1 for m in view["members"] if m["state"] == "cancelled") == 200 - left
