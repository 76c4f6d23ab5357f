"""Steering from the admin page in a real headless Chromium (issue 11): the types card
(pause, resume, edit), bulk retry with its confirmation, what a viewer may not do, and
the displays that used to mislead (history lines, the worker of each attempt, invalid
input without a stack, the alerts card at 1440 px).

Changes are checked in the database, not only on the screen: the paused flag, the
``vq.config_changes`` row with ``via`` ``page``, each retried job's history entry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from support.admin_browser import (
    WORKER,
    WebApp,
    choose,
    click,
    failure,
    log_in,
    open_dialog,
    row_button,
    screenshot,
    seed,
    shown_job_ids,
    unfold,
    wait,
)
from support.helpers import eventually

from vq_core.errors import InvalidInput, error_record
from vq_core.models import ErrorCategory, JobStatus, NewJob
from vq_core.store import Store
from vq_core.store.alerts import FIRING, RESOLVED, AlertRecord

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("accounts")]

DETAILS = "[data-dialog=details]"
BULK = "[data-dialog=bulk-confirm]"
EDIT = "[data-dialog=type-edit]"
TYPES = "[data-panel=types]"


def _text_is(selector: str, expected: str) -> Callable[[WebDriver], bool]:
    return ec.text_to_be_present_in_element((By.CSS_SELECTOR, selector), expected)


def _type_button(action: str, job_type: str) -> str:
    return f"{TYPES} button[data-action={action}][data-job-type='{job_type}']"


async def _fail(store: Store, job_type: str, n: int, record: dict[str, Any]) -> list[Any]:
    """Enqueue, claim and fail ``n`` jobs of ``job_type`` for good, as a worker would."""
    jobs = await store.enqueue_many(
        [NewJob(job_type, {"topic": f"{job_type} {i}"}) for i in range(n)]
    )
    claimed = await store.claim(WORKER, {job_type: "noop"}, n, 60)
    assert len(claimed) == n
    for c in claimed:
        assert await store.fail(WORKER, c.id, dict(record), None) is not None
    return [j.id for j in jobs]


async def test_operator_pauses_resumes_and_edits_a_type(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    await seed(store)  # orchestrator renders doubt; manim (diagram) is down
    log_in(driver, web, "operator")
    wait(driver).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, _type_button("type-pause", "doubt")))
    )
    # The refresh re-renders the row, so the text is waited for, not an element kept.
    wait(driver).until(_text_is("[data-type-problem=diagram]", "manim is unhealthy"))
    wait(driver).until(_text_is("[data-type-problem=diagram]", "its jobs wait"))
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-type-problem=doubt]")

    click(driver, _type_button("type-pause", "doubt"))
    wait(driver).until(_text_is(".q-notification", "doubt paused"))
    config = await eventually(lambda: _config(store, "doubt", paused=True))
    assert config.updated_by == "operator"
    changes = await store.config_changes("type:doubt")
    assert [(c.actor, c.via, c.changes["paused"]) for c in changes] == [
        ("operator", "page", [False, True])
    ]
    wait(driver).until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, "[data-type-state=doubt] [data-state=paused]")
        )
    )
    wait(driver).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".q-notification")))
    driver.execute_script(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", TYPES
    )
    screenshot(driver, "types-panel")

    click(driver, _type_button("type-resume", "doubt"))
    await eventually(lambda: _config(store, "doubt", paused=False))
    changes = await store.config_changes("type:doubt")
    assert [(c.via, c.changes["paused"]) for c in changes] == [
        ("page", [True, False]),
        ("page", [False, True]),
    ]
    wait(driver).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, _type_button("type-pause", "doubt")))
    )

    # A bad value is named and nothing is stored; a good one is; emptying clears a cap.
    open_dialog(driver, _type_button("type-edit", "doubt"), EDIT)
    field = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "input[data-edit=max_running]"))
    )
    field.send_keys("four")
    click(driver, "[data-action=type-edit-save]")
    wait(driver).until(_text_is(".q-notification", "max_running: not a whole number"))
    assert len(await store.config_changes("type:doubt")) == 2
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("0")
    click(driver, "[data-action=type-edit-save]")
    wait(driver).until(_text_is(".q-notification", "max_running"))
    assert len(await store.config_changes("type:doubt")) == 2  # 0 is out of range
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("4")
    click(driver, "[data-action=type-edit-save]")
    config = await eventually(lambda: _config(store, "doubt", max_running=4))
    assert config.paused is False and config.timeout_s == 600.0
    wait(driver).until(
        ec.invisibility_of_element_located((By.CSS_SELECTOR, EDIT))
    )

    open_dialog(driver, _type_button("type-edit", "doubt"), EDIT)
    field = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "input[data-edit=max_running]"))
    )
    wait(driver).until(lambda d: field.get_attribute("value") == "4")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    click(driver, "[data-action=type-edit-save]")
    await eventually(lambda: _config(store, "doubt", max_running=None))
    latest = (await store.config_changes("type:doubt"))[0]
    assert (latest.via, latest.changes) == ("page", {"max_running": [4, None]})


async def _config(store: Store, job_type: str, **expected: Any) -> Any:
    """The type's stored configuration once it has ``expected`` values, else None."""
    config = (await store.list_queue_config()).get(job_type)
    if config is not None and all(getattr(config, k) == v for k, v in expected.items()):
        return config
    return None


