"""The example page in a real headless browser (Debian's chromium, tests/browser.py): a user
logs in with a token, gets a carousel natively, taps a card, fills a form, sees typing and
read state, reloads and sees nothing lost or doubled. Screenshots: tests/artifacts/web_*.png."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.simulator.backend import BackendRecorder

from .browser import browser_page, screenshot
from .conftest import config_from, with_backend
from .test_web_channel import CAROUSEL, FORM, message_state
from .web_support import AUTH, CHANNEL, send, token, web_config

__all__ = ["browser_page"]  # the fixture, used below by name


@pytest.fixture
async def stack(tmp_path: Path, start_gateway: Any, backend: BackendRecorder) -> Any:
    return await start_gateway(config_from(with_backend(web_config(tmp_path), backend)))


async def action(url: str, user: str, **body: Any) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/v1/web/actions", headers=AUTH,
                                   json={"channel": CHANNEL, "user": user, **body})  # fmt: skip
    assert answer.status_code == 202, answer.text


def events_of(backend: BackendRecorder, kind: str) -> list[dict[str, Any]]:
    return [e for e in backend.events if e["type"] == kind]


async def test_a_user_chats_on_the_example_page(
    stack: Any, backend: BackendRecorder, browser_page: Any
) -> None:
    page = browser_page
    user_token = await token(stack.url, "courier_7")
    await page.goto(f"{stack.url}/web/example?token={user_token}")
    await page.wait_for_selector("#state:has-text('online')")

    # A carousel arrives as cards, not as text.
    carousel_id = await send(stack.url, "courier_7", CAROUSEL)
    await page.wait_for_selector(".card >> nth=1")
    assert await page.locator(".card h4").all_inner_texts() == ["Margherita", "Diavola"]
    await message_state(stack.url, carousel_id, "read")  # the page acked it and, visible, read it
    await screenshot(page, "web_carousel")

    # Tapping the second card's button is the backend's postback.
    await page.locator(".card").nth(1).get_by_role("button", name="Order").click()
    await backend.wait_for(lambda _: len(events_of(backend, "postback")) == 1)
    [postback] = events_of(backend, "postback")
    assert postback["postback"]["payload"] == "ORDER_DIAVOLA"
    assert postback["sender"]["id"] == "courier_7"

    # A form is shown whole and answered in one form_response.
    form_id = await send(stack.url, "courier_7", FORM)
    await page.wait_for_selector("form.form")
    await page.fill("form.form input[name=address]", "1 Main St")
    await page.select_option("form.form select[name=size]", "L")
    await page.click("form.form button[type=submit]")

    def answered(_: Any) -> bool:
        return any(
            e["message"]["content"]["type"] == "form_response"
            for e in events_of(backend, "message")
        )

    await backend.wait_for(answered)
    response = next(
        e
        for e in events_of(backend, "message")
        if e["message"]["content"]["type"] == "form_response"
    )
    assert response["message"]["content"]["form_id"] == form_id
    assert response["message"]["content"]["values"] == {"address": "1 Main St", "size": "L"}

    # Typing both ways, and the agent's read receipt on the user's message.
    await action(stack.url, "courier_7", action="typing_on")
    await page.wait_for_selector("#typing:has-text('typing')")
    await page.fill("#text", "On my way")
    await page.type("#text", "!")
    await backend.wait_for(
        lambda _: any(e["system"]["kind"] == "typing" for e in events_of(backend, "system"))
    )
    await page.press("#text", "Enter")

    def said(_: Any) -> bool:
        return any(
            e["message"]["content"].get("text") == "On my way!"
            for e in events_of(backend, "message")
        )

    await backend.wait_for(said)
    text_event = next(
        e
        for e in events_of(backend, "message")
        if e["message"]["content"].get("text") == "On my way!"
    )
    await action(stack.url, "courier_7", action="typing_off")
    await action(stack.url, "courier_7", action="read", external_id=text_event["external_id"])
    await page.wait_for_selector(".msg.mine .meta:has-text('Seen')")
    await screenshot(page, "web_conversation")

    # A reload shows the same conversation, once, and goes on from where it was.
    before = await page.locator("#log .msg").all_inner_texts()
    await page.reload()
    await page.wait_for_selector("#state:has-text('online')")
    await send(stack.url, "courier_7", {"type": "text", "text": "See you soon"})
    await page.wait_for_selector(".msg:has-text('See you soon')")
    after = await page.locator("#log .msg").all_inner_texts()
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1
    event_ids = await page.locator("#log .msg[data-event-id]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.eventId)"
    )
    assert len(event_ids) == len(set(event_ids)) == 3  # carousel, form, "See you soon"
    await screenshot(page, "web_after_reload")
    await asyncio.sleep(0.2)
    assert len(events_of(backend, "postback")) == 1  # nothing the page sent went twice
