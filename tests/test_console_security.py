"""The console's guards: no page or API without a session, operator pages refused to agents,
changes refused without the session's CSRF token, wrong passwords slowed and logged, cookies
HttpOnly and SameSite=Strict, and no configured secret on any page."""

from __future__ import annotations

import json
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder

from .console_support import AGENT, HASHES, OPERATOR, console_gateway, logged_in
from .test_everywhere import sims  # noqa: F401  (the simulators fixture)

PAGES = [
    "/console",
    "/console/channels",
    "/console/trouble",
    "/console/composer",
    "/console/charts",
    "/console/conversations",
    "/console/conversations/conv_01J0000000000000000000000A",
    "/console/api/messages/msg_x",
    "/console/live",
]
OPERATOR_ONLY = ["/console/channels", "/console/trouble", "/console/composer", "/console/charts"]
CHANGES = [
    ("/console/api/preview", {"content": {"type": "text", "text": "hi"}}),
    ("/console/api/send", {"channel": "wa-main", "to": "15551234567", "content": {"type": "text", "text": "hi"}}),
    ("/console/trouble/inbox/1/replay", None),
    ("/console/trouble/dead/1/discard", None),
    ("/console/conversations/conv_01J0000000000000000000000A/join-visibly", None),
    ("/console/logout", None),
]  # fmt: skip


@pytest.fixture
async def gw(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder
) -> Any:
    return await console_gateway(tmp_path, start_gateway, sims, backend)


async def test_nothing_answers_without_a_session(gw: Any) -> None:
    async with httpx.AsyncClient(base_url=gw.url, follow_redirects=False) as anonymous:
        for path in PAGES:
            answer = await anonymous.get(path)
            assert answer.status_code in (303, 401), path
            if answer.status_code == 303:
                assert answer.headers["Location"] == "/console/login"
        for path, body in CHANGES:
            answer = await anonymous.post(path, json=body)
            assert answer.status_code == 401, path


async def test_an_agent_cannot_reach_operator_pages(gw: Any) -> None:
    agent, token = await logged_in(gw.url, AGENT)
    async with aclosing(agent):
        for path in OPERATOR_ONLY:
            assert (await agent.get(path)).status_code == 403, path
        headers = {"X-CSRF-Token": token}
        for path, body in CHANGES[:4]:
            assert (await agent.post(path, json=body, headers=headers)).status_code == 403, path
        assert (await agent.get("/console/conversations")).status_code == 200


async def test_changes_without_the_csrf_token_are_refused(gw: Any) -> None:
    operator, token = await logged_in(gw.url, OPERATOR)
    async with aclosing(operator):
        for path, body in CHANGES:
            missing = await operator.post(path, json=body)
            assert missing.status_code == 403, path
            assert "CSRF" in missing.text
            wrong = await operator.post(path, json=body, headers={"X-CSRF-Token": token[::-1]})
            assert wrong.status_code == 403, path
        form = await operator.post("/console/logout", data={"csrf": "not-it"})
        assert form.status_code == 403
        right = await operator.post(
            "/console/api/preview", json=CHANGES[0][1], headers={"X-CSRF-Token": token}
        )
        assert right.status_code == 200
        assert (await operator.get("/console/channels")).status_code == 200  # still logged in


async def test_a_wrong_password_is_slowed_and_logged(gw: Any) -> None:
    async with httpx.AsyncClient(base_url=gw.url, follow_redirects=False) as client:
        took = []
        for _ in range(3):
            started = time.monotonic()
            answer = await client.post(
                "/console/login", data={"name": OPERATOR[0], "password": "guess"}
            )
            took.append(time.monotonic() - started)
            assert answer.status_code == 401
            assert "wrong name or password" in answer.text
            assert "gateway_console" not in answer.headers.get("Set-Cookie", "")
        # No delay before the first failure; 0.5 s before the second, 1 s before the third.
        assert took[1] >= 0.5 and took[2] >= 1.0
    failures = [
        json.loads(line)
        for line in gw.logs.getvalue().splitlines()
        if "console_login_failed" in line
    ]
    assert [f["failures"] for f in failures] == [1, 2, 3]
    assert all(f["account"] == OPERATOR[0] for f in failures)
    assert "guess" not in gw.logs.getvalue()


async def test_the_session_cookie_is_http_only_and_strict(gw: Any) -> None:
    async with httpx.AsyncClient(base_url=gw.url, follow_redirects=False) as client:
        answer = await client.post("/console/login", data={"name": AGENT[0], "password": AGENT[1]})
        cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback; `secure_cookies` or HTTPS adds it
        headers = {"X-Forwarded-Proto": "https"}  # not trusted: the request itself was HTTP
        again = await client.post(
            "/console/login", data={"name": AGENT[0], "password": AGENT[1]}, headers=headers
        )
        assert "Secure" not in again.headers["Set-Cookie"]


async def test_no_configured_secret_appears_on_any_page(gw: Any) -> None:
    secrets = [*gw.secrets(), *HASHES.values()]
    operator, token = await logged_in(gw.url, OPERATOR)
    async with aclosing(operator):
        shown = [await operator.get(path) for path in [*OPERATOR_ONLY, "/console/conversations"]]
        preview = await operator.post(
            "/console/api/preview",
            json={
                "content": json.loads(
                    (Path(__file__).parent / "fixtures/messages/carousel.json").read_text()
                )
            },
            headers={"X-CSRF-Token": token},
        )
        shown.append(preview)
        for page in shown:
            assert page.status_code == 200
            for secret in secrets:
                assert secret not in page.text, f"a secret on {page.url}"


async def test_a_login_posted_from_another_site_is_refused(gw: Any) -> None:
    async with httpx.AsyncClient(base_url=gw.url, follow_redirects=False) as client:
        foreign = await client.post(
            "/console/login",
            data={"name": OPERATOR[0], "password": OPERATOR[1]},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403 and "Set-Cookie" not in foreign.headers
        own = await client.post(
            "/console/login",
            data={"name": OPERATOR[0], "password": OPERATOR[1]},
            headers={"Origin": gw.url},
        )
        assert own.status_code == 303
