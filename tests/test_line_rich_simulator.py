"""The LINE simulator refuses rich messages the way LINE does: quick replies, buttons,
confirm and carousel templates (counts, lengths, required fields, consistent columns).

https://developers.line.biz/en/reference/messaging-api/#quick-reply
https://developers.line.biz/en/reference/messaging-api/#template-messages
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.simulator.line import Invalid, validate_messages

FIXTURES = Path(__file__).parent / "fixtures" / "line"
GOLDEN = json.loads((FIXTURES / "golden.json").read_text())


def postback(label: str = "Yes", data: str = "yes", **extra: Any) -> dict[str, Any]:
    return {"type": "postback", "label": label, "data": data, **extra}


def buttons(**template: Any) -> dict[str, Any]:
    body = {"type": "buttons", "text": "Pick one", "actions": [postback()], **template}
    return {"type": "template", "altText": "Pick one", "template": body}


def column(**fields: Any) -> dict[str, Any]:
    return {"title": "Fern", "text": "Loves shade", "actions": [postback()], **fields}


def carousel(*columns: dict[str, Any]) -> dict[str, Any]:
    template = {"type": "carousel", "columns": list(columns)}
    return {"type": "template", "altText": "Plants", "template": template}


def quick(*actions: dict[str, Any]) -> dict[str, Any]:
    items = [{"type": "action", "action": a} for a in actions]
    return {"type": "text", "text": "Deliver?", "quickReply": {"items": items}}


def error(prop: str, message: str) -> dict[str, str]:
    return {"message": message, "property": f"messages[0].{prop}"}


INVALID: dict[str, tuple[dict[str, Any], list[dict[str, str]]]] = {
    "template_without_alt_text": (
        {"type": "template", "template": buttons()["template"]},
        [error("altText", "May not be empty")],
    ),
    "alt_text_over_400": (
        {**buttons(), "altText": "a" * 401},
        [error("altText", "Length must be between 0 and 400")],
    ),
    "five_buttons": (
        buttons(actions=[postback(data=str(i)) for i in range(5)]),
        [error("template.actions", "Size must be between 1 and 4")],
    ),
    "buttons_text_over_60_with_a_title": (
        buttons(title="Fern", text="x" * 61),
        [error("template.text", "Length must be between 0 and 60")],
    ),
    "buttons_text_over_160": (
        buttons(text="x" * 161),
        [error("template.text", "Length must be between 0 and 160")],
    ),
    "buttons_title_over_40_and_http_thumbnail": (
        buttons(title="t" * 41, thumbnailImageUrl="http://e.x/a.jpg"),
        [
            error("template.thumbnailImageUrl", "must be a URL starting with https://"),
            error("template.title", "Length must be between 0 and 40"),
        ],
    ),
    "label_over_20_graphemes_and_data_over_300": (
        buttons(actions=[postback(label="l" * 21, data="d" * 301)]),
        [
            error("template.actions[0].label", "Length must be between 0 and 20"),
            error("template.actions[0].data", "Length must be between 0 and 300"),
        ],
    ),
    "uri_with_another_scheme": (
        buttons(actions=[{"type": "uri", "label": "Go", "uri": "ftp://e.x/a"}]),
        [error("template.actions[0].uri", "must be an http, https, line or tel URI")],
    ),
    "location_action_in_a_template": (
        buttons(actions=[{"type": "location", "label": "Where"}]),
        [error("template.actions[0].type", "action type 'location' is not allowed here")],
    ),
    "eleven_columns": (
        carousel(*[column() for _ in range(11)]),
        [error("template.columns", "Size must be between 1 and 10")],
    ),
    "columns_with_different_action_counts": (
        carousel(column(), column(actions=[postback(), postback(data="no")])),
        [error("template.columns", "All columns must have the same number of actions")],
    ),
    "columns_mixing_images_and_titles": (
        carousel(
            column(thumbnailImageUrl="https://e.x/a.jpg"), {"text": "x", "actions": [postback()]}
        ),
        [
            error("template.columns", "thumbnailImageUrl must be set in all columns or none"),
            error("template.columns", "title must be set in all columns or none"),
        ],
    ),
    "column_text_over_60_with_title_and_over_120_without": (
        carousel(column(text="x" * 61), column(title=None, text="x" * 121)),
        [
            error("template.columns[0].text", "Length must be between 0 and 60"),
            error("template.columns[1].text", "Length must be between 0 and 120"),
            error("template.columns", "title must be set in all columns or none"),
        ],
    ),
    "column_with_four_actions": (
        carousel(column(actions=[postback(data=str(i)) for i in range(4)])),
        [error("template.columns[0].actions", "Size must be between 1 and 3")],
    ),
    "column_without_actions": (
        carousel(column(actions=[])),
        [error("template.columns[0].actions", "Size must be between 1 and 3")],
    ),
    "fourteen_quick_replies": (
        quick(*[postback(data=str(i), displayText="Yes") for i in range(14)]),
        [error("quickReply.items", "Size must be between 1 and 13")],
    ),
    "quick_reply_postback_without_display_text": (
        quick(postback()),
        [error("quickReply.items[0].action.displayText", "May not be empty")],
    ),
    "quick_reply_location_without_label": (
        quick({"type": "location"}),
        [error("quickReply.items[0].action.label", "May not be empty")],
    ),
    "confirm_with_one_action": (
        {
            "type": "template",
            "altText": "Sure?",
            "template": {"type": "confirm", "text": "Sure?", "actions": [postback()]},
        },
        [error("template.actions", "Size must be between 2 and 2")],
    ),
}


@pytest.mark.parametrize(("message", "details"), INVALID.values(), ids=INVALID.keys())
def test_rich_messages_line_refuses(message: dict[str, Any], details: list[dict[str, str]]) -> None:
    with pytest.raises(Invalid) as caught:
        validate_messages([message])
    assert caught.value.details == details
    assert caught.value.message == f"The request body has {len(details)} error(s)"


VALID = {
    "buttons_with_image_title_and_every_action": buttons(
        thumbnailImageUrl="https://e.x/a.jpg",
        title="t" * 40,
        text="🌱" * 60,  # 60 graphemes (120 UTF-16 units): templates count graphemes
        actions=[
            postback(label="l" * 20, data="d" * 300),
            {"type": "uri", "label": "Call", "uri": "tel:+14155550100"},
            {"type": "uri", "label": "Open", "uri": "https://e.x/"},
            {"type": "message", "label": "Hi", "text": "Hi"},
        ],
    ),
    "ten_columns_with_images": carousel(
        *[column(thumbnailImageUrl=f"https://e.x/{i}.jpg") for i in range(10)]
    ),
    "columns_without_titles": carousel(
        {"text": "x" * 120, "actions": [postback()]}, {"text": "y", "actions": [postback()]}
    ),
    "thirteen_quick_replies_with_location": quick(
        *[postback(data=str(i), displayText="Yes") for i in range(12)],
        {"type": "location", "label": "Send location"},
    ),
}


@pytest.mark.parametrize("message", VALID.values(), ids=VALID.keys())
def test_rich_messages_line_accepts(message: dict[str, Any]) -> None:
    validate_messages([message])


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_golden_request_is_accepted(name: str) -> None:
    for request in GOLDEN[name].get("requests", []):
        validate_messages(request["json"]["messages"])
