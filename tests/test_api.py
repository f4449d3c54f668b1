"""Backend API: authentication, validation naming each bad field, idempotency, message view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import API_KEY, base_config, config_from

AUTH = {"Authorization": f"Bearer {API_KEY}"}
TEXT = {
    "to": {"channel": "wa-main", "id": "16505551234"},
    "content": {"type": "text", "text": "Your order is ready"},
}


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    return await start_gateway(config_from(base_config(tmp_path)))


async def post(gw: Any, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        if isinstance(body, bytes):
            return await client.post(
                f"{gw.url}/v1/messages", content=body, headers={**AUTH, **(headers or {})}
            )
        return await client.post(
            f"{gw.url}/v1/messages", json=body, headers=headers if headers is not None else AUTH
        )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Bearer wrong-key-wrong-key"}, "unknown API key"),
        ({"Authorization": f"Basic {API_KEY}"}, "Authorization: Bearer"),
    ],
)
async def test_missing_or_wrong_key_is_401(gw: Any, headers: dict[str, str], message: str) -> None:
    response = await post(gw, TEXT, headers)
    assert response.status_code == 401
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"to": {"channel": "wa-main", "id": "1"}, "content": {"type": "text"}}, ["content.text"]),
        ({"to": {"channel": "wa-main"}, "content": {"type": "text", "text": "x"}}, ["to.id"]),
        ({"to": {"channel": "wa-main", "id": "1"}, "content": {"type": "hologram"}}, ["content"]),
        (
            {
                "to": {"channel": "wa-main", "id": "1"},
                "content": {
                    "type": "buttons",
                    "text": "Pick",
                    "actions": [
                        {"type": "reply", "title": "A", "payload": "a"},
                        {"type": "link", "title": "B"},
                    ],
                },
            },
            ["content.actions[1].url"],
        ),
        (
            {"to": {"channel": "wa-main", "id": "1"}, "content": {"type": "image", "media": {}}},
            ["content.media"],
        ),
        (
            {
                "to": {"channel": "wa-main", "id": "1"},
                "content": {"type": "location", "latitude": 91, "longitude": 0},
            },
            ["content.latitude"],
        ),
        (
            {"to": {"channel": "sms-x", "id": "1"}, "content": {"type": "text", "text": "x"}},
            ["to.channel"],
        ),
        (  # no provider id holds a control character; PostgreSQL cannot even store NUL
            {
                "to": {"channel": "wa-main", "id": "1650\x00555"},
                "content": {"type": "text", "text": "x"},
            },
            ["to.id"],
        ),
        (
            {
                "to": {"channel": "wa-main", "id": "1" * 257},
                "content": {"type": "text", "text": "x"},
            },
            ["to.id"],
        ),
    ],
)
async def test_invalid_content_is_422_naming_each_field(
    gw: Any, body: dict[str, Any], fields: list[str]
) -> None:
    response = await post(gw, body)
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == fields


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (b"{not json", None, "malformed_json"),
        (b"\xff\xfe{}", None, "malformed_json"),  # not UTF-8
        (b"[" * 5000 + b"]" * 5000, None, "malformed_json"),  # deeper than any parser goes
        (b"not gzip", {"Content-Encoding": "gzip"}, "unreadable_body"),
    ],
    ids=["not JSON", "not UTF-8", "nested too deeply", "broken Content-Encoding"],
)
async def test_a_body_that_cannot_be_read_as_json_is_400(
    gw: Any, body: bytes, headers: dict[str, str] | None, code: str
) -> None:
    response = await post(gw, body, headers)
    assert response.status_code == 400
    assert response.json()["error"] == code


async def test_a_body_over_the_limit_is_a_json_413(gw: Any) -> None:
    response = await post(gw, b'{"text": "' + b"x" * 2_000_000 + b'"}')
    assert response.status_code == 413
    assert response.json() == {
        "error": "body_too_large",
        "message": "the body exceeds server.max_body_bytes",
    }


async def test_accepted_message_is_queued_and_viewable(gw: Any) -> None:
    response = await post(gw, TEXT)
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued" and accepted["id"].startswith("msg_")
    async with httpx.AsyncClient() as client:
        view = (await client.get(f"{gw.url}/v1/messages/{accepted['id']}", headers=AUTH)).json()
        missing = await client.get(f"{gw.url}/v1/messages/msg_nope", headers=AUTH)
    assert view["to"] == TEXT["to"]
    assert view["content"]["text"] == "Your order is ready"
    assert view["history"][0]["state"] == "queued"
    assert missing.status_code == 404


OTHER_KEY = "billing-api-key-abcdefgh"
ADMIN_KEY = "console-api-key-ijklmnop"


async def test_a_key_reads_only_its_own_messages_unless_it_reads_all(
    tmp_path: Path, start_gateway: Any
) -> None:
    keys = [
        {"name": "orders", "key": API_KEY},
        {"name": "billing", "key": OTHER_KEY},
        {"name": "console", "key": ADMIN_KEY, "scopes": ["read_all"]},
    ]
    gw = await start_gateway(config_from(base_config(tmp_path, api_keys=keys)))
    ids = [
        (await post(gw, TEXT, {"Authorization": f"Bearer {k}"})).json()["id"]
        for k in (API_KEY, OTHER_KEY)
    ]

    async def status(key: str, message_id: str) -> int:
        async with httpx.AsyncClient() as client:
            url = f"{gw.url}/v1/messages/{message_id}"
            return (await client.get(url, headers={"Authorization": f"Bearer {key}"})).status_code

    assert [await status(API_KEY, i) for i in ids] == [200, 404]
    assert [await status(OTHER_KEY, i) for i in ids] == [404, 200]
    assert [await status(ADMIN_KEY, i) for i in ids] == [200, 200]
    other = (await status(API_KEY, ids[1]), await status(API_KEY, "msg_never_was"))
    assert other == (404, 404)  # another client's message looks like none at all


async def test_idempotency_keys_stay_per_api_key(tmp_path: Path, start_gateway: Any) -> None:
    keys = [{"name": "orders", "key": API_KEY}, {"name": "billing", "key": OTHER_KEY}]
    gw = await start_gateway(config_from(base_config(tmp_path, api_keys=keys)))
    same = {"Idempotency-Key": "order-1234-ready"}
    first = await post(gw, TEXT, {**AUTH, **same})
    second = await post(gw, TEXT, {"Authorization": f"Bearer {OTHER_KEY}", **same})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]


async def test_idempotency_key_returns_the_same_message(gw: Any) -> None:
    headers = {**AUTH, "Idempotency-Key": "order-1234-ready"}
    first = await post(gw, TEXT, headers)
    again = await post(gw, TEXT, headers)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    changed = await post(gw, {**TEXT, "content": {"type": "text", "text": "other"}}, headers)
    assert changed.status_code == 409
    count = await gw.store.db.run(lambda tx: tx.one("SELECT COUNT(*) FROM messages"))
    assert count[0] == 1


@pytest.mark.parametrize("method", ["create_message", "get_message"])
async def test_a_store_failure_is_503_not_a_crash(
    gw: Any, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    async def failing(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(gw.store, method, failing)
    async with httpx.AsyncClient() as client:
        if method == "create_message":
            response = await client.post(f"{gw.url}/v1/messages", json=TEXT, headers=AUTH)
        else:
            response = await client.get(f"{gw.url}/v1/messages/msg_1", headers=AUTH)
    assert response.status_code == 503
    assert response.json() == {
        "error": "store_unavailable",
        "message": "the request was not carried out; retry later",
    }
    assert '"api_store_failed"' in gw.logs.getvalue()


async def test_a_bug_is_500_with_its_traceback_logged_not_a_store_error(
    gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.http.api

    def broken(*_args: Any) -> None:
        raise ValueError("a bug in rendering")

    monkeypatch.setattr(gateway.http.api, "preview", broken)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/v1/preview", json={"content": TEXT["content"]}, headers=AUTH
        )
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    logs = gw.logs.getvalue()
    assert '"api_failed"' in logs and "a bug in rendering" in logs and "Traceback" in logs


@pytest.mark.parametrize("action", ["location_request", "share"])
async def test_an_empty_action_title_is_named_not_rendered(gw: Any, action: str) -> None:
    """Found by schemathesis: an empty location-request title reached the renderer as an
    empty message body, which the WhatsApp and LINE renderers refuse."""
    content = {**TEXT["content"], "quick_replies": [{"type": action, "title": ""}]}
    response = await post(gw, {**TEXT, "content": content})
    assert response.status_code == 422
    [problem] = response.json()["problems"]
    assert problem["field"].endswith(".title")


def test_store_errors_are_told_from_bugs() -> None:
    import sqlite3

    import psycopg

    from gateway.store import StoreUnavailable, is_store_error

    assert is_store_error(sqlite3.OperationalError("database or disk is full"))
    assert is_store_error(OSError(28, "No space left on device"))
    assert is_store_error(psycopg.OperationalError("server closed the connection"))
    assert is_store_error(StoreUnavailable("store is closed"))
    assert not is_store_error(ValueError("a bug"))
    assert not is_store_error(KeyError("a bug"))


def nested(depth: int) -> str:
    """A JSON object `depth` levels deep, as text (json.dumps recurses: it cannot write one)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def raw_message(content: str, metadata: str = "null") -> bytes:
    to = '{"channel": "wa-main", "id": "16505551234"}'
    return f'{{"to": {to}, "content": {content}, "metadata": {metadata}}}'.encode()


