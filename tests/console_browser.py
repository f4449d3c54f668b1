"""The console's browser tests: pages and logins in the headless chromium of tests/browser.py;
screenshots go to tests/artifacts/console-<name>.png (not committed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .browser import ARTIFACTS
from .browser import browser as browser  # the fixture, for the console's test modules


async def new_page(browser: Any, base_url: str) -> Any:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    return await context.new_page()


async def log_in(page: Any, name: str, password: str) -> None:
    await page.goto("/console/login")
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', password)
    await page.click("form.login button")
    await page.wait_for_selector("header form.who")


async def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"console-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
