"""Chromium, driven by playwright, for the browser tests."""

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.VAR_DIR) / "screenshots"


@pytest.fixture
def chromium(monkeypatch):
    """A running headless chromium; skips with the reason when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
        # Inside sync_playwright the test runs in a context of its own (a greenlet), where the ORM opened
        # connections of its own: left open, one would keep the test database from being dropped at the end.
        connections.close_all()


@pytest.fixture
def sign_in(chromium, live_server):
    """`sign_in(user)` opens a page signed in through the login form.

    The test fails afterwards if any page had a script error or a
    Content-Security-Policy refusal (the policy forbids inline scripts and styles).
    """
    errors = []

    def open_page(user, password="password"):
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda message: "Content Security Policy" in message.text
            and errors.append(f"{message.text} at {message.location}"),
        )
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/t/*/")
        return page

    yield open_page
    assert errors == [], f"script errors or policy violations in the page: {errors}"