async def test_bulk_retry_asks_with_the_count_and_retries_exactly_the_matches(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    matching = await _fail(store, "diagram", 3, failure())
    other_type = await _fail(store, "doubt", 2, failure())
    queued = (await store.enqueue(NewJob("diagram", {"topic": "still queued"}))).id
    log_in(driver, web, "operator")
    choose(driver, "status", "failed")
    choose(driver, "type", "diagram")
    wait(driver).until(lambda d: shown_job_ids(d) == {str(j) for j in matching})

    click(driver, "[data-action=bulk-retry]")
    question = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, f"{BULK} [data-bulk-question]"))
    )
    assert question.text == "Retry 3 jobs?"
    filters = driver.find_element(By.CSS_SELECTOR, f"{BULK} [data-bulk-filters]").text
    assert "status failed" in filters and "type diagram" in filters
    screenshot(driver, "bulk-confirm")
    click(driver, f"{BULK} [data-action=bulk-keep]")
    wait(driver).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, BULK)))
    for job_id in matching + other_type:  # "Keep them" kept them
        assert (await store.get_job(job_id)).status is JobStatus.FAILED

    click(driver, "[data-action=bulk-retry]")
    wait(driver).until(_text_is(f"{BULK} [data-bulk-question]", "Retry 3 jobs?"))
    click(driver, f"{BULK} [data-action=bulk-confirm]")
    wait(driver).until(_text_is(".q-notification", "3 jobs queued again"))
    for job_id in matching:
        job = await store.get_job(job_id)
        assert job.status is JobStatus.QUEUED and job.retry_count == 0
        retried = [e for e in await store.get_events(job_id) if e.event == "retried"]
        assert len(retried) == 1 and retried[0].details == {"by": "operator", "via": "page"}
    for job_id in other_type:
        assert (await store.get_job(job_id)).status is JobStatus.FAILED
    assert (await store.get_job(queued)).status is JobStatus.QUEUED
    wait(driver).until(lambda d: shown_job_ids(d) == set())  # none of them failed now


async def test_a_bulk_action_without_filters_needs_an_explicit_yes(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    jobs = await store.enqueue_many([NewJob("doubt", {"question": f"q{i}"}) for i in range(2)])
    log_in(driver, web, "operator")
    wait(driver).until(lambda d: len(shown_job_ids(d)) == 2)
    click(driver, "[data-action=bulk-cancel]")
    wait(driver).until(_text_is(f"{BULK} [data-bulk-question]", "Cancel 2 jobs?"))
    confirm = driver.find_element(By.CSS_SELECTOR, f"{BULK} [data-action=bulk-confirm]")
    assert not confirm.is_enabled()  # no filter: the whole queue, so not yet
    click(driver, f"{BULK} [data-bulk-everything]")
    wait(driver).until(lambda d: confirm.is_enabled())
    click(driver, f"{BULK} [data-action=bulk-confirm]")
    wait(driver).until(_text_is(".q-notification", "2 jobs cancelled"))
    for job in jobs:
        assert (await store.get_job(job.id)).status is JobStatus.CANCELLED


async def test_viewer_sees_no_type_controls_and_no_bulk_buttons(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    await seed(store)
    log_in(driver, web, "viewer")
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-type-state=doubt]")))
    for action in ("type-pause", "type-resume", "type-edit", "bulk-retry", "bulk-cancel"):
        assert not driver.find_elements(By.CSS_SELECTOR, f"[data-action={action}]"), action
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-bulk]")
    assert await store.config_changes() == []


