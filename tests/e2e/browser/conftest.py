"""Browser fixtures: the web app in its own process over this test's database, and a
real headless Chromium driven by selenium.

Every test here is marked ``browser``. The tests are ``async`` only to use the async
``store`` fixture; selenium calls block the test's event loop, which is harmless
because the server runs in another process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from support.admin_browser import PASSWORD, WebApp

from vq_core.store import Store
from vq_ui.auth import users

HERE = Path(__file__).parent
CHROMIUM = os.environ.get("VQ_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VQ_CHROMEDRIVER", "/usr/bin/chromedriver")
ROLES = ("admin", "operator", "viewer")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/browser as ``browser`` (the hook sees the whole
    session, so only this folder's items are touched)."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed browser test, print what the page showed: a timeout alone says
    nothing of whether a dialog was open, closing, or showing another job."""
    report = yield
    driver = getattr(item, "funcargs", {}).get("driver")
    if report.failed and call.when == "call" and isinstance(driver, WebDriver):
        try:
            page = driver.execute_script(_PAGE_STATE)
        except Exception as exc:  # the browser itself may be what failed
            page = f"(could not read the page: {exc})"
        report.sections.append(("what the browser showed", str(page)))
    return report


# The URL, then each open dialog's classes and text, then the start of the page's text.
_PAGE_STATE = """
const parts = ['url: ' + location.href];
for (const d of document.querySelectorAll('.q-dialog__inner')) {
  parts.push('dialog [' + d.className + ']: ' + d.innerText.slice(0, 2000));
}
parts.push('page: ' + document.body.innerText.slice(0, 2000));
return parts.join('\\n---\\n');
"""


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE.parents[1] / "support" / "serve_app.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=None,  # the server's errors show in pytest's captured output
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # serve_app shuts down gracefully
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def web(dsn: str, tmp_path: Path) -> Iterator[WebApp]:
    """vq's app (API, login, /media, the admin page) over this test's database, refreshing
    the page every second."""
    media = tmp_path / "media"
    media.mkdir()
    env = {
        **os.environ,
        "VQ_CONFIG": "/nonexistent/vq.toml",
        "VQ_DATABASE_URL": dsn,
        "VQ_DATA_DIR": str(tmp_path / "data"),
        "VQ_MEDIA_DIR": str(media),
        "VQ_PLUGIN_CONFIG__UI__REFRESH_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    process = _start(env)
    try:
        yield WebApp(process, media)
    finally:
        _stop(process)


@pytest.fixture
async def accounts(store: Store) -> tuple[str, ...]:
    """One user per role, named after it; all share ``PASSWORD``."""
    for role in ROLES:
        await users.create_user(store, role, PASSWORD, role)
    return ROLES


@pytest.fixture(scope="session")
def chromium() -> Iterator[WebDriver]:
    """Headless Debian Chromium with a throwaway profile, started once per test process."""
    with tempfile.TemporaryDirectory(prefix="vq-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--mute-audio",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(arg)
        browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield browser
        finally:
            browser.quit()


@pytest.fixture
def driver(chromium: WebDriver) -> WebDriver:
    """The browser, signed out: no cookies from an earlier test, a blank page, a
    1440x1000 window."""
    chromium.get("about:blank")
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.set_window_size(1440, 1000)
    return chromium
