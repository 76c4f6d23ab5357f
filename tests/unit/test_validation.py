"""vq_core.validation on its own: every check of a submitted job, without a database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vq_core.errors import InvalidInput
from vq_core.models import Priority, QueueConfig
from vq_core.validation import (
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    JobRequest,
    check_callback_url,
    check_queue_config,
    check_text,
    parse_job_request,
    parse_payload,
)


def nested(levels: int, kind: str = "object") -> str:
    """JSON text of ``levels`` objects (or lists) inside each other around a 1."""
    if kind == "object":
        return '{"a":' * levels + "1" + "}" * levels
    return "[" * levels + "1" + "]" * levels


def submit(**fields: Any) -> Any:
    return parse_job_request({"job_type": "doubt", **fields})


# -- the payload text (the CLI's --payload) -------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "payload: not valid JSON (Expecting property name"),
        (nested(5000), f"payload: nested deeper than {MAX_PAYLOAD_DEPTH} levels"),
        (nested(5000, "list"), f"payload: nested deeper than {MAX_PAYLOAD_DEPTH} levels"),
        ('{"q": ' + "1" * 5000 + "}", "payload: a number has too many digits"),
    ],
)
def test_unreadable_payload_text_names_the_payload(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_payload(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_payload_text_is_read_as_json() -> None:
    assert parse_payload('{"q": "sky", "n": [1, 2.5, null, true]}') == {
        "q": "sky",
        "n": [1, 2.5, None, True],
    }
    assert parse_payload("[1]") == [1]  # the shape is JobRequest's to refuse


# -- one bad input at a time, as the CLI and the API hand it over ---------------------

BAD_SUBMISSIONS: list[tuple[dict[str, Any], str]] = [
    ({"payload": parse_payload('{"q": "a\\u0000b"}')}, "payload: text may not contain NUL"),
    ({"payload": parse_payload('{"a\\u0000": 1}')}, "payload: text may not contain NUL"),
    ({"payload": parse_payload('{"q": ["\\ud800"]}')}, "payload: text may not contain lone"),
    ({"payload": parse_payload('{"\\udfff": 1}')}, "payload: text may not contain lone"),
    ({"payload": {"q": "\udcff"}}, "payload: text may not contain lone"),  # argv's bad bytes
    ({"payload": parse_payload('{"q": NaN}')}, "payload: numbers must be finite"),
    ({"payload": parse_payload('{"q": {"r": -Infinity}}')}, "payload: numbers must be finite"),
    ({"payload": parse_payload('{"q": 1e400}')}, "payload: numbers must be finite"),
    ({"payload": parse_payload(nested(MAX_PAYLOAD_DEPTH + 1))}, "payload: nested deeper than"),
    (
        {"payload": {"a": parse_payload(nested(MAX_PAYLOAD_DEPTH, "list"))}},
        "payload: nested deeper than",
    ),
    ({"payload": {"q": "x" * MAX_PAYLOAD_BYTES}}, "payload: Value error, payload is larger"),
    ({"payload": [1]}, "payload: Input should be a valid dictionary"),
    ({"payload": "str"}, "payload: Input should be a valid dictionary"),
    ({"payload": None}, "payload: Input should be a valid dictionary"),
    ({"payload": 7}, "payload: Input should be a valid dictionary"),
    ({"run_at": "9999-12-31T23:59:59-23:00"}, "run_at: out of range"),
    ({"run_at": "0001-01-01T00:00:00+05:00"}, "run_at: out of range"),
    ({"run_at": "2030-01-01T00:00:00"}, "run_at: Value error, run_at needs a time zone"),
    ({"run_at": "tomorrow"}, "run_at: Input should be a valid datetime"),
    ({"idempotency_key": "a\x00b"}, "idempotency_key: text may not contain NUL"),
    ({"idempotency_key": "\ud800"}, "idempotency_key: Input should be a valid string"),
    ({"job_type": "do\x00ubt"}, "job_type: String should match pattern"),
    ({"job_type": "\udcff"}, "job_type: Input should be a valid string"),
    ({"priority": "asap"}, "priority: Input should be 'urgent', 'high', 'normal' or 'low'"),
    ({"max_retries": 101}, "max_retries: Input should be less than or equal to 100"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_SUBMISSIONS)
def test_bad_submissions_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        submit(**fields)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout_s": float("nan")}, "timeout_s: Input should be a finite number"),
        ({"timeout_s": float("inf")}, "timeout_s: Input should be a finite number"),
        ({"timeout_s": float("-inf")}, "timeout_s: Input should be a finite number"),
        ({"timeout_s": 0.0}, "timeout_s: Input should be greater than 0"),
        ({"max_retries": -1}, "max_retries: Input should be greater than or equal to 0"),
        ({"concurrency": 0}, "concurrency: Input should be greater than or equal to 1"),
        ({"service": ""}, "service: String should have at least 1 character"),
        ({"service": "a\x00b"}, "service: text may not contain NUL"),
        ({"job_type": "no spaces"}, "job_type: String should match pattern"),
    ],
)
def test_a_queue_config_a_worker_cannot_use_is_refused_naming_the_setting(
    fields: dict[str, Any], message: str
) -> None:
    config = QueueConfig(**{"job_type": "doubt", **fields})
    with pytest.raises(InvalidInput) as caught:
        check_queue_config(config)
    assert str(caught.value).startswith(message)


def test_a_usable_queue_config_passes() -> None:
    check_queue_config(QueueConfig("doubt", 0, 1e9, "orchestrator", 1, True))
    check_queue_config(QueueConfig("doubt", timeout_s=5))  # an int is a number of seconds


def test_an_item_of_a_batch_is_named_by_its_index() -> None:
    request = JobRequest.model_validate({"job_type": "doubt", "payload": {"q": "\ud800"}})
    with pytest.raises(InvalidInput, match=r"^3\.payload: text may not contain lone"):
        request.to_new_job("3.")
    late = JobRequest.model_validate({"job_type": "doubt", "run_at": "9999-12-31T23:59-01:00"})
    with pytest.raises(InvalidInput, match=r"^0\.run_at: out of range$"):
        late.to_new_job("0.")


def test_check_text_refuses_what_postgresql_cannot_store() -> None:
    check_text("ünïcödé 😀", "name")
    with pytest.raises(InvalidInput, match=r"^name: text may not contain NUL"):
        check_text("a\x00", "name")
    with pytest.raises(InvalidInput, match=r"^name: text may not contain lone surrogates"):
        check_text("\udcff", "name")


# -- good submissions ------------------------------------------------------------------


def test_a_full_submission_becomes_the_stores_form() -> None:
    job = submit(
        payload={"question": "Why?", "n": [1, 2.5, None, True, {"deep": "er"}]},
        priority="high",
        run_at="2030-01-01T12:00:00Z",
        max_retries=0,
        idempotency_key="k-1",
    )
    assert job.job_type == "doubt" and job.priority is Priority.HIGH
    assert job.payload == {"question": "Why?", "n": [1, 2.5, None, True, {"deep": "er"}]}
    assert job.run_at == datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert (job.max_retries, job.idempotency_key) == (0, "k-1")


def test_run_at_is_moved_to_utc() -> None:
    # +23:00 is a valid ISO offset that PostgreSQL refuses (its limit is 15:59).
    job = submit(run_at="2030-01-01T00:00:00+23:00")
    assert job.run_at is not None and job.run_at.utcoffset() == timedelta(0)
    assert job.run_at == datetime(2029, 12, 31, 1, tzinfo=UTC)
    assert submit(run_at="9999-12-31T23:59:59+05:00").run_at is not None


@pytest.mark.parametrize(
    "payload",
    [
        parse_payload(nested(MAX_PAYLOAD_DEPTH)),
        parse_payload('{"a":' + nested(MAX_PAYLOAD_DEPTH - 1, "list") + "}"),
        {"q": "\\u0000 is how JSON writes NUL"},  # the six characters, not a NUL
        parse_payload('{"q": "\\ud83d\\ude00"}'),  # a surrogate pair is one character
        {"n": 1e308, "m": -0.0, "big": int("9" * 400)},
        {"q": "x" * (MAX_PAYLOAD_BYTES - 20)},
    ],
)
def test_payloads_postgresql_can_store_are_accepted(payload: dict[str, Any]) -> None:
    assert submit(payload=payload).payload == payload


# -- properties -------------------------------------------------------------------------

TRICKY_TEXT = st.text(
    st.sampled_from(["a", "é", "😀", "\x00", "\ud800", "\udfff", "\\", '"']) | st.characters(),
    max_size=8,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=20,
)


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield key
            yield from _texts(child)
    elif isinstance(value, list):
        for child in value:
            yield from _texts(child)


def _storable(value: Any) -> bool:
    """What PostgreSQL's jsonb takes: strict JSON (no NaN, no infinity) whose text has
    no NUL and no surrogate code point (those are not characters of UTF-8)."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return not any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for t in _texts(value) for c in t)