async def test_history_is_one_line_per_event_and_names_each_attempts_worker(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    job = (await store.enqueue(NewJob("diagram", {"topic": "Fourier series"}))).id
    record = failure()
    claimed = await store.claim("render-7", {"diagram": "manim"}, 1, 60)
    assert await store.fail("render-7", claimed[0].id, dict(record), 0.0) is not None
    claimed = await store.claim("render-9", {"diagram": "manim"}, 1, 60)
    await store.update_progress("render-9", job, 40, "narration")
    assert await store.fail("render-9", claimed[0].id, dict(record, attempt=2), None)
    log_in(driver, web, "operator")
    row_button(driver, "details", job)
    wait(driver).until(_text_is("[data-details-status]", "failed"))
    assert driver.find_element(By.CSS_SELECTOR, "[data-meta=worker]").text == (
        "render-9 (last attempt)"
    )
    assert driver.find_element(By.CSS_SELECTOR, "[data-meta=retries]").text == "1 of 3 used"
    first = driver.find_element(By.CSS_SELECTOR, "[data-attempt='1']").text
    second = driver.find_element(By.CSS_SELECTOR, "[data-attempt='2']").text
    assert "render-7" in first and "retry scheduled" in first and "API_ERROR" in first
    assert "render-9" in second and "failed: API_ERROR" in second

    events = await store.get_events(job)
    section = driver.find_element(By.CSS_SELECTOR, f"{DETAILS} [data-section=events]")
    rows = section.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == len(events) == 6  # created, 2 claims, retry, progress, failure
    history = section.text
    assert "Traceback" not in history and '"stack"' not in history
    assert "API_ERROR: orchestrator answered 503 Service Unavailable" in history
    assert "40% narration" in history and "attempt 2" in history
    lines = {r.find_elements(By.TAG_NAME, "td")[1].text: r.text for r in rows}
    assert "render-9" in lines["failed"] and "{" not in lines["failed"]
    # The raw details are folded under each line, one click away.
    raw = f"{DETAILS} [data-section=events] details[data-event-raw]"
    assert driver.execute_script(f"return document.querySelector('{raw}').open") is False
    assert not driver.find_element(By.CSS_SELECTOR, f"{raw} pre").is_displayed()
    unfold(driver, raw)
    # unfold saw the text shown; it is read from the DOM, as the scroll area may clip it
    # a moment later while the dialog settles.
    folded = driver.find_element(By.CSS_SELECTOR, f"{raw} pre").get_attribute("textContent")
    assert '"type": "API_ERROR"' in (folded or "")
    driver.execute_script(
        "document.querySelector(arguments[0]).scrollIntoView()",
        f"{DETAILS} [data-section=attempts]",
    )
    screenshot(driver, "job-history")


async def test_an_invalid_payload_shows_its_field_not_a_stack(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    try:
        raise InvalidInput("payload.question: Field required")
    except InvalidInput as exc:
        record = error_record(exc, ErrorCategory.INVALID_INPUT, attempt=1, retryable=False)
    assert "Traceback" in record["stack"]
    (job,) = await _fail(store, "doubt", 1, record)
    log_in(driver, web, "admin")  # even admins: the stack would point at our validation
    row_button(driver, "details", job)
    wait(driver).until(_text_is("[data-error-head]", "INVALID_INPUT · invalid input"))
    message = driver.find_element(By.CSS_SELECTOR, "[data-error-message]").text
    assert message == "payload.question: Field required"
    assert not driver.find_element(By.CSS_SELECTOR, "[data-error-stack]").is_displayed()
    dialog = driver.find_element(By.CSS_SELECTOR, DETAILS)
    assert "Traceback" not in (dialog.get_attribute("textContent") or "")


async def test_scheduled_jobs_are_not_counted_as_oldest_ready(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    await store.enqueue_many([NewJob("doubt", {"question": "later"}, run_at=later)] * 2)
    log_in(driver, web, "admin")
    wait(driver).until(_text_is("[data-stat=scheduled]", "2"))
    assert driver.find_element(By.CSS_SELECTOR, "[data-stat=oldest]").text == "-"
    assert driver.find_element(By.CSS_SELECTOR, "[data-stat=depth]").text == "0"
    caption = driver.find_element(By.CSS_SELECTOR, "[data-card=scheduled]").text
    assert "next in 59m" in caption or "next in 1h" in caption


async def test_the_alerts_card_fits_at_1440_px(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    now = datetime.now(UTC)
    worker = "render-host-a.internal-worker-4242-3f9c2a7b1e"
    records = [
        AlertRecord(
            key=f"worker_failures:{worker}",
            rule="worker_failures",
            state=FIRING,
            summary=f"worker {worker} failed 12 jobs in a row (last: API_ERROR: orchestrator "
            "answered 503 Service Unavailable while rendering a diagram)",
            details={},
            first_seen=now - timedelta(minutes=7),
            last_seen=now,
            send_count=3,
        ),
        AlertRecord(
            key="queue_depth:doubt-with-a-rather-long-job-type-name",
            rule="queue_depth",
            state=RESOLVED,
            summary="queue depth of doubt-with-a-rather-long-job-type-name is 1,250 (>= 1,000)",
            details={},
            first_seen=now - timedelta(hours=2),
            last_seen=now - timedelta(minutes=70),
            resolved_at=now - timedelta(minutes=65),
            send_count=2,
        ),
    ]
    async with store.alert_transaction() as tx:
        await tx.write_alerts(records)
    log_in(driver, web, "admin")
    assert driver.get_window_size()["width"] == 1440
    card = "[data-panel=alerts-list]"
    wait(driver).until(_text_is(card, "Alerts: 1 firing"))
    wait(driver).until(_text_is(card, "worker_failures"))
    overflow = driver.execute_script(
        "const card = document.querySelector(arguments[0]);"
        "return [card, ...card.querySelectorAll('*')]"
        "  .filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0)"
        "  .map(e => e.className + ' ' + e.scrollWidth + '>' + e.clientWidth);",
        card,
    )
    assert overflow == [], overflow
    width = driver.execute_script(
        "return document.querySelector(arguments[0]).getBoundingClientRect().right", card
    )
    assert width <= 1440
