"""vq leaves no session state on a pooled connection, so the pool need not reset one.

The pool hands a released connection back as it is (``vq_core.db.connection``): no
``RESET ALL``/``UNLISTEN *``/``CLOSE ALL``/``pg_advisory_unlock_all()`` round trip per
release. That holds only while no statement the store sends through the pool leaves
state behind in the server session; this reads every named SQL block for one that would.
"""

from __future__ import annotations

import re

import pytest

from vq_core.db.queries import parse_queries, queries

# A statement that changes the session: SET/RESET (not SET LOCAL, which ends with the
# transaction), LISTEN, a cursor declared WITH HOLD, a prepared statement by SQL.
_SESSION_STATEMENT = re.compile(
    r"(^|;)\s*(SET\s+(?!LOCAL\b)|RESET\s|LISTEN\s|PREPARE\s|DECLARE\s[^;]*\bWITH\s+HOLD\b)",
    re.IGNORECASE,
)
# A session advisory lock (the transaction ones have _xact_ in their name), or a
# set_config whose third argument is false (session-wide).
_SESSION_CALL = re.compile(
    r"pg_(try_)?advisory_lock(_shared)?\s*\(|set_config\s*\([^)]*,\s*false\s*\)",
    re.IGNORECASE,
)


def _leaves_session_state(text: str) -> bool:
    # Function bodies may SET their own search_path: that is part of CREATE FUNCTION,
    # not a statement the session runs, and the queries define no functions.
    return bool(_SESSION_STATEMENT.search(text) or _SESSION_CALL.search(text))


@pytest.mark.parametrize("name", sorted(queries()))
def test_no_query_leaves_state_in_the_session(name: str) -> None:
    assert not _leaves_session_state(queries()[name]), name


@pytest.mark.parametrize(
    "text",
    [
        "SET statement_timeout = 0",
        "SELECT 1; RESET ALL",
        "LISTEN vq_jobs",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock(1, 2)",
        "SELECT set_config('search_path', 'x', false)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    ],
)
def test_the_check_sees_session_state(text: str) -> None:
    # A check that could not fail would prove nothing.
    found = parse_queries(f"-- probe --\n{text}\n")
    assert _leaves_session_state(found["probe"])


@pytest.mark.parametrize(
    "text",
    [
        "UPDATE vq.jobs SET status = 'queued' WHERE id = $1",
        "SET LOCAL lock_timeout = '1s'",
        "SELECT pg_advisory_xact_lock(1)",
        "SELECT pg_try_advisory_xact_lock($1::bigint)",
        "SELECT set_config('vq.actor', $1, true)",
    ],
)
def test_the_check_lets_transaction_state_pass(text: str) -> None:
    assert not _leaves_session_state(text)
