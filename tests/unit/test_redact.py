"""What is kept from whom (vq_core/redact.py): URL credentials stay out of every log line,
stacks stay out of what viewers and operators see."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from vq_core.logs import JsonFormatter, RedactUrls, setup_logging
from vq_core.redact import job_document_without_stacks, redact_urls, without_stack
from vq_plugins.observers import job_log

URL = "http://user:s3cret@127.0.0.1:9000/media/v.mp4"
REDACTED = "http://***@127.0.0.1:9000/media/v.mp4"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (URL, REDACTED),
        ("https://tok@127.0.0.1/x?a=b@c", "https://***@127.0.0.1/x?a=b@c"),
        ("http://u:p@ss@127.0.0.1:8/v", "http://***@127.0.0.1:8/v"),  # a raw @ in the password
        (f"{URL} answered 404; retried {URL}", f"{REDACTED} answered 404; retried {REDACTED}"),
        (f"('{URL}')", f"('{REDACTED}')"),
        ("HTTP://A:B@127.0.0.1/", "HTTP://***@127.0.0.1/"),
        ("rtsp://cam:pw@127.0.0.1:554/s", "rtsp://***@127.0.0.1:554/s"),
        # Nothing to hide: no userinfo, or an @ only in the path or in plain text.
        ("http://127.0.0.1:9000/media/a@b.mp4", "http://127.0.0.1:9000/media/a@b.mp4"),
        (
            "mail ops@127.0.0.1 about http://127.0.0.1/",
            "mail ops@127.0.0.1 about http://127.0.0.1/",
        ),
        ("", ""),
    ],
)
def test_redact_urls(text: str, expected: str) -> None:
    assert redact_urls(text) == expected


# -- job_log ------------------------------------------------------------------------


def test_the_verified_line_hides_url_credentials(caplog: pytest.LogCaptureFixture) -> None:
    job_id = uuid.uuid4()
    with caplog.at_level(logging.INFO, logger="vq.job.events"):
        job_log.vq_job_event(job_id, "verified", {"video_url": URL, "job_type": "doubt"})
    [record] = caplog.records
    assert record.getMessage() == f"job {job_id}: video verified: {REDACTED}"
    assert record.__dict__["video_url"] == REDACTED
    assert "s3cret" not in json.dumps(record.__dict__, default=str)


@pytest.mark.parametrize("event", ["retry_scheduled", "failed"])
def test_failure_lines_hide_url_credentials(caplog: pytest.LogCaptureFixture, event: str) -> None:
    details = {"attempt": 1, "category": "BAD_RESPONSE", "error": f"{URL} answered 404"}
    with caplog.at_level(logging.INFO, logger="vq.job.events"):
        job_log.vq_job_event(uuid.uuid4(), event, details)
    [record] = caplog.records
    assert f"{REDACTED} answered 404" in record.getMessage()
    assert record.__dict__["error"] == f"{REDACTED} answered 404"
    assert "s3cret" not in record.getMessage()


# -- every log line of a vq process -------------------------------------------------


@pytest.fixture
def root_logging() -> Iterator[None]:
    """setup_logging replaces the root handlers: give them back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_vq_process_redacts_every_line(capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    setup_logging("INFO", as_json=as_json)
    # httpx logs every request's URL at INFO, credentials included.
    logging.getLogger("httpx").info('HTTP Request: %s %s "%s"', "GET", URL, "HTTP/1.1 200 OK")
    logging.getLogger("vq.worker").warning("service down", extra={"detail": f"{URL} refused"})
    try:
        raise ConnectionError(f"{URL} unreachable")
    except ConnectionError:
        logging.getLogger("vq.worker").exception("verification failed")
    err = capsys.readouterr().err
    assert "s3cret" not in err
    assert err.count(REDACTED) == (3 if as_json else 2)  # the extra shows in JSON only


def test_the_filter_keeps_a_malformed_call() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactUrls())
    handler.setFormatter(JsonFormatter())
    record = logging.makeLogRecord({"msg": "%s %s", "args": ("only one",)})
    assert RedactUrls().filter(record) is True
    record = logging.makeLogRecord({"msg": "%s", "args": (URL,), "video_url": URL})
    handler.handle(record)
    line = json.loads(stream.getvalue())
    assert line["message"] == REDACTED and line["video_url"] == REDACTED


# -- stacks -------------------------------------------------------------------------


def test_without_stack_keeps_everything_else() -> None:
    error = {"message": "boom", "type": "UNKNOWN", "stack": "Traceback ...", "attempt": 2}
    assert without_stack(error) == {"message": "boom", "type": "UNKNOWN", "attempt": 2}
    assert "stack" in error  # the stored record is left alone
    assert without_stack(None) is None
    assert without_stack({"message": "m"}) == {"message": "m"}


def test_job_document_without_stacks() -> None:
    document = {
        "id": "j",
        "error": {"message": "boom", "stack": "Traceback a"},
        "events": [
            {"event": "created", "details": None},
            {"event": "failed", "details": {"message": "boom", "stack": "Traceback b"}},
        ],
    }
    shown = job_document_without_stacks(document)
    assert "Traceback" not in json.dumps(shown)
    assert shown["error"] == {"message": "boom"}
    assert shown["events"][1]["details"] == {"message": "boom"}
    assert document["error"]["stack"] == "Traceback a"  # a copy
    assert job_document_without_stacks({"id": "j", "error": None}) == {"id": "j", "error": None}
