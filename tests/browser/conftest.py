"""Browser tests: headless Debian Chromium driven by Playwright against pytest-django's
``live_server``.

Browsers are never downloaded (``playwright install`` is not used): the tests run the system's
``chromium`` package. Without it they are skipped with the reason shown, except on CI
(``CI=true``), where a missing browser is a failure so that a green run means they ran.

Each test's final page is saved to ``test-artifacts/browser/<test name>.png`` (git-ignored),
also when the test fails, so a failure can be looked at.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an asyncio event loop in this (the main) thread. Django then sees a
# running loop and refuses ORM calls made here (SynchronousOnlyOperation), although they are
# ordinary synchronous calls that never run inside that loop. The tests create their data with
# the ORM between browser steps, so the check is switched off for this process.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests often run as root in a container, where the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                "CI=true but Chromium is not installed, so the browser tests cannot run: "
                "apt-get install chromium",
                pytrace=False,
            )
        pytest.skip("Chromium not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def artifact_path(item: pytest.Item) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / (re.sub(r"[^\w.-]+", "_", item.name).strip("_") + ".png")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call" and report.failed and "browser_page" in getattr(item, "funcargs", {}):
        # The screenshot itself is taken when browser_page tears down, right after this.
        report.sections.append(("browser", f"screenshot of the final page: {artifact_path(item)}"))
    return report


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, chromium_browser, live_server) -> Iterator[object]:
    """A fresh page (own cookies) whose relative URLs point at the live server."""
    context = chromium_browser.new_context(base_url=live_server.url, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            page.screenshot(path=str(artifact_path(request.node)), full_page=True)
        finally:
            context.close()


@pytest.fixture
def logged_in_page(browser_page) -> Callable[[str], object]:
    """``logged_in_page(role)``: a new user with that role, logged in through the real form.

    Returns the page as it is after the login redirect.
    """
    from django.urls import reverse

    from tagbase.testing import PASSWORD, make_user

    def log_in(role: str = "marketer") -> object:
        user = make_user(role)
        page = browser_page
        page.goto(reverse("login"))
        page.get_by_label(re.compile(r"user ?name", re.I)).fill(user.get_username())
        page.get_by_label(re.compile(r"password", re.I)).fill(PASSWORD)
        page.get_by_role("button", name=re.compile(r"log ?in|sign ?in", re.I)).click()
        page.wait_for_url(lambda url: "/login" not in url)
        return page

    return log_in
