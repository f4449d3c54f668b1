"""Properties: any message, planned by the engine for WeChat's real profile and rendered by the
WeChat adapter, gives custom-send bodies within WeChat's byte limits and keeps every choice
reachable (a msgmenu id, or a numbered answer); any text a user writes comes through safe
mode's encryption unchanged."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import SendContext
from adapters.wechat.crypto import aes_key, encrypt
from gateway.downgrade import plan
from gateway.schema import CONTENT_ADAPTER

from .test_downgrade_properties import messages, offered, reachable
from .wechat_support import APP_ID, ENCODING_AES_KEY, make_adapter

ADAPTER = make_adapter()
SAFE = make_adapter(safe=True)
CONTEXT = SendContext("msg_props", "oLVPpjqs9BhvzwPj5A-vTYAX3GLc", now=0.0, last_inbound_at=0.0)


def size(text: str) -> int:
    return len(text.encode())


def check_limits(body: dict[str, Any]) -> None:
    """WeChat's limits, restated in bytes (see adapters/wechat/ for the doc links)."""
    kind = body["msgtype"]
    if kind == "text":
        assert 1 <= size(body["text"]["content"]) <= 2048
    elif kind == "msgmenu":
        menu = body["msgmenu"]
        assert 1 <= len(menu["list"]) <= 10
        assert 1 <= size(menu["head_content"]) <= 1024 and size(menu["tail_content"]) <= 1024
        for item in menu["list"]:
            assert 1 <= size(item["id"]) <= 64 and 1 <= size(item["content"]) <= 128
    elif kind == "news":
        [article] = body["news"]["articles"]
        assert article["title"]
    else:
        assert kind == "image" and body["image"]["media_id"]


@settings(max_examples=300, deadline=None)
@given(messages())
def test_wechat_bodies_respect_limits_and_keep_every_choice(message: dict[str, Any]) -> None:
    planned = plan(CONTENT_ADAPTER.validate_python(message), ADAPTER.profile)
    requests = ADAPTER.render_parts(planned.parts, CONTEXT)
    native: set[str] = set()
    for request in requests:
        assert request.json is not None and request.json["touser"] == CONTEXT.recipient_id
        check_limits(request.json)
        if request.json["msgtype"] == "msgmenu":
            native |= {i["id"] for i in request.json["msgmenu"]["list"]}
    assert offered(message) <= native | {c.payload for c in planned.choices}
    assert offered(message) <= reachable(planned)


XML_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=500
).filter(lambda t: t.strip() and "]]>" not in t)


@settings(max_examples=200, deadline=None)
@given(text=XML_TEXT, random=st.binary(min_size=16, max_size=16))
def test_any_text_survives_safe_mode(text: str, random: bytes) -> None:
    push = (
        "<xml><ToUserName><![CDATA[gh_3f6f1b2a9c10]]></ToUserName>"
        "<FromUserName><![CDATA[oLVPpjqs9BhvzwPj5A-vTYAX3GLc]]></FromUserName>"
        f"<CreateTime>1748831860</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>24600172893145676</MsgId></xml>"
    ).encode()
    sealed = encrypt(aes_key(ENCODING_AES_KEY), push, APP_ID, random)
    body = f"<xml><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>".encode()
    [event] = SAFE.parse(body)
    assert event.draft.message is not None
    # XML normalises line ends (\r\n and \r become \n), as WeChat's own parser does.
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert event.draft.message.content.text == expected  # type: ignore[union-attr]
    assert event.dedupe_key == "msg:24600172893145676"
