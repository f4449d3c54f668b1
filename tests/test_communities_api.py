"""The communities API: a key sees only its own communities, and bad input is named
(docs/communities.md). The config file's communities are checked with the field's path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError
from gateway.logs import REDACTED, REDACTOR, get_logger

from .conftest import base_config, config_from
from .test_users_api import OTHER, OTHER_KEY, call

SUSHI: dict[str, Any] = {
    "name": "Sushi Lovers",
    "keywords": {"en": {"join": ["JOIN SUSHI"], "leave": ["LEAVE SUSHI"]}},
    "rules": {"en": "Be kind."},
}
MEMBER = {"identity": {"channel": "wa-main", "id": "16505551234"}, "display_name": "Kenji"}


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    data = base_config(tmp_path)
    data["api_keys"].append({"name": "couriers", "key": OTHER_KEY})
    return await start_gateway(config_from(data))


async def test_a_key_sees_and_moderates_only_its_communities(gw: Any) -> None:
    made = await call(gw, "POST", "/v1/communities", SUSHI)
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    assert made.json()["conversation_id"].startswith("conv_")
    joined = await call(gw, "POST", f"/v1/communities/{cid}/members", MEMBER)
    assert joined.status_code == 201, joined.text
    member = joined.json()["id"]

    listed = await call(gw, "GET", "/v1/communities", headers=OTHER)
    assert listed.json() == {"communities": []}
    for method, path, body in (
        ("GET", f"/v1/communities/{cid}", None),
        ("PATCH", f"/v1/communities/{cid}", SUSHI),
        ("GET", f"/v1/communities/{cid}/members", None),
        ("POST", f"/v1/communities/{cid}/members", MEMBER),
        ("POST", f"/v1/communities/{cid}/members/{member}/mute", {"seconds": 60}),
        ("POST", f"/v1/communities/{cid}/members/{member}/ban", {}),
        ("DELETE", f"/v1/communities/{cid}/members/{member}", None),
        ("GET", f"/v1/communities/{cid}/held", None),
    ):
        other = await call(gw, method, path, body, headers=OTHER)
        assert other.status_code == 404, (method, path, other.text)
        assert other.json()["error"] == "community_not_found"
    mine = await call(gw, "GET", f"/v1/communities/{cid}/members")
    assert [m["display_name"] for m in mine.json()["members"]] == ["Kenji"]


async def test_unknown_community_and_member_are_404(gw: Any) -> None:
    unknown = await call(gw, "GET", "/v1/communities/cmty_nope")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "community_not_found")
    cid = (await call(gw, "POST", "/v1/communities", SUSHI)).json()["id"]
    gone = await call(gw, "DELETE", f"/v1/communities/{cid}/members/par_nope")
    assert (gone.status_code, gone.json()["error"]) == (404, "member_not_found")
    held = await call(gw, "POST", f"/v1/communities/{cid}/held/mod_nope/release", {})
    assert held.status_code == 404


async def test_bad_input_names_the_field(gw: Any) -> None:
    stop = SUSHI | {"keywords": {"en": {"join": ["JOIN SUSHI", "STOP"]}}}
    refused = await call(gw, "POST", "/v1/communities", stop)
    assert refused.status_code == 422
    assert [p["field"] for p in refused.json()["problems"]] == ["keywords.en.join[1]"]
    no_join = SUSHI | {"keywords": {"en": {"leave": ["LEAVE SUSHI"]}}}
    assert (await call(gw, "POST", "/v1/communities", no_join)).status_code == 422
    await call(gw, "POST", "/v1/communities", SUSHI)
    taken = await call(gw, "POST", "/v1/communities", SUSHI, headers=OTHER)
    assert taken.status_code == 409
    assert taken.json()["problems"][0]["field"] == "keywords.en.join[0]"
    cid = (await call(gw, "GET", "/v1/communities")).json()["communities"][0]["id"]
    for body, field in (
        ({"display_name": "Kenji"}, "identity"),
        ({"identity": {"channel": "nope", "id": "1"}}, "identity.channel"),
    ):
        bad = await call(gw, "POST", f"/v1/communities/{cid}/members", body)
        assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == field
    joined = (await call(gw, "POST", f"/v1/communities/{cid}/members", MEMBER)).json()
    twice = await call(gw, "POST", f"/v1/communities/{cid}/members", MEMBER)
    assert twice.status_code == 409
    mute = await call(gw, "POST", f"/v1/communities/{cid}/members/{joined['id']}/mute", {})
    assert mute.status_code == 422 and mute.json()["problems"][0]["field"] == "seconds"


def test_bad_keyword_config_is_named_with_its_path(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["communities"] = [
        {"id": "sushi", **SUSHI},
        {"id": "ramen", "name": "Ramen", "keywords": {"en": {"join": ["join  sushi"]}}},
        {"id": "stop", "name": "Stop", "keywords": {"de": {"join": ["Stop Ramen"]}}},
    ]
    with pytest.raises(ConfigError) as refused:
        config_from(data)
    text = str(refused.value)
    assert "communities[1].keywords.en.join[0]: 'JOIN SUSHI' is also communities[0]" in text
    assert "communities[2].keywords.de.join[0]" in text and "opt-out" in text


MODERATION_SECRET = "sushi-moderation-secret-4f9a"


async def test_a_moderation_secret_given_through_the_api_is_redacted_and_never_answered(
    gw: Any, start_gateway: Any
) -> None:
    moderated = SUSHI | {
        "moderation": {"url": "https://mod.example.com/hook", "secret": MODERATION_SECRET}
    }
    made = await call(gw, "POST", "/v1/communities", moderated)
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    assert made.json()["moderation"] == {
        "url": "https://mod.example.com/hook", "timeout_seconds": 5.0, "on_timeout": "hold"}  # fmt: skip
    refused = moderated | {"moderation": moderated["moderation"] | {"timeout_seconds": 0}}
    answers = [
        made,
        await call(gw, "PATCH", f"/v1/communities/{cid}", moderated),
        await call(gw, "GET", f"/v1/communities/{cid}"),
        await call(gw, "GET", "/v1/communities"),
        await call(gw, "POST", "/v1/communities", refused),
    ]
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 422]
    assert all(MODERATION_SECRET not in a.text for a in answers)

    # Logged or served (a provider's error text quoting it): redacted like a config secret.
    get_logger("gateway.test").warning("echoed", detail=f"signed with {MODERATION_SECRET}")
    assert f"signed with {REDACTED}" in gw.logs.getvalue()
    assert MODERATION_SECRET not in gw.logs.getvalue()
    assert gw.gateway.redactor.text(MODERATION_SECRET) == REDACTED

    # A gateway started later on the same store redacts it too, before anything asks for it.
    again = await start_gateway(gw.gateway.config)
    assert again.gateway.redactor.text(MODERATION_SECRET) == REDACTED
    assert REDACTOR.text(MODERATION_SECRET) == REDACTED
