"""A job's completion callbacks on the admin page, in a real headless Chromium (issue
12): each delivery with its state and attempts in the job's details, and the Redeliver
button, for admins only. The redelivery is checked in the database."""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from support.admin_browser import WORKER, WebApp, click, log_in, row_button, wait
from support.helpers import eventually

from vq_core.models import NewJob
from vq_core.store import Store
from vq_core.store.callbacks import FAILED

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("accounts")]

DETAILS = "[data-dialog=details]"
CALLBACK_URL = "http://127.0.0.1:9/cb"  # never contacted: no deliverer runs here


async def _job_with_a_failed_callback(store: Store) -> tuple[uuid.UUID, uuid.UUID]:
    """A completed job whose one delivery gave up after an attempt answered 500."""
    job = (await store.enqueue(NewJob("doubt", {"question": "Why?"}, callback_url=CALLBACK_URL))).id
    (claimed,) = await store.claim(WORKER, {"doubt": "orchestrator"}, 1, 60)
    done = await store.complete_many(WORKER, [(claimed.id, {"video_url": "/media/v.mp4"})])
    assert done == [claimed.id]
    (due,) = await store.claim_callbacks(1, 30)
    await store.record_callback_attempt(due, FAILED, status_code=500, detail="answered 500")
    (delivery,) = await store.job_callbacks(job)
    assert delivery.state == FAILED
    return job, delivery.id


async def test_an_admin_sees_the_delivery_and_redelivers_it(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    job, delivery_id = await _job_with_a_failed_callback(store)
    log_in(driver, web, "admin")
    row_button(driver, "details", job)
    state = f"{DETAILS} [data-callback='{delivery_id}'] [data-callback-state]"
    wait(driver).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, state), FAILED))
    section = driver.find_element(By.CSS_SELECTOR, f"{DETAILS} [data-callback='{delivery_id}']")
    assert "answered 500" in section.text
    click(driver, f"{DETAILS} [data-callback='{delivery_id}'] button[data-action=redeliver]")

    async def redelivered() -> bool:
        (delivery,) = await store.job_callbacks(job)
        return delivery.state == "pending" and delivery.attempts == 0

    await eventually(redelivered, timeout=10)
    wait(driver).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, state), "pending"))


async def test_an_operator_sees_the_delivery_but_may_not_redeliver(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    job, delivery_id = await _job_with_a_failed_callback(store)
    log_in(driver, web, "operator")
    row_button(driver, "details", job)
    state = f"{DETAILS} [data-callback='{delivery_id}'] [data-callback-state]"
    wait(driver).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, state), FAILED))
    buttons = f"{DETAILS} [data-callback='{delivery_id}'] button[data-action=redeliver]"
    assert driver.find_elements(By.CSS_SELECTOR, buttons) == []
