"""Alert sinks from the admin page in a real headless Chromium (issue 11): an admin adds
a webhook sink, sends a test notification that a loopback receiver gets, sees the
delivery, and removes the sink; while no sink is stored the card says alerts reach
only the log; a viewer sees no sink controls and no targets.

Every change is checked in the database, not only on the screen. Selenium blocks the
event loop, so the steps that need the loopback receiver to answer meanwhile run in a
thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from support.admin_browser import WebApp, click, log_in, screenshot, text_of, wait
from support.alert_receivers import http_receiver
from support.helpers import eventually

from vq_core.models import Actor
from vq_core.sink_config import webhook_spec
from vq_core.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("accounts")]

PANEL = "[data-panel=alert-sinks]"
WARNING = "[data-sinks-warning=log-only]"
ADD = "[data-dialog=sink-add]"
SECRET = "page-secret-never-shown-5d1e"


def _type(driver: WebDriver, field: str, text: str) -> None:
    element = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, f"{ADD} input[data-sink-field={field}]"))
    )
    element.send_keys(text)


def _notified(text: str) -> Callable[[WebDriver], bool]:
    return ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".q-notification"), text)


async def test_admin_adds_tests_and_removes_a_sink(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    log_in(driver, web, "admin")
    warning = wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, WARNING)))
    assert "Only the log sink is configured" in warning.text

    # A bad URL is named and nothing is stored.
    click(driver, "[data-action=sink-add]")
    _type(driver, "name", "ops-hook")
    _type(driver, "url", "ftp://127.0.0.1/hook")
    click(driver, "[data-action=sink-add-save]")
    wait(driver).until(_notified("url: must start with http:// or https://"))
    assert await store.list_alert_sinks() == []
    click(driver, "[data-action=sink-add-close]")
    wait(driver).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ADD)))

    async with http_receiver() as receiver:
        url = f"{receiver.url}/hooks/vq"
        click(driver, "[data-action=sink-add]")
        _type(driver, "name", "ops-hook")
        _type(driver, "url", url)
        _type(driver, "secret", SECRET)
        click(driver, "[data-action=sink-add-save]")
        wait(driver).until(_notified("Alert sink ops-hook added"))
        (sink,) = await store.list_alert_sinks()
        assert (sink.name, sink.kind, sink.target, sink.has_secret) == (
            "ops-hook",
            "webhook",
            url,
            True,
        )
        assert sink.created_by == "admin"
        wait(driver).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, WARNING)))
        wait(driver).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, PANEL), url))
        assert SECRET not in driver.page_source

        # The page process delivers the test: the receiver must answer meanwhile.
        await asyncio.to_thread(click, driver, "[data-action=sink-test]")
        await eventually(lambda: _async(receiver.alert_keys() == ["test"]))
        await asyncio.to_thread(
            wait(driver).until,
            ec.presence_of_element_located(
                (By.CSS_SELECTOR, f"{PANEL} [data-outcome=sent][data-sink=ops-hook]")
            ),
        )
    deliveries = [d for d in await store.list_alert_deliveries() if d.sink == "ops-hook"]
    assert [(d.alert_key, d.outcome, d.installation_wide) for d in deliveries] == [
        ("test", "sent", True)
    ]
    screenshot(driver, "alert-sinks")

    click(driver, f"{PANEL} button[data-action=sink-remove][data-sink=ops-hook]")
    click(driver, "[data-action=sink-remove-confirm]")
    wait(driver).until(_notified("Alert sink ops-hook removed"))
    assert await store.list_alert_sinks() == []
    wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, WARNING)))


async def test_viewer_sees_no_sink_controls_nor_targets(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    await store.add_alert_sink(
        webhook_spec("ops-hook", "http://127.0.0.1:9/hooks/private", SECRET), Actor("admin", "cli")
    )
    log_in(driver, web, "viewer")
    panel = wait(driver).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, PANEL), "ops-hook")
    )
    assert panel
    text = text_of(driver, PANEL)
    assert "webhook" in text and "hooks/private" not in text
    assert not any(e.is_displayed() for e in driver.find_elements(By.CSS_SELECTOR, WARNING))
    for action in ("sink-add", "sink-test", "sink-remove", "sink-add-save"):
        assert not driver.find_elements(By.CSS_SELECTOR, f"[data-action={action}]"), action
    assert SECRET not in driver.page_source
    assert [s.name for s in await store.list_alert_sinks()] == ["ops-hook"]


async def _async(value: bool) -> bool:
    return value
