"""schemathesis against the app's own OpenAPI document: no generated request, valid or
not, gets a 500.

The app runs in uvicorn on a loopback port in a thread with its own event loop and
pool (schemathesis' calls are synchronous); it is the same ``create_app`` the server
uses, with an admin token so every route is reached past authentication.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from vq_core import db
from vq_core.config import Settings
from vq_core.models import NewJob
from vq_core.store import Store
from vq_ui.app import create_app
from vq_ui.auth import users

pytest_plugins = ["support.api"]  # cheap argon2

OPERATIONS = [
    ("/api/v1/jobs", "POST"),
    ("/api/v1/jobs", "GET"),
    ("/api/v1/jobs/{job_id}", "GET"),
    ("/api/v1/jobs/{job_id}/cancel", "POST"),
    ("/api/v1/jobs/{job_id}/retry", "POST"),
    ("/api/v1/stats", "GET"),
    ("/api/v1/jobs/retry", "POST"),
    ("/api/v1/jobs/cancel", "POST"),
    ("/api/v1/types", "GET"),
    ("/api/v1/types/{type}", "PATCH"),
    ("/api/v1/types/{type}/changes", "GET"),
    ("/api/v1/services", "GET"),
    ("/api/v1/services/{name}", "PATCH"),
    # The test send before the add: and the fuzzed app has no webhook or e-mail plugin
    # (``SENDS_NOTHING``), so a fuzzed sink is stored at most, never delivered to.
    ("/api/v1/alerts/test", "POST"),
    ("/api/v1/alerts/sinks", "GET"),
    ("/api/v1/alerts/sinks", "POST"),
    ("/api/v1/alerts/sinks/{name}", "DELETE"),
    ("/api/v1/alerts/deliveries", "GET"),
    ("/api/v1/users", "POST"),
    ("/api/v1/users/{username}", "PATCH"),
    ("/api/v1/tokens", "POST"),
    ("/api/v1/tokens/{token_id}", "DELETE"),
]
# Not fuzzed: GET /api/v1/jobs/{job_id}/events and GET /api/v1/events are Server-Sent
# Events streams. schemathesis reads a whole response before checking it, and a live
# stream does not end (a job's ends with its final state), so every valid case would
# wait out the timeout; tests/integration/test_event_stream.py covers them over HTTP.
MAX_EXAMPLES = 25
# Operations without parameters or body: the negative mode has nothing to break there.
NO_INPUT = {
    ("/api/v1/stats", "GET"),
    ("/api/v1/types", "GET"),
    ("/api/v1/services", "GET"),
    ("/api/v1/alerts/sinks", "GET"),
    ("/api/v1/alerts/test", "POST"),
}
# Sinks that reach a network: off in the fuzzed app, so POST /alerts/test only logs.
SENDS_NOTHING = ["alert_webhook", "alert_email"]


@dataclass
class Served:
    url: str
    token: str
    job_id: str


@pytest.fixture
def served(settings: Settings, dsn: str) -> Iterator[Served]:
    """The app on a free loopback port, with an admin token and one job."""
    quiet = settings.model_copy(update={"disabled_plugins": SENDS_NOTHING})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    ready = threading.Event()
    info: dict[str, str] = {}
    holder: dict[str, uvicorn.Server] = {}

    async def main() -> None:
        pool = await db.create_pool(dsn, min_size=1, max_size=4)
        store = Store(pool)
        info["token"] = (await users.create_token(store, "fuzz", "admin")).token
        info["job_id"] = str((await store.enqueue(NewJob("doubt"))).id)
        config = uvicorn.Config(
            create_app(quiet, store, admin_page=False), log_level="error", lifespan="off"
        )
        server = uvicorn.Server(config)
        holder["server"] = server
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)  # uvicorn has no start-up event to wait on
        ready.set()
        try:
            await serving
        finally:
            await pool.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the app did not start"
    port = sock.getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", info["token"], info["job_id"])
    finally:
        holder["server"].should_exit = True
        thread.join(30)
        sock.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(served: Served, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {served.token}"}
    checked = 0
    skipped: list[tuple[str, str]] = []
    for path, method in OPERATIONS:
        operation = schema[path][method]

        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            nonlocal checked
            if mode is GenerationMode.NEGATIVE and "Authorization" in (case.headers or {}):
                case.headers = {k: v for k, v in case.headers.items() if k != "Authorization"}
            response = case.call(base_url=served.url, headers=headers, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])
            checked += 1

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # No input to break (GET /stats has no parameters): nothing to send.
            assert mode is GenerationMode.NEGATIVE, (path, method)
            skipped.append((path, method))
    assert checked >= len(OPERATIONS) - len(skipped)
    assert set(skipped) <= NO_INPUT, skipped


def test_a_real_job_survives_the_fuzzing_routes(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/api/v1/openapi.json")
    operation = schema["/api/v1/jobs/{job_id}"]["GET"]
    case = operation.Case(path_parameters={"job_id": served.job_id})
    response = case.call(base_url=served.url, headers={"Authorization": f"Bearer {served.token}"})
    assert response.status_code == 200
    assert response.json()["id"] == served.job_id
