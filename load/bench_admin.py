"""Admin page benchmark: a million jobs, the page's first render and the list queries.

1. Creates (or, with --reuse, keeps) the database ``vq_bench_admin`` on the server,
   migrates it and fills ``vq.jobs`` with --jobs rows by load/bench_admin_fill.sql.
2. Times ``Store.list_jobs`` as the page calls it (status+type filters, text searches,
   the next page), plus ``Store.stats`` and ``throughput_series`` that every refresh
   reads; --runs calls each, so PostgreSQL's switch to generic plans is included.
3. Serves the real app (``create_app``) in a subprocess, signs in with headless
   Chromium, and times ``/queue`` from navigation until the job table's rows are in
   the DOM, cold (first load) and warm.

With --drain, both measurements run while a real ``vq worker`` process (default
settings) drains no-op jobs in the same database: a thread keeps its backlog refilled
(batches of 1,000 whenever fewer than 10,000 wait) and deletes the drained jobs every
few seconds, so the table stays at --jobs rows plus the backlog.

Prints one JSON document. Goals: page < 1000 ms warm and < 2000 ms cold, list query
p95 < 100 ms.

Usage: python load/bench_admin.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
       [--jobs 1000000] [--reuse] [--runs 20] [--page-runs 5] [--no-browser] [--explain]
       [--drain]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from vq_core import db
from vq_core.config import Settings
from vq_core.db import migrations
from vq_core.models import JobFilter, JobStatus, NewJob
from vq_core.store import Store, list_query, listing

HERE = Path(__file__).resolve().parent
DATABASE = "vq_bench_admin"
USER, PASSWORD = "bench-admin", "bench-admin-password"
PAGE_GOAL_MS, WARM_PAGE_GOAL_MS, QUERY_GOAL_MS = 2000.0, 1000.0, 100.0
# name -> (filters, sort): what an operator does on the page.
QUERIES: dict[str, tuple[JobFilter, str]] = {
    "first_page": (JobFilter(), "-created_at"),
    "status_failed+type_diagram": (
        JobFilter(status=JobStatus.FAILED, job_type="diagram"),
        "-created_at",
    ),
    "status_cancelled+type_compose": (
        JobFilter(status=JobStatus.CANCELLED, job_type="compose"),
        "-created_at",
    ),
    "status_queued+type_doubt": (
        JobFilter(status=JobStatus.QUEUED, job_type="doubt"),
        "-created_at",
    ),
    "status_completed+type_doubt_oldest": (
        JobFilter(status=JobStatus.COMPLETED, job_type="doubt"),
        "created_at",
    ),
    "status_running+type_compose": (
        JobFilter(status=JobStatus.RUNNING, job_type="compose"),
        "-created_at",
    ),
    "type_rare": (JobFilter(job_type="revideo"), "-created_at"),
    "status_cancelled": (JobFilter(status=JobStatus.CANCELLED), "-updated_at"),
    "sort_priority": (JobFilter(), "priority"),
    "sort_updated": (JobFilter(), "-updated_at"),
    "status_queued+sort_priority": (JobFilter(status=JobStatus.QUEUED), "priority"),
    "text_common_topic": (JobFilter(text="gravity"), "-created_at"),
    "text_one_job": (JobFilter(text="doubt #123457)"), "-created_at"),
    "text_no_match": (JobFilter(text="no such words"), "-created_at"),
    "text_prefix_type": (JobFilter(text="dou"), "-created_at"),
    "text_hundred_jobs": (JobFilter(text="12345"), "-created_at"),
    "status_failed+text_topic": (JobFilter(status=JobStatus.FAILED, text="entropy"), "-created_at"),
}


def dsn_for(server: str, name: str) -> str:
    """The DSN of database ``name`` on the server of ``server``."""
    return server.rsplit("/", 1)[0] + "/" + name


async def prepare(server: str, jobs: int, reuse: bool) -> tuple[str, float | None]:
    """The bench database, filled; returns its DSN and the fill time (None if reused)."""
    dsn = dsn_for(server, DATABASE)
    admin = await asyncpg.connect(server)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if exists and reuse:
            conn = await asyncpg.connect(dsn)
            try:
                count = await conn.fetchval("SELECT count(*) FROM vq.jobs")
            finally:
                await conn.close()
            if count == jobs:
                conn = await db.connect(dsn)
                try:  # a database filled before the latest migration gets it now
                    if await migrations.migrate(conn):
                        await conn.execute("ANALYZE vq.jobs")
                finally:
                    await conn.close()
                return dsn, None
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    conn = await db.connect(dsn)
    try:
        await migrations.migrate(conn)
        started = time.perf_counter()
        await conn.execute((HERE / "bench_admin_fill.sql").read_text(), jobs)
        await conn.execute("VACUUM ANALYZE vq.jobs")
        fill_s = time.perf_counter() - started
    finally:
        await conn.close()
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    try:
        from vq_ui.auth import users

        await users.create_user(Store(pool), USER, PASSWORD, "admin")
    finally:
        await pool.close()
    return dsn, fill_s


def summary(samples_ms: list[float]) -> dict[str, float]:
    """First, median, p95 and max of a list of milliseconds."""
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "first_ms": round(samples_ms[0], 1),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
    }


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> tuple[list[float], Any]:
    """Milliseconds of ``runs`` awaits of ``call`` and the last result."""
    samples, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, result


async def measure_queries(dsn: str, runs: int, explain: bool) -> dict[str, Any]:
    """Time the store calls behind the page."""
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    store = Store(pool)
    out: dict[str, Any] = {}
    try:
        for name, (filters, sort) in QUERIES.items():
            samples, page = await timed(partial(store.list_jobs, filters, sort), runs)
            out[name] = {**summary(samples), "rows": len(page.jobs)}
            if page.next_cursor:
                cursor = page.next_cursor
                nxt, _ = await timed(partial(store.list_jobs, filters, sort, cursor), runs)
                out[name]["next_page"] = summary(nxt)
            if explain:
                out[name]["plan"] = await explain_plan(pool, filters, sort)
        # A pasted job id: the page reads it by primary key instead of searching.
        some_id = (await store.list_jobs(limit=1)).jobs[0].id
        samples, _ = await timed(partial(store.get_job, some_id), runs)
        out["get_job"] = summary(samples)
        for name, call in (("stats", store.stats), ("throughput_series", store.throughput_series)):
            samples, _ = await timed(call, max(3, runs // 4))
            out[name] = summary(samples)
    finally:
        await pool.close()
    return out


async def explain_plan(pool: asyncpg.Pool, filters: JobFilter, sort: str) -> list[str]:
    """EXPLAIN ANALYZE of the statements Store.list_jobs runs for the first page, built
    as it builds them (a search: the window of the next jobs, then the word index's ids,
    then the page among them or the ordered walk)."""
    query, spec = list_query(sort)
    args = listing.filter_args(filters)
    untexted = (*args[:3], None, *args[4:])
    plan: list[str] = []

    async def explain(statement: str, *values: Any) -> list[asyncpg.Record]:
        plan.extend(
            r[0] for r in await pool.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *values)
        )
        return await pool.fetch(statement, *values)

    text = args[3]
    if text is not None:
        if spec.by_id:
            rows = await explain(listing.window_query(sort), *untexted, None, None, 51, text)
            if len(rows) > 50:
                return plan
            plan.append("-- the window was not enough; the word index:")
        hits = await explain(listing.search_ids_query(), text)
        if len(hits) <= listing.SEARCH_IDS:
            plan.append("-- then, among the ids:")
            ids = [r["job_id"] for r in hits]
            await explain(listing.list_among_query(sort), *untexted, None, None, 51, ids)
            return plan
        plan.append("-- more ids than SEARCH_IDS, then the ordered walk:")
        if spec.by_id:
            await explain(listing.window_query(sort, 0), *untexted, None, None, 51, text)
            return plan
    await explain(query, *args, None, None, 51)
    return plan


class Drain:
    """A real ``vq worker`` (default settings) draining no-op jobs beside the
    measurements, its backlog refilled and its finished jobs deleted by a thread."""

    LOW, BATCH, PRUNE_EVERY_S = 10_000, 1_000, 5.0

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.stop = threading.Event()
        self.enqueued = self.unfinished = 0
        self.started = self.elapsed = 0.0
        self.worker: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._feed()), daemon=True)
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def __enter__(self) -> Drain:
        self.thread.start()
        if not self.ready.wait(120) or self.error:
            raise SystemExit(f"the drain did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(120)

    async def _feed(self) -> None:
        pool = await db.create_pool(self.dsn, min_size=1, max_size=2)
        store = Store(pool)
        try:
            # Only the no-op jobs are the drain's: the fill's live backlog stays as
            # filled (a paused type is not claimed), so --reuse finds the same table.
            await pool.execute(_PAUSE_FILL_TYPES)
            await self._fill(store, 2 * self.LOW)
            env = dict(
                os.environ,
                VQ_DATABASE_URL=self.dsn,
                VQ_CONFIG="/nonexistent/vq.toml",
                VQ_LOG_LEVEL="WARNING",
            )
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "vq_core.cli", "worker"], env=env, stdout=sys.stderr
            )
            deadline = time.monotonic() + 60
            while not await pool.fetchval(_DRAINED):
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker completed nothing in 60 s")
                await asyncio.sleep(0.05)
            self.started = time.monotonic()
            self.ready.set()
            pruned_at = time.monotonic()
            while not self.stop.is_set():
                if await pool.fetchval(_BACKLOG) < self.LOW:
                    await self._fill(store, self.LOW)
                if time.monotonic() - pruned_at > self.PRUNE_EVERY_S:
                    await pool.execute(_PRUNE_DRAINED)
                    pruned_at = time.monotonic()
                await asyncio.sleep(0.2)
            self.elapsed = time.monotonic() - self.started
            self.unfinished = await pool.fetchval(_UNFINISHED)
        except BaseException as exc:  # reported by __enter__ or summary()
            self.error = exc
            self.ready.set()
        finally:
            if self.worker is not None:
                self.worker.terminate()
                self.worker.wait(60)
            # The jobs it left: the next --reuse finds --jobs rows again.
            await pool.execute(_DELETE_ALL)
            await pool.execute(_UNPAUSE_FILL_TYPES)
            await pool.execute("DELETE FROM vq.workers")
            await pool.close()

    async def _fill(self, store: Store, n: int) -> None:
        for _ in range(0, n, self.BATCH):
            await store.enqueue_many([NewJob(DRAIN_TYPE) for _ in range(self.BATCH)])
        self.enqueued += n

    def summary(self) -> dict[str, Any]:
        """How much it drained while the measurements ran."""
        if self.error:
            raise SystemExit(f"the drain failed: {self.error!r}")
        drained = self.enqueued - self.unfinished
        return {
            "seconds": round(self.elapsed, 1),
            "jobs_drained": drained,
            "jobs_per_s": round(drained / self.elapsed, 1),
        }


DRAIN_TYPE = "noop"  # no job of the fill has it: the drain's rows are told apart by it
_BACKLOG = f"SELECT count(*) FROM vq.jobs WHERE status = 'queued' AND job_type = '{DRAIN_TYPE}'"
_UNFINISHED = f"""
SELECT count(*) FROM vq.jobs
 WHERE status IN ('queued', 'running') AND job_type = '{DRAIN_TYPE}'
