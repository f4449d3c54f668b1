"""Property: whatever a backend sends, the Send API bodies for Messenger respect Meta's limits
(checked on the rendered JSON) and every choice offered stays reachable: as a postback button
or quick reply carrying its payload, or as a numbered choice."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import SendContext
from adapters.messenger import MessengerAdapter, MessengerConfig
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER
from gateway.simulator.messenger import validate

from .test_downgrade_properties import TITLE, messages, offered

ADAPTER = MessengerAdapter(
    MessengerConfig(
        id="fb-prop",
        type="messenger",
        page_id="107331552213590",
        page_access_token="fb-page-token-prop",
        app_secret="fb-app-secret-prop",
        verify_token="fb-verify-prop",
    )
)
NOW = 1_700_000_000.0
CONTEXT = SendContext("msg_prop", "6291474124214458", NOW, last_inbound_at=NOW - 60)
URL = "https://shop.example.com/p"
PHONES = st.sampled_from(["+4930123456", "0049 30 123456", "030 123456", "+1 (650) 555-1234"])


@st.composite
def actions(draw: Any, prefix: str, low: int = 0, high: int = 4) -> list[dict[str, Any]]:
    """Choices mixed with links, calls and payment links, as a backend might send them."""
    made: list[dict[str, Any]] = []
    for i in range(draw(st.integers(low, high))):
        title = draw(TITLE)
        kind = draw(st.sampled_from(["reply", "postback", "link", "call", "buy"]))
        if kind in ("reply", "postback"):
            made.append({"type": kind, "title": title, "payload": f"{prefix}{i}"})
        elif kind == "link":
            made.append({"type": "link", "title": title, "url": URL})
        elif kind == "call":
            made.append({"type": "call", "title": title, "phone": draw(PHONES)})
        else:
            made.append(
                {"type": "buy", "title": title, "amount": "9.50", "currency": "EUR", "url": URL}
            )
    return made


@st.composite
def rich_messages(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["buttons", "carousel", "image"]))
    replies = [a for a in draw(actions("Q", 0, 15)) if a["type"] in ("reply", "postback")]
    if kind == "buttons":
        return {
            "type": "buttons",
            "text": draw(st.text(min_size=1, max_size=900).filter(str.strip)),
            "header": draw(st.none() | TITLE),
            "media": draw(st.none() | st.just({"url": f"{URL}.jpg"})),
            "actions": draw(actions("B", 1, 5)),
            # No quick replies of its own: see test_button_choices_keep_their_quick_replies.
        }
    if kind == "image":
        caption = draw(st.none() | st.text(min_size=1, max_size=50))
        return {"type": "image", "media": {"url": f"{URL}.jpg"}, "caption": caption,
                "quick_replies": replies}  # fmt: skip
    return {
        "type": "carousel",
        "text": draw(st.none() | TITLE),
        "items": [
            {
                "title": draw(st.text(min_size=1, max_size=100).filter(str.strip)),
                "description": draw(st.none() | st.text(min_size=1, max_size=100)),
                "media": draw(
                    st.none()
                    | st.just({"url": f"{URL}/{n}.jpg"})
                    | st.just({"provider_media_id": "77"})
                ),
                "default_url": draw(st.none() | st.just(f"{URL}/{n}")),
                "actions": draw(actions(f"C{n}_")),
            }
            for n in range(draw(st.integers(1, 12)))
        ],
        "quick_replies": replies,
    }


def check_body(body: dict[str, Any]) -> set[str]:
    """Meta's limits on one Send API body; the payloads it carries."""
    validate(body)  # the simulator refuses what Meta refuses (counts, lengths, fields)
    message = body["message"]
    assert ("text" in message) != ("attachment" in message)  # one message per request
    payloads: set[str] = set()
    if "text" in message:
        assert 0 < len(message["text"]) <= 2000
    replies = message.get("quick_replies", [])
    assert len(replies) <= 13
    for reply in replies:
        assert reply["content_type"] == "text"
        assert 0 < len(reply["title"]) <= 20 and 0 < len(reply["payload"]) <= 1000
        payloads.add(reply["payload"])
    payload = message.get("attachment", {}).get("payload", {})
    buttons: list[dict[str, Any]] = []
    if payload.get("template_type") == "button":
        assert 0 < len(payload["text"]) <= 640 and 1 <= len(payload["buttons"]) <= 3
        buttons = payload["buttons"]
    elif payload.get("template_type") == "generic":
        assert 1 <= len(payload["elements"]) <= 10
        for element in payload["elements"]:
            assert 0 < len(element["title"]) <= 80 and len(element.get("subtitle", "")) <= 80
            assert len(element) > 1 and len(element.get("buttons", [])) <= 3
            buttons += element.get("buttons", [])
    for button in buttons:
        assert 0 < len(button["title"]) <= 20
        if button["type"] == "postback":
            assert 0 < len(button["payload"]) <= 1000
            payloads.add(button["payload"])
    return payloads


def check(message: dict[str, Any]) -> None:
    planned = plan(CONTENT_ADAPTER.validate_python(message), ADAPTER.profile)
    requests = ADAPTER.render_parts(planned.parts, CONTEXT)
    assert requests
    native: set[str] = set()
    for request in requests:
        assert (request.method, request.path) == ("POST", "/me/messages")
        assert request.json is not None
        native |= check_body(request.json)
    assert offered_choices(message) <= native | {c.payload for c in planned.choices}


def offered_choices(message: dict[str, Any]) -> set[str]:
    """`offered`, for messages whose actions also hold links and calls (no payload)."""

    def choices(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [a for a in found if a["type"] in ("reply", "postback")]

    return offered(
        {
            **message,
            "quick_replies": choices(message.get("quick_replies", [])),
            "actions": choices(message.get("actions", [])),
            "items": [{"actions": choices(i["actions"])} for i in message.get("items", [])],
        }
    )


@settings(max_examples=300, deadline=None)
@given(messages())
def test_engine_messages_render_within_limits_and_keep_every_choice(
    message: dict[str, Any],
) -> None:
    check(message)


@settings(max_examples=300, deadline=None)
@given(rich_messages())
def test_mixed_actions_render_within_limits_and_keep_every_choice(
    message: dict[str, Any],
) -> None:
    check(message)


def test_button_choices_keep_their_quick_replies() -> None:
    rates = [{"type": "reply", "title": f"{n} stars", "payload": f"RATE_{n}"} for n in range(1, 6)]
    later = [{"type": "reply", "title": "Later", "payload": "LATER"}]
    check({"type": "buttons", "text": "Rate us", "actions": rates, "quick_replies": later})
