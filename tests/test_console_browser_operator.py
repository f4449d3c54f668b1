"""The operator's console in headless Chromium: the channels page shows five channels and a
failing one's state and error; the composer previews a carousel on each app and sends it,
its state followed to delivered; the trouble page replays a failed inbox row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.simulator.backend import BackendRecorder

from .conftest import API_KEY
from .console_browser import browser, log_in, new_page, screenshot  # noqa: F401  (fixture)
from .console_support import OPERATOR, console_gateway
from .test_everywhere import WA_USER, sims  # noqa: F401  (the simulators fixture)


async def test_channels_show_a_failing_channel(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder, browser: Any
) -> None:
    gw = await console_gateway(tmp_path, start_gateway, sims, backend)
    page = await new_page(browser, gw.url)
    await log_in(page, *OPERATOR)
    assert page.url.endswith("/console/channels")
    assert await page.locator("#channels tbody tr").count() == 5
    row = page.locator('tr[data-channel="wa-main"]')
    assert await row.locator(".lane").inner_text() == "flowing"
    assert await row.locator(".last-error").inner_text() == "none"

    # The customer writes (the provider reaches us), then WhatsApp refuses our next sends.
    await sims["whatsapp"].send_inbound_text(WA_USER, "Where is my order?")
    sims["whatsapp"].fail_next(131026, count=1)
    await page.goto("/console/composer")
    await page.fill("#content", '{"type": "text", "text": "It is on its way"}')
    await page.select_option("#send-channel", "wa-main")
    await page.fill("#send-to", WA_USER)
    await page.click("#send-button")
    await page.wait_for_function(
        "document.getElementById('send-status').textContent.endsWith('failed')"
    )

    await page.goto("/console/channels")
    # The live socket redraws the table; the error and its time appear without a reload.
    await page.wait_for_function(
        "document.querySelector('tr[data-channel=\"wa-main\"] .last-error').textContent.includes('131026')"
    )
    assert (
        "failed" not in (await row.locator(".failures").inner_text())
        and int(await row.locator(".failures").inner_text()) >= 1
    )
    assert "recently" in await row.inner_text()

    # Then WhatsApp rate-limits us, asking for 30 s: the lane pauses, and the page says so.
    sims["whatsapp"].fail_next(130429, http_status=429, retry_after=30)
    async with httpx.AsyncClient(
        base_url=gw.url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as api:
        queued = await api.post(
            "/v1/messages",
            json={"to": {"channel": "wa-main", "id": WA_USER}, "content": {"type": "text", "text": "Soon"}},
        )  # fmt: skip
        assert queued.status_code == 202
    await page.wait_for_function(
        "document.querySelector('tr[data-channel=\"wa-main\"] .lane').textContent.startsWith('paused')"
    )
    assert await page.locator('tr[data-channel="fb-main"] .lane').inner_text() == "flowing"
    assert "130429" in await row.locator(".last-error").inner_text()  # the retry's reason
    await screenshot(page, "channels")


async def test_composer_previews_a_carousel_and_sends_it(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder, browser: Any
) -> None:
    gw = await console_gateway(tmp_path, start_gateway, sims, backend)
    await sims["whatsapp"].send_inbound_text(WA_USER, "What's on tonight?")  # the window opens
    page = await new_page(browser, gw.url)
    await log_in(page, *OPERATOR)
    await page.goto("/console/composer")
    # The carousel is the first example shown: a phone per channel, each drawn like its app.
    await page.wait_for_selector("#previews article.phone")
    phones = page.locator("#previews article.phone")
    assert await phones.count() == 5
    whatsapp = page.locator('[data-preview="wa-main"]')
    assert await whatsapp.locator(".card").count() == 3  # WhatsApp's media carousel
    assert await page.locator('[data-preview="line-main"] .card').count() == 3
    assert await page.locator('[data-preview="fb-main"] .card').count() == 3
    sms = page.locator('[data-preview="sms-main"]')
    assert await sms.locator(".card").count() == 0  # plain text, numbered
    assert "1. " in await sms.locator(".bubble").inner_text()
    assert "segment" in await sms.locator(".segments").inner_text()
    assert "would be refused" in await sms.locator(".strict").inner_text()
    assert await sms.locator(".downgrades li").count() >= 1
    await screenshot(page, "composer")

    await page.select_option("#send-channel", "wa-main")
    await page.fill("#send-to", WA_USER)
    await page.click("#send-button")
    await page.wait_for_function(
        "document.getElementById('send-status').textContent.endsWith('delivered')"
        " || document.getElementById('send-status').textContent.endsWith('read')"
    )
    [sent] = sims["whatsapp"].sent
    assert sent["body"]["interactive"]["type"] == "carousel"
    await screenshot(page, "composer-sent")
    await page.goto("/console/charts")
    assert await page.locator("svg.chart").count() == 1 + 5 * 3
    await screenshot(page, "charts")


async def test_trouble_replays_a_failed_inbox_row(
    tmp_path: Path, start_gateway: Any, sims: dict[str, Any], backend: BackendRecorder, browser: Any
) -> None:
    gw = await console_gateway(tmp_path, start_gateway, sims, backend)
    await sims["whatsapp"].send_inbound_text(WA_USER, "Where is my order?")
    await backend.wait_for(lambda events: any(e["type"] == "message" for e in events))
    row = await gw.store.db.run(lambda tx: tx.one("SELECT id FROM inbox ORDER BY id DESC LIMIT 1"))
    # As a release with a parser bug left it: failed, with its reason.
    await gw.store.fail_inbox(row[0], "ValueError: entry[0].changes[0].value: unexpected", 0.0)
    page = await new_page(browser, gw.url)
    await log_in(page, *OPERATOR)
    await page.goto("/console/trouble")
    failed = page.locator(f'#failed-inbox tr[data-row="{row[0]}"]')
    assert "unexpected" in await failed.inner_text()
    await screenshot(page, "trouble")
    await failed.locator("text=Replay").click()
    await page.wait_for_selector("#no-failed")
    status = await gw.store.db.run(
        lambda tx: tx.one("SELECT status FROM inbox WHERE id = ?", (row[0],))
    )
    assert status[0] in ("pending", "done")
