"""Headless Chromium for tests that look at a page as a person would (the web channel's
example page, the console).

Debian's `chromium` package, driven by Playwright for Python through `executable_path`:
Playwright's own browser download cannot run here. Where chromium is missing the tests skip
with the reason printed, except in CI (`GATEWAY_REQUIRE_BROWSER=1`, set by .ci/run), where
they fail. Screenshots go to tests/artifacts/ (not in git), for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"


def chromium_path() -> str:
    """The chromium to drive; skips (or fails in CI) when there is none."""
    path = shutil.which("chromium")
    if path is not None:
        return path
    reason = "chromium is not installed (apt-get install chromium)"
    if os.environ.get("GATEWAY_REQUIRE_BROWSER"):
        pytest.fail(f"GATEWAY_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


def launch_args() -> list[str]:
    # Root cannot run chromium's sandbox (CI and these machines run as root).
    return (["--no-sandbox"] if os.geteuid() == 0 else []) + ["--disable-dev-shm-usage"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless chromium for the test, closed after it."""
    executable = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=launch_args()
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
    """A fresh page in a headless chromium, closed after the test."""
    executable = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=launch_args()
        )
        try:
            page = await browser.new_page(viewport={"width": 600, "height": 900})
            yield page
        finally:
            await browser.close()


async def screenshot(page: Any, name: str) -> Path:
    """Save what the page shows as tests/artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