"""
_DRAINED = f"""
SELECT EXISTS (SELECT 1 FROM vq.jobs WHERE status = 'completed' AND job_type = '{DRAIN_TYPE}')
"""
# What a retention purge would do to them, every few seconds instead of daily.
_PRUNE_DRAINED = f"""
WITH gone AS (
    DELETE FROM vq.jobs WHERE job_type = '{DRAIN_TYPE}' AND status = 'completed' RETURNING id
)
DELETE FROM vq.job_events e USING gone WHERE e.job_id = gone.id
"""
_FILL_TYPES = "ARRAY['doubt', 'diagram', 'compose', 'revideo']"  # bench_admin_fill.sql's
_PAUSE_FILL_TYPES = f"""
INSERT INTO vq.job_queue_config (job_type, paused, updated_by)
SELECT t, true, 'bench_admin --drain' FROM unnest({_FILL_TYPES}) AS t
ON CONFLICT (job_type) DO UPDATE SET paused = true
"""
_UNPAUSE_FILL_TYPES = f"""
DELETE FROM vq.job_queue_config
 WHERE job_type = ANY({_FILL_TYPES}) AND updated_by = 'bench_admin --drain'
"""
_DELETE_ALL = f"""
WITH gone AS (DELETE FROM vq.jobs WHERE job_type = '{DRAIN_TYPE}' RETURNING id)
DELETE FROM vq.job_events e USING gone WHERE e.job_id = gone.id
"""


# Where the browser's time goes, from the navigation's start (ms): the server's answer
# (the page is built, first numbers included, before the HTML is sent), the scripts
# parsed, the load event, and now, when the rows are in the DOM.
_TIMING_JS = """
const n = performance.getEntriesByType('navigation')[0];
return {html_response: n.responseEnd - n.requestStart,
        dom_content_loaded: n.domContentLoadedEventEnd, load_event: n.loadEventEnd,
        rows_present: performance.now()};
