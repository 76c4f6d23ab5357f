"""Loads the named SQL blocks of ``sql/queries.sql`` once, so SQL stays readable as SQL."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of ``-- name --`` blocks into a mapping of name to SQL."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        sql = body.strip().rstrip(";").strip()
        if not sql:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = sql
    return queries


@cache
def queries() -> dict[str, str]:
    """All of vq's queries by name."""
    text = resources.files("vq_core").joinpath("sql/queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)


def sql(name: str) -> str:
    """The SQL of one named query; ``KeyError`` names the missing query."""
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/queries.sql") from None