@given(st.dictionaries(TRICKY_TEXT, JSON_VALUES, max_size=4))
def test_a_payload_is_accepted_exactly_when_postgresql_can_store_it(
    payload: dict[str, Any],
) -> None:
    try:
        job = submit(payload=payload)
    except InvalidInput as exc:
        assert str(exc).startswith("payload: ")
        assert not _storable(payload)
    else:
        assert _storable(job.payload)


WHOLE_MINUTE_ZONES = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(st.datetimes(timezones=WHOLE_MINUTE_ZONES))
def test_any_aware_run_at_is_refused_or_stored_in_utc(when: datetime) -> None:
    try:
        job = submit(run_at=when.isoformat())
    except InvalidInput as exc:
        assert str(exc) == "run_at: out of range"
        assert when.year in (1, 9999)  # only where UTC leaves Python's calendar
    else:
        assert job.run_at is not None and job.run_at.tzinfo is UTC
        assert job.run_at == when


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://127.0.0.1/cb", "callback_url"),
        ("http://127.0.0.1:0/cb", "port 0"),
        ("http://user:pw@127.0.0.1:9000/cb", "credentials"),
        ("http://127.0.0.1:9001/cb", "not an allowed callback origin"),
    ],
)
def test_a_callback_url_must_be_deliverable_and_allowed(url: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_callback_url(url, {"http://127.0.0.1:9000"})


def test_an_allowed_callback_url_passes() -> None:
    check_callback_url("http://127.0.0.1:9000/cb", {"http://127.0.0.1:9000"})
