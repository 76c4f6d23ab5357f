"""Load on the REST API: job submission (single and batched) and the reads clients and
the admin page make (list with filters and paging, one job, stats).

    VQ_TOKEN=<operator token> locust -f load/locustfile.py --host http://127.0.0.1:8080

``VQ_LOAD_JOB_TYPE`` picks the submitted type (default ``noop``, which the built-in noop
service completes at once, so the queue stays drained and reads see real traffic).
``load/run_locust_smoke.py`` (``tox -e load``) starts a server and runs this headless.
"""

from __future__ import annotations

import os
import random
import uuid
from collections import deque
from typing import Any

from locust import HttpUser, between, events, task

JOB_TYPE = os.environ.get("VQ_LOAD_JOB_TYPE", "noop")
PRIORITIES = ("urgent", "high", "normal", "low")
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
TOPICS = ("gravity", "photosynthesis", "fractions", "volcanoes", "rainbows", "magnets")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--vq-token", default=os.environ.get("VQ_TOKEN", ""), help="API token")


class ApiUser(HttpUser):
    """A client of the platform: submits doubts and reads the queue."""

    wait_time = between(0.01, 0.1)

    def on_start(self) -> None:
        token = self.environment.parsed_options.vq_token if self.environment.parsed_options else ""
        token = token or os.environ.get("VQ_TOKEN", "")
        if not token:
            raise RuntimeError("set VQ_TOKEN (an operator token) or pass --vq-token")
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.recent: deque[str] = deque(maxlen=200)

    def _job(self) -> dict[str, Any]:
        topic = random.choice(TOPICS)
        return {
            "job_type": JOB_TYPE,
            "priority": random.choice(PRIORITIES),
            "payload": {"question": f"Explain {topic} ({uuid.uuid4().hex[:8]})"},
        }

    @task(6)
    def submit_one(self) -> None:
        with self.client.post(
            "/api/v1/jobs", json=self._job(), name="POST /jobs", catch_response=True
        ) as r:
            if r.status_code != 201:
                r.failure(f"expected 201, got {r.status_code}: {r.text[:200]}")
                return
            self.recent.append(r.json()["id"])

    @task(1)
    def submit_batch(self) -> None:
        batch = [self._job() for _ in range(20)]
        with self.client.post(
            "/api/v1/jobs", json=batch, name="POST /jobs (20)", catch_response=True
        ) as r:
            if r.status_code != 201 or len(r.json().get("jobs", [])) != 20:
                r.failure(f"expected 201 with 20 jobs, got {r.status_code}: {r.text[:200]}")

    @task(1)
    def submit_idempotent(self) -> None:
        key = f"load-{random.randrange(50)}"
        with self.client.post(
            "/api/v1/jobs",
            json=self._job(),
            headers={"Idempotency-Key": key},
            name="POST /jobs (Idempotency-Key)",
            catch_response=True,
        ) as r:
            if r.status_code not in (200, 201):
                r.failure(f"expected 200/201, got {r.status_code}: {r.text[:200]}")

    @task(4)
    def list_jobs(self) -> None:
        params: dict[str, Any] = {"limit": 50}
        choice = random.random()
        if choice < 0.3:
            params["status"] = random.choice(STATUSES)
        elif choice < 0.5:
            params["priority"] = random.choice(PRIORITIES)
        elif choice < 0.6:
            params["q"] = random.choice(TOPICS)
        r = self.client.get("/api/v1/jobs", params=params, name="GET /jobs")
        cursor = r.json().get("next_cursor") if r.ok else None
        if cursor:
            self.client.get(
                "/api/v1/jobs", params={**params, "cursor": cursor}, name="GET /jobs (next page)"
            )

    @task(4)
    def get_job(self) -> None:
        if not self.recent:
            return
        job_id = random.choice(self.recent)
        self.client.get(f"/api/v1/jobs/{job_id}", name="GET /jobs/{id}")

    @task(1)
    def stats(self) -> None:
        self.client.get("/api/v1/stats", name="GET /stats")
