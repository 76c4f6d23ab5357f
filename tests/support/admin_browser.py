"""Helpers of the browser tests: signing in, finding rows, choosing filters, seeding jobs."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from vq_core.errors import ServiceError, error_record
from vq_core.models import Actor, ErrorCategory, NewJob, Priority
from vq_core.store import Store

HERE = Path(__file__).parent
# Committed screenshots used by docs/admin.md and the README; `tox -e browser` renews them.
SCREENSHOTS = Path(
    os.environ.get("VQ_SCREENSHOT_DIR", str(HERE.parents[1] / "docs" / "screenshots"))
)
# The first page load of NiceGUI in a cold Chromium takes a few seconds on 2 cores.
WAIT_S = 20.0
DETAILS_DIALOG = "[data-dialog=details]"
PASSWORD = "correct-horse-battery"
WORKER = "render-1"


class WebApp:
    """The server process and where its media files live.

    The port is read from the process on first use of ``url``, so the server boots
    while the test seeds its database.
    """

    def __init__(self, process: subprocess.Popen[str], media_dir: Path) -> None:
        self.process = process
        self.media_dir = media_dir
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once the server listens."""
        if self._url is None:
            assert self.process.stdout is not None
            # readline blocks until the server bound its socket (or died): no polling.
            line = self.process.stdout.readline()
            if not line.startswith("PORT "):
                code = self.process.poll()
                raise AssertionError(f"the web app did not start (exit code {code}): {line!r}")
            self._url = f"http://127.0.0.1:{int(line.split()[1])}"
        return self._url


def wait(driver: WebDriver, timeout: float = WAIT_S) -> WebDriverWait[WebDriver]:
    """A WebDriverWait with the suite's deadline, tolerant of Vue re-rendering a node."""
    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException])


def log_in(driver: WebDriver, web: WebApp, username: str, password: str = PASSWORD) -> None:
    """Sign in through the real form and wait for the job table of /queue."""
    driver.get(f"{web.url}/login?next=/queue")
    wait(driver).until(ec.presence_of_element_located((By.ID, "username"))).send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "submit").click()
    wait(driver).until(ec.url_to_be(f"{web.url}/queue"))
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-panel=jobs]")))


def screenshot(driver: WebDriver, name: str, full_page: bool = False) -> Path:
    """Save a PNG of the current screen (or the whole page) for the docs."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1440, min(4000, int(height) + 140))
    assert driver.save_screenshot(str(path)), f"screenshot {path} failed"
    return path


def stat(driver: WebDriver, key: str) -> str:
    """The number on a counter card."""
    return driver.find_element(By.CSS_SELECTOR, f"[data-stat={key}]").text


def text_of(driver: WebDriver, selector: str) -> str:
    """The text of an element the page's refresh may re-render meanwhile: read again
    when the element found was replaced before its text could be read."""

    def read(d: WebDriver) -> str | None:
        try:
            return d.find_element(By.CSS_SELECTOR, selector).text or None
        except StaleElementReferenceException:
            return None

    text: str = wait(driver).until(read)
    return text


def shown_job_ids(driver: WebDriver) -> set[str]:
    """Ids of the rows the job table shows now."""
    spans = driver.find_elements(By.CSS_SELECTOR, "[data-panel=jobs] span[data-job-id]")
    return {s.get_attribute("data-job-id") or "" for s in spans}


def row_status(driver: WebDriver, job_id: uuid.UUID) -> str | None:
    """The status badge of a job's row, or None when the row is not shown."""
    found = driver.find_elements(
        By.XPATH, f"//tr[.//span[@data-job-id='{job_id}']]//*[@data-status]"
    )
    return found[0].get_attribute("data-status") if found else None


# What a click on a node Vue is re-rendering, or one still animating, may raise.
_LOST_CLICK = (
    StaleElementReferenceException,
    NoSuchElementException,
    ElementClickInterceptedException,
    ElementNotInteractableException,
)


