"""The admin page at /queue in a real headless Chromium, against a real server and database.

Each test starts the app in its own process (``web``) and signs in through the real
login form. Jobs move by the store calls a worker makes (claim, complete, fail), so
what the page shows is what a running queue would show.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from support.admin_browser import (
    WebApp,
    choose,
    click,
    close_dialog,
    complete,
    log_in,
    row_button,
    row_status,
    screenshot,
    seed,
    shown_job_ids,
    stat,
    text_of,
    wait,
)

from vq_core.models import JobStatus, NewJob
from vq_core.store import Store
from vq_plugins.services.render_engine import render_explainer
from vq_ui.auth import sessions, users

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("accounts")]

DETAILS = "[data-dialog=details]"


def _text_is(selector: str, expected: str) -> Callable[[WebDriver], bool]:
    return ec.text_to_be_present_in_element((By.CSS_SELECTOR, selector), expected)


async def test_signed_out_visitors_are_sent_to_login(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    driver.get(f"{web.url}/admin")
    wait(driver).until(ec.url_contains("/login?next="))
    assert "%2Fqueue" in driver.current_url
    wait(driver).until(ec.visibility_of_element_located((By.ID, "username")))
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-panel=jobs]")
    screenshot(driver, "login")
    log_in(driver, web, "operator")
    assert len(await sessions.list_sessions(store, "operator")) == 1
    click(driver, "[data-action=logout]")  # the header's form posts to /logout
    wait(driver).until(ec.url_to_be(f"{web.url}/login"))
    assert await sessions.list_sessions(store, "operator") == []  # ended on the server
    driver.get(f"{web.url}/queue")
    wait(driver).until(ec.url_contains("/login?next="))


async def test_counts_follow_the_queue_as_jobs_are_processed(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    jobs = await store.enqueue_many([NewJob("doubt", {"question": f"q{i}"}) for i in range(3)])
    log_in(driver, web, "admin")
    wait(driver).until(_text_is("[data-stat=queued]", "3"))
    assert stat(driver, "depth") == "3"
    assert shown_job_ids(driver) == {str(j.id) for j in jobs}

    claimed = await store.claim("render-1", {"doubt": "noop"}, 2, 60)
    wait(driver).until(_text_is("[data-stat=running]", "2"))
    assert stat(driver, "queued") == "1"
    await store.complete_many("render-1", [(c.id, {"video_url": "/media/x.mp4"}) for c in claimed])
    wait(driver).until(_text_is("[data-stat=completed]", "2"))
    assert stat(driver, "running") == "0"
    wait(driver).until(lambda d: row_status(d, claimed[0].id) == "completed")
    assert row_status(driver, jobs[2].id) == "queued"


async def test_overview_shows_workers_services_and_every_status(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    seeded = await seed(store)
    log_in(driver, web, "admin")
    wait(driver).until(_text_is("[data-stat=failed]", "1"))
    for key, expected in (
        ("completed", "3"),
        ("running", "1"),
        ("cancelled", "1"),
        ("queued", "4"),
    ):
        assert stat(driver, key) == expected, key
    workers = driver.find_element(By.CSS_SELECTOR, "[data-panel=workers]").text
    assert "render-1" in workers and "alive" in workers
    services = driver.find_element(By.CSS_SELECTOR, "[data-panel=services]").text
    assert "orchestrator" in services and "healthy" in services
    assert "manim" in services and "down" in services
    assert row_status(driver, seeded.running[0]) == "running"
    assert driver.find_elements(By.CSS_SELECTOR, "[data-panel=chart] canvas")
    screenshot(driver, "queue", full_page=True)


async def test_filters_search_and_paging_run_on_the_server(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    seeded = await seed(store)
    many = await store.enqueue_many([NewJob("bulk", {"topic": f"filler {i}"}) for i in range(30)])
    log_in(driver, web, "admin")
    wait(driver).until(lambda d: len(shown_job_ids(d)) == 40)  # all of them: 50 a page
    choose(driver, "page-size", "25")
    wait(driver).until(lambda d: len(shown_job_ids(d)) == 25)
    choose(driver, "type", "bulk")
    wait(driver).until(lambda d: shown_job_ids(d) <= {str(j.id) for j in many})
    assert len(shown_job_ids(driver)) == 25
    click(driver, "[data-action=next-page]")
    wait(driver).until(_text_is("[data-page-label]", "Page 2"))
    wait(driver).until(lambda d: len(shown_job_ids(d)) == 5)

    choose(driver, "type", "Any type")
    choose(driver, "status", "failed")
    wait(driver).until(lambda d: shown_job_ids(d) == {str(seeded.failed[0])})
    assert driver.find_element(By.CSS_SELECTOR, "[data-page-label]").text == "Page 1"

    choose(driver, "status", "Any status")
    search = driver.find_element(By.CSS_SELECTOR, "input[data-filter=text]")
    search.send_keys("GRAVITY")
    wait(driver).until(lambda d: shown_job_ids(d) == {str(seeded.completed[1])})
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys(str(seeded.running[0]))  # a full job id finds that job
    wait(driver).until(lambda d: shown_job_ids(d) == {str(seeded.running[0])})


async def test_operator_cancels_a_queued_job(store: Store, web: WebApp, driver: WebDriver) -> None:
    job = (await store.enqueue(NewJob("doubt", {"question": "cancel me"}))).id
    keep = (await store.enqueue(NewJob("doubt", {"question": "keep me"}))).id
    log_in(driver, web, "operator")
    row_button(driver, "cancel", job)
    click(driver, "[data-action=keep]")
    wait(driver).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, "[data-action=keep]")))
    assert (await store.get_job(job)).status is JobStatus.QUEUED  # "Keep it" kept it

    row_button(driver, "cancel", job)
    click(driver, "[data-action=confirm-cancel]")
    wait(driver).until(lambda d: row_status(d, job) == "cancelled")
    wait(driver).until(_text_is(".q-notification", "cancelled"))
    assert (await store.get_job(job)).status is JobStatus.CANCELLED
    assert (await store.get_job(keep)).status is JobStatus.QUEUED
    events = [e for e in await store.get_events(job) if e.event == "cancelled"]
    assert events and events[0].details and events[0].details.get("by") == "operator"
    assert not driver.find_elements(
        By.CSS_SELECTOR, f"button[data-action=cancel][data-job-id='{job}']"
    )


async def test_operator_retries_a_failed_job(store: Store, web: WebApp, driver: WebDriver) -> None:
    seeded = await seed(store)
    failed = seeded.failed[0]
    log_in(driver, web, "operator")
    row_button(driver, "retry", failed)
    wait(driver).until(lambda d: row_status(d, failed) == "queued")
    wait(driver).until(_text_is(".q-notification", "queued again"))
    job = await store.get_job(failed)
    assert job.status is JobStatus.QUEUED and job.retry_count == 0
    retried = [e for e in await store.get_events(failed) if e.event == "retried"]
    assert retried and retried[0].details and retried[0].details.get("by") == "operator"
    assert not driver.find_elements(
        By.CSS_SELECTOR, f"button[data-action=retry][data-job-id='{failed}']"
    )


async def test_details_show_payload_error_history_and_a_playing_video(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    video = render_explainer(web.media_dir, "gravity", "How does gravity bend light?", length=4)
    assert video.captions_path is not None
    result = {
        "video_url": f"{web.url}/media/{video.video_path.name}",
        "thumbnail_url": f"{web.url}/media/{video.thumbnail_path.name}",
        "captions_url": f"{web.url}/media/{video.captions_path.name}",
        "duration": video.duration,
        "service": "local",
        "renderer": "local",
    }
    seeded = await seed(store, video=result)
    log_in(driver, web, "admin")

    row_button(driver, "details", seeded.failed[0])
    dialog = wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, DETAILS)))
    wait(driver).until(_text_is("[data-error-head]", "API_ERROR"))
    assert "503" in dialog.find_element(By.CSS_SELECTOR, "[data-error-message]").text
    assert "Traceback" in dialog.find_element(By.CSS_SELECTOR, "[data-error-stack]").text
    assert "Fourier series" in dialog.find_element(By.CSS_SELECTOR, "[data-payload]").text
    history = dialog.find_element(By.CSS_SELECTOR, "[data-section=events]").text
    assert "created" in history and "claimed" in history and "failed" in history
    close_dialog(driver, DETAILS)

    row_button(driver, "details", seeded.completed[1])
    wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, f"{DETAILS} video")))
    _assert_video_plays(driver)
    src = driver.find_element(By.CSS_SELECTOR, f"{DETAILS} video").get_attribute("src")
    assert src == result["video_url"]
    thumb = driver.find_element(By.CSS_SELECTOR, f"{DETAILS} [data-job-thumbnail] img")
    wait(driver).until(lambda d: d.execute_script("return arguments[0].naturalWidth", thumb) > 0)
    assert "completed" in driver.find_element(By.CSS_SELECTOR, "[data-details-status]").text
    # A stand-in render says so, so nobody takes it for the platform's production video.
    origin = text_of(driver, f"{DETAILS} [data-render-origin]")
    assert "local renderer" in origin and "not a production render" in origin
    captions = driver.find_element(By.CSS_SELECTOR, f"{DETAILS} [data-captions-link]")
    assert captions.get_attribute("href") == result["captions_url"]
    screenshot(driver, "job-details")


def _assert_video_plays(driver: WebDriver) -> None:
    video = f"document.querySelector('{DETAILS} video')"
    outcome = driver.execute_async_script(
        f"const v = {video}, done = arguments[arguments.length - 1];"
        "v.muted = true; v.play().then(() => done('ok'), e => done(String(e)));"
    )
    assert outcome == "ok", outcome
    wait(driver).until(
        lambda d: d.execute_script(
            f"const v = {video}; return v.readyState >= 2 && !v.paused && v.currentTime > 0.3;"
        )
    )
    assert driver.execute_script(f"return {video}.videoWidth") == 640
    # The narration's AAC track is decoded by the browser too, not only the picture.
    wait(driver).until(
        lambda d: d.execute_script(f"return {video}.webkitAudioDecodedByteCount") > 0
    )


async def test_viewer_reads_but_gets_no_action_buttons(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    seeded = await seed(store)
    log_in(driver, web, "viewer")
    wait(driver).until(lambda d: str(seeded.failed[0]) in shown_job_ids(d))
    assert "viewer · viewer" in driver.find_element(By.CSS_SELECTOR, "[data-user]").text
    for action in ("cancel", "retry"):
        assert not driver.find_elements(By.CSS_SELECTOR, f"button[data-action={action}]")
    row_button(driver, "details", seeded.failed[0])
    wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, DETAILS)))
    for action in ("details-cancel", "details-retry"):
        assert not driver.find_elements(By.CSS_SELECTOR, f"[data-action={action}]")
    close_dialog(driver, DETAILS)
    screenshot(driver, "viewer")
    assert (await store.get_job(seeded.failed[0])).status is JobStatus.FAILED


async def test_refresh_keeps_filters_and_the_open_dialog(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    first = (await store.enqueue(NewJob("doubt", {"question": "watch me"}))).id
    other = (await store.enqueue(NewJob("diagram", {"topic": "stays"}))).id
    log_in(driver, web, "admin")
    choose(driver, "status", "queued")
    wait(driver).until(lambda d: shown_job_ids(d) == {str(first), str(other)})
    row_button(driver, "details", first)
    wait(driver).until(_text_is("[data-details-status]", "queued"))

    claimed = await store.claim("render-1", {"doubt": "noop"}, 1, 60)
    await store.update_progress("render-1", claimed[0].id, 55, "narration")
    wait(driver).until(_text_is("[data-details-progress]", "55% narration"))
    assert "running" in driver.find_element(By.CSS_SELECTOR, "[data-details-status]").text
    await complete(store, "diagram", {"video_url": "/media/none.mp4"})
    before = driver.find_element(By.CSS_SELECTOR, "[data-updated]").text
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-updated]").text != before)
    # Still filtered on queued (both jobs left it), and the dialog is still open.
    wait(driver).until(lambda d: shown_job_ids(d) == set())
    assert driver.find_element(By.CSS_SELECTOR, DETAILS).is_displayed()
    assert _unique(driver.find_element(By.CSS_SELECTOR, "[data-details-id]").text) == first


def _unique(text: str) -> uuid.UUID:
    return uuid.UUID(text.strip())


async def test_an_open_page_follows_role_changes_and_disabling(
    store: Store, web: WebApp, driver: WebDriver
) -> None:
    job = (await store.enqueue(NewJob("doubt", {"question": "still mine?"}))).id
    log_in(driver, web, "operator")
    wait(driver).until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, f"button[data-action=cancel][data-job-id='{job}']")
        )
    )
    await users.update_user(store, "operator", role="viewer")
    wait(driver).until(ec.url_contains("/login"))  # a role change ends the session
    log_in(driver, web, "operator")
    wait(driver).until(_text_is("[data-user]", "operator · viewer"))
    wait(driver).until(lambda d: str(job) in shown_job_ids(d))
    assert not driver.find_elements(By.CSS_SELECTOR, "button[data-action=cancel]")
    await users.update_user(store, "operator", disabled=True)
    wait(driver).until(ec.url_contains("/login"))
    assert (await store.get_job(job)).status is JobStatus.QUEUED