TEXT_JSON = '{"type": "text", "text": "x"}'
REPLY = {"type": "reply", "title": "A", "payload": "a"}


@pytest.mark.parametrize(
    ("body", "field", "limit"),
    [
        (raw_message(TEXT_JSON, nested(17)), "metadata", "deeper than 16 levels"),
        (raw_message(TEXT_JSON, nested(256)), "metadata", "deeper than 16 levels"),  # was a 500
        (raw_message(TEXT_JSON, nested(1000)), "metadata", "deeper than 16 levels"),
        (
            raw_message(TEXT_JSON, json.dumps({"notes": "x" * 17_000})),
            "metadata",
            "at most 16,384 bytes",
        ),
        (
            raw_message(json.dumps({"type": "text", "text": "x" * 50_001})),
            "content.text",
            "at most 50,000 characters",
        ),
        (
            raw_message(json.dumps({"type": "text", "text": "x" * 1_000_000})),
            "content.text",
            "at most 50,000 characters",
        ),
        (
            raw_message(json.dumps({"type": "text", "text": "x", "quick_replies": [REPLY] * 51})),
            "content.quick_replies",
            "at most 50 items",
        ),
        (
            raw_message(
                json.dumps({"type": "carousel", "items": [{"title": "t", "actions": [REPLY]}] * 31})
            ),
            "content.items",
            "at most 30 items",
        ),
        (
            raw_message(
                json.dumps(
                    {"type": "buttons", "text": "x", "actions": [{**REPLY, "payload": "p" * 1001}]}
                )
            ),
            "content.actions[0].payload",
            "at most 1,000 characters",
        ),
        (
            raw_message(
                '{"type": "template", "template": {"name": "n", "language": "en",'
                f' "components": [{nested(900)}]}}}}'
            ),
            "content.template.components[0]",
            "deeper than 16 levels",
        ),
        (
            raw_message(f'{{"type": "form_response", "form_id": "f", "values": {nested(600)}}}'),
            "content.values",
            "deeper than 16 levels",
        ),
        (  # each field within its bound, too much in all: it planned for a second per channel
            raw_message(
                json.dumps(
                    {
                        "type": "buttons",
                        "text": "x",
                        "actions": [{**REPLY, "title": "t" * 1000, "payload": "p" * 1000}] * 50,
                    }
                )
            ),
            "content",
            "at most 65,536 characters of JSON in all",
        ),
    ],
    ids=[
        "metadata 17 deep",
        "metadata 256 deep",
        "metadata 1000 deep",
        "metadata 17 KB",
        "text 50,001",
        "text a million",
        "51 quick replies",
        "31 cards",
        "payload 1,001",
        "template component 900 deep",
        "form answers 600 deep",
        "content 100 KB",
    ],
)
async def test_input_past_a_bound_is_422_naming_the_field_and_the_limit(
    gw: Any, body: bytes, field: str, limit: str
) -> None:
    response = await post(gw, body)
    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert problem["field"] == field and limit in problem["message"]


async def test_input_at_the_bounds_is_accepted(gw: Any) -> None:
    content = {"type": "text", "text": "x" * 50_000, "quick_replies": [REPLY] * 50}
    metadata = json.loads(nested(16))
    response = await post(gw, {**TEXT, "content": content, "metadata": metadata})
    assert response.status_code == 202, response.text


async def test_a_preview_past_a_bound_is_422_not_a_blocked_loop(gw: Any) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/v1/preview",
            json={"content": {"type": "text", "text": "x" * 1_000_000}},
            headers=AUTH,
        )
    assert response.status_code == 422
    assert response.json()["problems"][0]["field"] == "content.text"


async def test_json_nested_past_any_parser_is_400_wherever_it_is(gw: Any) -> None:
    for body in (
        raw_message(TEXT_JSON, nested(5000)),
        raw_message(f'{{"type": "form_response", "form_id": "f", "values": {nested(5000)}}}'),
    ):
        response = await post(gw, body)
        assert response.status_code == 400 and response.json()["error"] == "malformed_json"
