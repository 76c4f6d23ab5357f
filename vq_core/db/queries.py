"""Loads the named SQL blocks of ``sql/queries/*.sql`` once, so SQL stays readable as SQL.

There is one file per table or concern (``jobs.sql``, ``workers.sql``, ``users.sql``...),
each a run of ``-- name --`` blocks. Names are global: ``sql("claim_jobs")`` does not
say which file holds the block, so a name defined in two files is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)
_FOLDER = "sql/queries"


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


def merge_query_files(files: Mapping[str, str]) -> dict[str, str]:
    """The queries of several files (file name -> text) as one mapping of name to SQL.

    ``ValueError`` names the file(s) at fault: a block repeated within a file, an empty
    block, or a name defined in two files.
    """
    merged: dict[str, str] = {}
    defined_in: dict[str, str] = {}
    for filename in sorted(files):
        try:
            found = parse_queries(files[filename])
        except ValueError as exc:
            raise ValueError(f"{filename}: {exc}") from None
        for name, text in found.items():
            if name in defined_in:
                raise ValueError(
                    f"query {name!r} is defined in both {defined_in[name]} and {filename}"
                )
            defined_in[name] = filename
            merged[name] = text
    return merged


@cache
def queries() -> dict[str, str]:
    """All of vq's queries by name."""
    folder = resources.files("vq_core").joinpath(_FOLDER)
    files = {
        f"{_FOLDER}/{f.name}": f.read_text(encoding="utf-8")
        for f in folder.iterdir()
        if f.name.endswith(".sql")
    }
    return merge_query_files(files)


def sql(name: str) -> str:
    """The SQL of one named query; ``KeyError`` names the missing query."""
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in {_FOLDER}/*.sql") from None
