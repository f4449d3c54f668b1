"""The agent's console in headless Chromium: the marketplace group conversation is listed
and found by its order id; a courier's SMS appears in it live; the agent joins visibly,
speaks, and the customer's WhatsApp simulator receives it, attributed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.simulator.backend import BackendRecorder

from .conftest import API_KEY
from .console_browser import browser, log_in, new_page, screenshot  # noqa: F401  (fixture)
from .console_support import AGENT, console_gateway
from .test_everywhere import WA_USER, sims  # noqa: F401  (the simulators fixture)
from .test_messenger_e2e import PSID
from .test_sms_e2e import USER as SMS_USER

LATE = "stuck in traffic, 10 min late"


async def marketplace(url: str) -> str:
    """The order's conversation: a customer on WhatsApp, a courier on SMS, a restaurant on
    Messenger (docs/conversations.md, "In four requests")."""
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as api:
        created = await api.post(
            "/v1/conversations",
            json={
                "metadata": {"order_id": "1234"},
                "participants": [
                    {"identity": {"channel": "wa-main", "id": WA_USER}, "role": "customer", "display_name": "Sheena"},
                    {"identity": {"channel": "sms-main", "id": SMS_USER}, "role": "courier", "display_name": "Jasper"},
                    {"identity": {"channel": "fb-main", "id": PSID}, "role": "restaurant", "display_name": "Luigi's"},
                ],
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


async def test_an_agent_watches_joins_and_speaks(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder, browser: Any
) -> None:
    gw = await console_gateway(tmp_path, start_gateway, sims, backend)
    # The customer and the restaurant wrote first: their 24-hour windows are open.
    await sims["whatsapp"].send_inbound_text(WA_USER, "Where is my order?")
    await sims["messenger"].send_inbound_text(PSID, "Order 1234 is ready")
    await backend.wait_for(lambda ev: len([e for e in ev if e["type"] == "message"]) >= 2)
    conversation = await marketplace(gw.url)

    page = await new_page(browser, gw.url)
    await log_in(page, *AGENT)
    assert page.url.endswith("/console/conversations")
    await page.fill('input[name="key"]', "order_id")
    await page.fill('input[name="value"]', "1234")
    await page.click("#filters button")
    await page.click(f'a[href="/console/conversations/{conversation}"]')
    await page.wait_for_selector("#history")
    assert await page.locator("#history li[data-message]").count() == 0

    await sims["sms"].send_inbound(SMS_USER, LATE)  # the courier texts; no reload follows
    await page.wait_for_selector(f'#history li[data-message]:has-text("{LATE}")')
    line = page.locator("#history li[data-message]").first
    assert "Jasper" in await line.inner_text() and "sms-main" in await line.inner_text()
    # Relayed to the customer and the restaurant: their copies' states are shown.
    await page.wait_for_function(
        "document.querySelectorAll('#history .copy.state-delivered, #history .copy.state-read').length >= 1"
    )
    # One list item per recipient, a dot drawn between them, so their states do not run together.
    copies = line.locator(".copies > li.copy")
    recipients = {text.split(":")[0] for text in await copies.all_inner_texts()}
    assert recipients == {"Sheena (wa-main)", "Luigi's (fb-main)"}
    separator = await copies.nth(1).evaluate("li => getComputedStyle(li, '::before').content")
    assert separator == '"·"'

    await page.click("#join-visibly")
    await page.wait_for_selector("#speak-text")
    await page.fill("#speak-text", "Sorry for the wait, Sheena: 10% off this order")
    await page.click("#speak")
    await page.wait_for_selector('#history li[data-message]:has-text("10% off")')

    async def customer_got_it() -> bool:
        texts = [s["body"].get("text", {}).get("body", "") for s in sims["whatsapp"].sent]
        return any("10% off" in t and AGENT[0] in t for t in texts)

    for _ in range(100):
        if await customer_got_it():
            break
        await page.wait_for_timeout(100)
    assert await customer_got_it(), sims["whatsapp"].sent
    await screenshot(page, "conversation")
    await page.goto("/console/conversations")
    await screenshot(page, "conversations")
