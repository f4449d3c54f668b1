"""The OpenAPI document: valid OpenAPI 3.1, the app's routes exactly, and what the handlers
really answer matches the schemas it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from gateway.app import Gateway
from gateway.http.openapi import openapi

from .conftest import API_KEY, base_config, config_from

AUTH = {"Authorization": f"Bearer {API_KEY}"}
TEXT = {
    "to": {"channel": "wa-main", "id": "16505551234"},
    "content": {"type": "text", "text": "Your order is on its way"},
}


_METHODS = ("GET", "POST", "PATCH", "DELETE")


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(openapi())  # raises, naming the first problem


async def test_its_paths_are_the_apps_routes(tmp_path: Path) -> None:
    gateway = Gateway(config_from(base_config(tmp_path)))
    try:
        routes = {
            (route.method.lower(), route.resource.canonical)
            for route in gateway.application().router.routes()
            if route.method in _METHODS and route.resource is not None
        }
    finally:
        await gateway.http.aclose()
    documented = {
        (method, path)
        for path, item in openapi()["paths"].items()
        for method in item
        if method.upper() in _METHODS
    }
    assert documented == routes


def conforms(body: Any, model: str) -> None:
    document = openapi()
    schema = {"$ref": f"#/components/schemas/{model}", "components": document["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    return await start_gateway(config_from(base_config(tmp_path)))


async def test_what_the_api_answers_is_what_the_document_says(gw: Any) -> None:
    async with httpx.AsyncClient(base_url=gw.url) as client:
        served = (await client.get("/openapi.json")).json()
        accepted = await client.post("/v1/messages", json=TEXT, headers=AUTH)
        view = await client.get(f"/v1/messages/{accepted.json()['id']}", headers=AUTH)
        invalid = await client.post("/v1/messages", json={"to": {}}, headers=AUTH)
        unauthorized = await client.get("/v1/messages/msg_x")
        preview = await client.post(
            "/v1/preview", json={"content": TEXT["content"], "channels": ["wa-main"]}, headers=AUTH
        )
    assert served == openapi()
    cases = [
        (accepted, 202, "MessageAccepted"),
        (view, 200, "MessageView"),
        (invalid, 422, "ErrorBody"),
        (unauthorized, 401, "ErrorBody"),
        (preview, 200, "PreviewResponse"),
    ]
    for response, status, model in cases:
        assert response.status_code == status, response.text
        operation_codes = {
            code
            for item in served["paths"].values()
            for operation in item.values()
            if isinstance(operation, dict)
            for code in operation.get("responses", {})
        }
        assert str(status) in operation_codes
        conforms(response.json(), model)


def test_the_backend_webhook_is_an_event_batch() -> None:
    from gateway.schema import ChannelRef, Event, EventBatch, Party

    event = Event(
        id="evt_1",
        type="message",
        channel=ChannelRef(id="wa-main", type="whatsapp"),
        timestamp="2026-12-03T18:00:00Z",  # type: ignore[arg-type]
        sender=Party(id="16505551234"),
        message={"content": {"type": "text", "text": "hi"}},  # type: ignore[arg-type]
    )
    conforms(EventBatch(events=[event]).model_dump(mode="json", exclude_none=True), "EventBatch")
    hook = openapi()["webhooks"]["events"]["post"]
    assert {p["name"] for p in hook["parameters"]} == {
        "X-Gateway-Signature",
        "X-Gateway-Delivery",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }


async def test_what_the_api_refuses_the_document_refuses_too(gw: Any) -> None:
    """Found by schemathesis: union members carry their `type` tag with a default, so the
    generated schema left it optional, while the API needs it to pick the member."""
    untagged = {"to": TEXT["to"], "content": {"text": "no type"}}
    async with httpx.AsyncClient(base_url=gw.url) as client:
        refused = await client.post("/v1/messages", json=untagged, headers=AUTH)
    assert refused.status_code == 422
    with pytest.raises(jsonschema.ValidationError):
        conforms(untagged, "SendMessage")
    conforms(TEXT, "SendMessage")  # and the tagged one passes


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"type": "audio", "media": {}}, "content.media"),
        (
            {
                "type": "form",
                "title": "Rate us",
                "fields": [{"name": "n", "label": "Name", "type": "text", "required": 0}],
            },
            "content.fields[0].required",
        ),
        ({"type": "location", "latitude": 52.5, "longitude": False}, "content.longitude"),
    ],
    ids=["media without a source", "a number for a boolean", "a boolean for a number"],
)
async def test_refused_alike_by_the_api_and_the_document(
    gw: Any, content: dict[str, Any], field: str
) -> None:
    """Found by schemathesis: the document allowed what the API refused, or the reverse."""
    body = {"to": TEXT["to"], "content": content}
    async with httpx.AsyncClient(base_url=gw.url) as client:
        refused = await client.post("/v1/messages", json=body, headers=AUTH)
    assert refused.status_code == 422
    assert [p["field"] for p in refused.json()["problems"]] == [field]
    with pytest.raises(jsonschema.ValidationError):
        conforms(body, "SendMessage")