def click(driver: WebDriver, selector: str, by: str = By.CSS_SELECTOR) -> None:
    """Click an element once it is there and clickable; Vue may re-render it between
    finding and clicking, so a stale or covered element is looked up again."""

    def attempt(d: WebDriver) -> bool:
        try:
            element = d.find_element(by, selector)
            if not (element.is_displayed() and element.is_enabled()):
                return False
            element.click()
        except _LOST_CLICK:
            return False
        return True

    wait(driver).until(attempt, f"could not click {selector}")


# Where a dialog is in its life: absent (closed), animating (opening or closing), shown.
_DIALOG_STATE = """
const card = document.querySelector(arguments[0]);
if (!card) return 'absent';
const inner = card.closest('.q-dialog__inner');
if (inner && inner.classList.contains('q-dialog__inner--animating')) return 'animating';
return card.offsetParent === null ? 'absent' : 'shown';
"""
# How long a click may take to open or close a dialog before it counts as lost: the
# server's round trip on a loaded machine, not a poll interval.
_CLICK_TURNAROUND_S = 4.0


def _click_until(driver: WebDriver, button: str, dialog: str, shown: bool, why: str) -> None:
    """Click ``button`` until ``dialog`` is shown (or hidden), within the suite's deadline.

    A click on a row the page is re-rendering can be lost, so one is not enough to rely
    on. But a second click must not land while the dialog animates: a click on its
    backdrop closes it again. So nothing is clicked while the dialog animates, and a
    click counts as lost only after ``_CLICK_TURNAROUND_S`` without an effect.
    """
    target = "shown" if shown else "absent"
    last_click = float("-inf")

    def done(d: WebDriver) -> bool:
        nonlocal last_click
        state = d.execute_script(_DIALOG_STATE, dialog)
        if state == target:
            return True
        if state == "animating" or time.monotonic() - last_click < _CLICK_TURNAROUND_S:
            return False
        try:
            d.find_element(By.CSS_SELECTOR, button).click()
            last_click = time.monotonic()
        except _LOST_CLICK:
            pass
        return False

    wait(driver).until(done, why)


def open_dialog(driver: WebDriver, button: str, dialog: str) -> None:
    """Click ``button`` (in a table the page re-renders each tick) until ``dialog`` shows."""
    _click_until(driver, button, dialog, shown=True, why=f"{dialog} did not open")


def close_dialog(driver: WebDriver, selector: str) -> None:
    """Close the dialog ``selector`` with its close button and wait until it is hidden."""
    button = f"{selector} [data-action=close]"
    _click_until(driver, button, selector, shown=False, why=f"{selector} did not close")


def unfold(driver: WebDriver, selector: str) -> None:
    """Open a ``<details>`` element by clicking its summary, as a user would.

    A click can land while the dialog is still animating into place, or Vue can
    re-render the row and drop the element's open state; the summary is then clicked
    again until the fold shows its content, within the suite's deadline.
    """

    def opened(d: WebDriver) -> bool:
        fold = d.find_element(By.CSS_SELECTOR, selector)
        if not d.execute_script("return arguments[0].open", fold):
            try:
                fold.find_element(By.TAG_NAME, "summary").click()
            except (ElementClickInterceptedException, ElementNotInteractableException):
                return False
        return bool(fold.find_element(By.CSS_SELECTOR, "pre").is_displayed())

    wait(driver).until(opened, f"could not unfold {selector}")


# The row actions that open a dialog, and the dialog: these are clicked until it shows.
_ROW_DIALOGS = {"details": DETAILS_DIALOG, "cancel": "[data-dialog=confirm-cancel]"}


def row_button(driver: WebDriver, action: str, job_id: uuid.UUID) -> None:
    """Click a row's action button (details, cancel, retry); one that opens a dialog,
    until the dialog shows (a click on a row the page is re-rendering can be lost).
    Retry acts at once, so it is clicked once: a second click would retry again."""
    selector = f"button[data-action={action}][data-job-id='{job_id}']"
    dialog = _ROW_DIALOGS.get(action)
    if dialog is None:
        click(driver, selector)
        return
    open_dialog(driver, selector, dialog)


