"""Preview: POST /v1/preview and `gateway render` show the exact provider requests and downgrades."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import main

from .conftest import API_KEY, base_config, config_from
from .test_openapi import conforms

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CAROUSEL = json.loads(
    (Path(__file__).parent / "fixtures" / "messages" / "carousel.json").read_text()
)


@pytest.fixture
async def gw(tmp_path: Path, start_gateway: Any) -> Any:
    return await start_gateway(config_from(base_config(tmp_path)))


async def test_preview_returns_requests_text_downgrades_and_choices(gw: Any) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/v1/preview", json={"content": CAROUSEL, "to": "16505551234"}, headers=AUTH
        )
    assert response.status_code == 200
    [whatsapp] = response.json()["previews"]
    assert whatsapp["channel"] == {"id": "wa-main", "type": "whatsapp"}
    bodies = [r["json"] for r in whatsapp["requests"]]
    assert all(r["path"] == "/106540352242922/messages" for r in whatsapp["requests"])
    assert all(b["to"] == "16505551234" for b in bodies)
    # WhatsApp's media carousel: one message, the text as its body, a card per item.
    [carousel] = [b["interactive"] for b in bodies]
    assert carousel["type"] == "carousel" and carousel["body"]["text"] == "Tonight's picks"
    cards = carousel["action"]["cards"]
    assert [c["header"]["image"]["link"] for c in cards] == [
        "https://cdn.example.com/margherita.jpg",
        "https://cdn.example.com/funghi.jpg",
        "https://cdn.example.com/diavola.jpg",
    ]
    assert cards[1]["body"]["text"] == "*Funghi*\nMushrooms, mozzarella"
    assert [c["action"]["buttons"][0]["quick_reply"]["id"] for c in cards] == [
        "ORDER_MARGHERITA",
        "ORDER_FUNGHI",
        "ORDER_DIAVOLA",
    ]
    assert whatsapp["choices"] == []  # every choice is a native button
    assert whatsapp["downgrades"] == []
    assert "Funghi" in whatsapp["text"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"content": {"type": "carousel", "items": []}}, 422, "content.items"),
        ({"content": {"type": "text", "text": "hi"}, "channels": ["nope"]}, 422, "channels"),
    ],
)
async def test_preview_rejects_bad_requests_naming_the_field(
    gw: Any, body: dict[str, Any], status: int, field: str
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/v1/preview", json=body, headers=AUTH)
    assert response.status_code == status
    assert field in [p["field"] for p in response.json()["problems"]]


async def test_preview_needs_an_api_key(gw: Any) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/v1/preview", json={"content": CAROUSEL})
    assert response.status_code == 401


def test_render_cli_without_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "message.json"
    path.write_text(json.dumps({"to": {"channel": "x", "id": "y"}, "content": CAROUSEL}))
    assert main(["render", "--channel", "whatsapp", "--to", "16505551234", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["requests"][0]["path"] == "/<phone_number_id>/messages"
    assert result["requests"][0]["json"]["to"] == "16505551234"
    cards = result["requests"][0]["json"]["interactive"]["action"]["cards"]
    buttons = [c["action"]["buttons"][0]["quick_reply"]["id"] for c in cards]
    assert buttons[:2] == ["ORDER_MARGHERITA", "ORDER_FUNGHI"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"type": "buttons", "text": "x"}', "message.json: actions: Field required"),
        ("{not json", "message.json: not valid JSON"),
    ],
)
def test_render_cli_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "message.json"
    path.write_text(content)
    assert main(["render", "--channel", "whatsapp", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_render_cli_unknown_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "message.json"
    path.write_text(json.dumps(CAROUSEL))
    assert main(["render", "--channel", "telegraph", str(path)]) == 2
    assert "unknown channel 'telegraph'" in capsys.readouterr().err


FORM = json.loads((Path(__file__).parent / "fixtures" / "messages" / "form.json").read_text())


async def test_a_form_preview_shows_each_question_with_its_checks(gw: Any) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gw.url}/v1/preview", json={"content": FORM, "to": "16505551234"}, headers=AUTH
        )
    assert response.status_code == 200, response.text
    conforms(response.json(), "PreviewResponse")
    [whatsapp] = response.json()["previews"]
    assert whatsapp.get("error") is None
    intro, size, email, note = whatsapp["form"]
    assert "field" not in intro and intro["text"] == "Delivery details\nThree quick questions."
    assert intro["requests"][0]["json"]["text"]["body"] == intro["text"]
    # The select goes as reply buttons, one per option, answered by a tap, a number or a title.
    assert size["field"] == {
        "name": "size",
        "type": "select",
        "required": True,
        "options": FORM["fields"][0]["options"],
        "accepts": "one of 1. Small (S), 2. Medium (M), 3. Large (L):"
        " tapped, or its number or title typed",
    }
    [buttons] = [r["json"]["interactive"] for r in size["requests"]]
    assert buttons["body"]["text"] == "(1/3) Which size?"
    assert [b["reply"]["id"] for b in buttons["action"]["buttons"]] == ["S", "M", "L"]
    assert (email["field"]["type"], email["field"]["accepts"]) == ("email", "an email address")
    assert email["text"] == "(2/3) Your email?"
    assert note["field"]["required"] is False
    assert note["text"] == "(3/3) Anything else? (optional: reply skip)"
    assert note["field"]["accepts"] == "any text, or 'skip'"
    # At once, the user gets the introduction and the first question, as a send does.
    assert whatsapp["requests"] == intro["requests"] + size["requests"]


def test_render_cli_shows_a_forms_questions_as_numbered_text_on_sms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "form.json"
    path.write_text(json.dumps(FORM))
    assert main(["render", "--channel", "sms", "--to", "+14155550100", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    intro, size, email, _note = result["form"]
    assert [r["form"]["Body"] for r in intro["requests"]] == [
        "Delivery details\nThree quick questions."
    ]
    [question] = [r["form"]["Body"] for r in size["requests"]]
    assert question.startswith("(1/3) Which size?\n1. Small\n2. Medium\n3. Large")
    assert size["downgrades"] == ["buttons → numbered_text: sms has no buttons"]
    assert size["choices"] == [
        {"number": 1, "title": "Small", "payload": "S"},
        {"number": 2, "title": "Medium", "payload": "M"},
        {"number": 3, "title": "Large", "payload": "L"},
    ]
    assert email["field"]["name"] == "email" and email["choices"] == []
    assert result["downgrades"] == size["downgrades"] and result["choices"] == size["choices"]