"""


def start_server(dsn: str, media: Path) -> tuple[subprocess.Popen[str], str]:
    """This script in ``serve`` mode; returns the process and its base URL."""
    env = {
        **os.environ,
        "VQ_DATABASE_URL": dsn,
        "VQ_MEDIA_DIR": str(media),
        "VQ_DATA_DIR": str(media.parent),
        "VQ_CONFIG": "/nonexistent/vq.toml",
    }
    process = subprocess.Popen(
        [sys.executable, __file__, "serve"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the socket is bound
    if not line.startswith("PORT "):
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, f"http://127.0.0.1:{line.split()[1]}"


def measure_page(dsn: str, runs: int) -> dict[str, Any]:
    """Cold and warm first render of /queue in headless Chromium, signed in."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    rows = (By.CSS_SELECTOR, "[data-panel=jobs] span[data-job-id]")
    with tempfile.TemporaryDirectory(prefix="vq-bench-") as tmp:
        process, url = start_server(dsn, Path(tmp) / "media")
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("VQ_CHROMIUM", "/usr/bin/chromium")
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1440,1000",
            f"--user-data-dir={tmp}/profile",
        ):
            options.add_argument(arg)
        service = Service(os.environ.get("VQ_CHROMEDRIVER", "/usr/bin/chromedriver"))
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.get(f"{url}/login?next=/queue")
            driver.find_element(By.ID, "username").send_keys(USER)
            driver.find_element(By.ID, "password").send_keys(PASSWORD)
            started = time.perf_counter()
            driver.find_element(By.ID, "submit").click()
            WebDriverWait(driver, 30).until(ec.presence_of_element_located(rows))
            # Cold: a fresh server process and browser, right after signing in.
            cold_ms = (time.perf_counter() - started) * 1000
            samples: list[float] = []
            marks: list[dict[str, float]] = []
            for _ in range(runs):
                driver.get("about:blank")
                started = time.perf_counter()
                driver.get(f"{url}/queue")
                WebDriverWait(driver, 30).until(ec.presence_of_element_located(rows))
                samples.append((time.perf_counter() - started) * 1000)
                marks.append(driver.execute_script(_TIMING_JS))
            shown = len(driver.find_elements(*rows))
        finally:
            driver.quit()
            process.terminate()
            process.wait(15)
    return {
        "after_sign_in_cold_ms": round(cold_ms, 1),
        **summary(samples),
        "breakdown_median_ms": {
            key: round(statistics.median(m[key] for m in marks), 1) for key in marks[0]
        },
        "rows_shown": shown,
    }