def choose(driver: WebDriver, filter_name: str, option: str) -> None:
    """Pick ``option`` in one of the filter bar's selects."""
    click(driver, f"[data-filter={filter_name}]")
    click(
        driver,
        "//div[contains(@class,'q-menu')]//div[contains(@class,'q-item')]"
        f"[normalize-space()='{option}']",
        By.XPATH,
    )
    wait(driver).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".q-menu")))


@dataclass
class Seeded:
    """Jobs in each state, made through the store as a worker would."""

    completed: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    running: list[uuid.UUID] = field(default_factory=list)
    queued: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)


QUESTIONS = [
    "Why is the sky blue?",
    "How does gravity bend light?",
    "What is a derivative, intuitively?",
    "Why do ice cubes float?",
    "How do vaccines train the immune system?",
    "What makes a prime number special?",
]


def failure(message: str = "orchestrator answered 503 Service Unavailable") -> dict[str, Any]:
    """The error record the worker stores for a failed render, with a real stack."""
    try:
        raise ServiceError(
            ErrorCategory.API_ERROR,
            message,
            service="orchestrator",
            call="POST /render",
            status_code=503,
            body_excerpt='{"error": "renderer overloaded"}',
        )
    except ServiceError as exc:
        return error_record(exc, ErrorCategory.API_ERROR, attempt=1, retryable=True)


async def complete(
    store: Store, job_type: str, result: dict[str, Any], n: int = 1
) -> list[uuid.UUID]:
    """Claim ``n`` jobs of ``job_type`` and complete them with ``result``."""
    claimed = await store.claim(WORKER, {job_type: "noop"}, n, 60)
    done = await store.complete_many(WORKER, [(c.id, dict(result)) for c in claimed])
    assert len(done) == len(claimed) == n, (done, claimed)
    return done


async def seed(store: Store, video: dict[str, Any] | None = None) -> Seeded:
    """A queue with a bit of everything: a worker, two services, jobs in every status."""
    out = Seeded()
    await store.register_worker(WORKER, "render-host-a", 4242, 4, ["doubt", "diagram"], 60)
    await store.heartbeat(WORKER, 1)
    await store.record_service_health("orchestrator", True, "200 OK in 12 ms", ["doubt"])
    await store.record_service_health("manim", False, "connection refused", ["diagram"])
    result = video or {"video_url": "http://127.0.0.1:9/none.mp4", "duration": 8.0}
    await store.enqueue_many(
        [NewJob("doubt", {"question": q}, Priority.HIGH) for q in QUESTIONS[:3]]
    )
    out.completed = await complete(store, "doubt", result, 3)
    fail_jobs = await store.enqueue_many([NewJob("diagram", {"topic": "Fourier series"})])
    claimed = await store.claim(WORKER, {"diagram": "noop"}, 1, 60)
    assert await store.fail(WORKER, claimed[0].id, failure(), None) is not None
    out.failed = [fail_jobs[0].id]
    running = await store.enqueue(NewJob("doubt", {"question": "Explain entropy to a child"}))
    await store.claim(WORKER, {"doubt": "noop"}, 1, 60)
    await store.update_progress(WORKER, running.id, 40, "diagram")
    out.running = [running.id]
    cancelled = await store.enqueue(NewJob("doubt", {"question": "Never mind"}, Priority.LOW))
    await store.cancel(cancelled.id, actor=Actor("admin", "cli"))
    out.cancelled = [cancelled.id]
    queued = await store.enqueue_many(
        [
            NewJob("doubt", {"question": q}, p)
            for q, p in zip(
                QUESTIONS[3:], (Priority.URGENT, Priority.NORMAL, Priority.LOW), strict=True
            )
        ]
        + [NewJob("diagram", {"topic": "Pythagoras"}, Priority.NORMAL)]
    )
    out.queued = [q.id for q in queued]
    return out
