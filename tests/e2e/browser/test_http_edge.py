"""The page, the sign-in form and the API docs under vq's security headers, in a real
Chromium: the Content-Security-Policy lets them work and blocks what it should, the
docs page loads nothing from another origin, and viewers see errors without stacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from support.admin_browser import PASSWORD, WebApp, click, log_in, row_button, seed, wait

from vq_core.store import Store
from vq_plugins.services.render_engine import render_explainer
from vq_ui.http_guard import SECURITY_HEADERS

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("accounts")]

DETAILS = "[data-dialog=details]"
# Records every CSP violation of every document the browser opens from now on.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.effectiveDirective + ' ' + e.blockedURI));
"""

Violations = Callable[[], list[str]]


@pytest.fixture
def violations(driver: WebDriver) -> Iterator[Violations]:
    """The CSP violations of the page open now."""
    added: dict[str, Any] = driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS}
    )
    yield lambda: list(driver.execute_script("return window.__csp || []"))
    driver.execute_cdp_cmd(
        "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}
    )


def _resources(driver: WebDriver) -> list[str]:
    names = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    return [str(n) for n in names]


async def test_the_admin_page_works_under_its_policy(
    store: Store, web: WebApp, driver: WebDriver, violations: Violations
) -> None:
    video = render_explainer(web.media_dir, "gravity", "How does gravity bend light?", length=2)
    seeded = await seed(store, video={"video_url": f"{web.url}/media/{video.video_path.name}"})
    log_in(driver, web, "admin")
    # The live parts: the counters come over the websocket, the chart is drawn.
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-stat=completed]").text)
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "canvas")))
    row_button(driver, "details", seeded.completed[0])
    wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, f"{DETAILS} video")))
    wait(driver).until(
        lambda d: (
            d.execute_script(f"return document.querySelector('{DETAILS} video').readyState") >= 2
        )
    )
    assert violations() == []
    assert all(r.startswith(web.url) for r in _resources(driver)), _resources(driver)

    # The policy is in force: a script from another origin is refused...
    driver.execute_script(
        "const s = document.createElement('script');"
        "s.src = 'http://127.0.0.2:9/injected.js'; document.head.append(s);"
    )
    wait(driver).until(lambda d: violations())
    assert violations() == ["script-src-elem http://127.0.0.2:9/injected.js"]
    # ...and no page of vq's may be framed, not even by vq's own.
    outcome = driver.execute_async_script(
        "const done = arguments[arguments.length - 1], f = document.createElement('iframe');"
        "f.onload = () => { let d = null; try { d = f.contentDocument } catch (e) {}"
        "  done(!!(d && d.getElementById('username'))); };"
        "f.src = '/login'; document.body.append(f);"
    )
    assert outcome is False


async def test_the_sign_in_form_works_under_its_policy(
    web: WebApp, driver: WebDriver, violations: Violations
) -> None:
    log_in(driver, web, "viewer")  # the form posts, the cookie is set, the page opens
    assert violations() == []


async def test_the_api_docs_render_from_this_origin_only(
    web: WebApp, driver: WebDriver, violations: Violations
) -> None:
    driver.get(f"{web.url}/api/v1/docs")
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    assert "/api/v1/jobs" in driver.find_element(By.CSS_SELECTOR, "#swagger-ui").text
    resources = _resources(driver)
    assert any(r.endswith("/swagger-ui-bundle.js") for r in resources), resources
    assert all(r.startswith(web.url) for r in resources), resources
    assert violations() == []


async def test_viewers_see_the_error_without_its_stack(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    seeded = await seed(store)
    log_in(driver, web, "viewer")
    row_button(driver, "details", seeded.failed[0])
    dialog = wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, DETAILS)))
    wait(driver).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-error-head]"), "API_ERROR")
    )
    assert "503" in dialog.find_element(By.CSS_SELECTOR, "[data-error-message]").text
    # The service's answer is still shown; the Python stack is not.
    excerpt = dialog.find_element(By.CSS_SELECTOR, "[data-error-stack]").text
    assert "renderer overloaded" in excerpt
    history = dialog.find_element(By.CSS_SELECTOR, "[data-section=events]").text
    assert "failed" in history
    assert "Traceback" not in dialog.text and "stack" not in history
    click(driver, f"{DETAILS} [data-action=close]")


async def test_the_queue_page_and_its_assets_send_the_security_headers(web: WebApp) -> None:
    async with httpx.AsyncClient(base_url=web.url, timeout=20) as c:
        signed_in = await c.post("/login", data={"username": "viewer", "password": PASSWORD})
        assert signed_in.status_code == 303
        page = await c.get("/queue")
        assert page.status_code == 200 and "<html" in page.text
        asset = next(p for p in page.text.split('"') if p.startswith("/_nicegui/"))
        answers = [page, await c.get(asset), await c.get("/login"), await c.get("/api/v1/me")]
        assert [r.status_code for r in answers] == [200, 200, 200, 200]
        for r in answers:
            for name, value in SECURITY_HEADERS:
                assert r.headers.get(name) == value, (r.request.url, name)