def serve() -> None:
    """Serve create_app on a free loopback port (the page measurement's server)."""
    import socket

    import uvicorn

    from vq_ui.app import create_app

    async def main() -> None:
        settings = Settings()
        assert settings.database_url
        store = Store(await db.create_pool(settings.database_url, min_size=2, max_size=10))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        app = create_app(settings, store)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        await server.serve(sockets=[sock])

    asyncio.run(main())


def main() -> None:
    """Run the benchmark and print JSON."""
    if sys.argv[1:2] == ["serve"]:
        serve()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep a filled database")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--page-runs", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--explain", action="store_true", help="add EXPLAIN ANALYZE plans")
    parser.add_argument(
        "--drain", action="store_true", help="measure while a vq worker drains no-op jobs"
    )
    args = parser.parse_args()
    dsn, fill_s = asyncio.run(prepare(args.server, args.jobs, args.reuse))
    report: dict[str, Any] = {
        "jobs": args.jobs,
        "fill_s": None if fill_s is None else round(fill_s, 1),
        "load_average": os.getloadavg(),
    }
    with Drain(dsn) if args.drain else contextlib.nullcontext() as drain:
        report["queries"] = asyncio.run(measure_queries(dsn, args.runs, args.explain))
        if not args.no_browser:
            report["page"] = measure_page(dsn, args.page_runs)
    if drain is not None:
        report["drain"] = drain.summary()
    report["load_average_after"] = os.getloadavg()
    queries = report["queries"]
    filtered = [k for k, (f, _) in QUERIES.items() if (f.status or f.job_type) and not f.text]
    report["goals"] = {
        "filtered_queries_p95_under_100ms": all(
            queries[k]["p95_ms"] < QUERY_GOAL_MS for k in filtered
        ),
        "list_queries_over_100ms_p95": [
            k for k in QUERIES if queries[k]["p95_ms"] >= QUERY_GOAL_MS
        ],
        "page_warm_under_1s": (
            report["page"]["max_ms"] < WARM_PAGE_GOAL_MS if "page" in report else None
        ),
        "page_cold_under_2s": (
            report["page"]["after_sign_in_cold_ms"] < PAGE_GOAL_MS if "page" in report else None
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
