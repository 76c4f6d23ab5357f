"""The job list: filters, sort keys and keyset cursors (``list_jobs`` in
``sql/queries/jobs.sql``)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.errors import InvalidInput
from vq_core.models import Job, JobFilter, JobPage
from vq_core.store.jobs import job_from_row


@dataclass(frozen=True)
class Sort:
    """A sort key of the job list: the column its cursor carries and that column's SQL
    type; ``by_id``: the id alone orders (ids are time-ordered, so creation order is id
    order and the primary key serves it); ``side_column``: the column's copy in
    vq.job_search, whose index serves the order (a column that never changes after the
    insert: ``list_jobs_by_priority``)."""

    column: str
    type: str
    by_id: bool = False
    side_column: str | None = None


SORTS: dict[str, Sort] = {
    "created_at": Sort("created_at", "timestamptz", by_id=True),
    "updated_at": Sort("updated_at", "timestamptz"),
    "priority": Sort("priority", "smallint", side_column="job_priority"),
}
MAX_PAGE = 500
#: How many matching ids a search reads from the word index before it pages through
#: them itself: up to this many, the page is sorted from the matches alone (a few ms);
#: more, and the words are common enough that the ordered walk finds a page within about
#: 51 x table / SEARCH_IDS rows (``window_query`` with no window).
SEARCH_IDS = 5000
#: How many jobs of the order a search with other filters reads first, before the word
#: index (``list_jobs_window``): a word in one job of a hundred fills a page of 50 there.
SEARCH_WINDOW = 5000
#: The same for a search with no other filter (``list_jobs_words_window``): each job is a
#: narrow row of vq.job_search read in key order, not a probe of it per job, so the
#: window is longer, and a burst of jobs without the words (a drain of another type)
#: costs milliseconds: a word in one job of four hundred fills a page there.
WORDS_WINDOW = 20000


def _keyset(sort: str, side: bool = False) -> tuple[str, str, Sort]:
    """The ``{after}`` and ``{order}`` of a sort key (prefix ``-``: descending), and it;
    ``side``: for ``list_jobs_by_priority``, the cursor compared on vq.job_search's copy."""
    key = sort.lstrip("-")
    if key not in SORTS:
        raise InvalidInput(f"sort: use one of {', '.join(SORTS)} (prefix - for descending)")
    spec = SORTS[key]
    direction, cmp = _direction(sort)
    if spec.by_id:
        return f"id {cmp} $11::uuid", f"id {direction}", spec
    if side and spec.side_column:
        after = f"(o.{spec.side_column}, o.job_id) {cmp} ($10::text::{spec.type}, $11::uuid)"
        order = f"vq.jobs.{spec.column} {direction}, vq.jobs.id {direction}"
        return after, order, spec
    after = f"({spec.column}, id) {cmp} ($10::text::{spec.type}, $11::uuid)"
    return after, f"{spec.column} {direction}, id {direction}", spec


def _direction(sort: str) -> tuple[str, str]:
    """A sort key's SQL direction and the comparison that places the next page."""
    return ("DESC", "<") if sort.startswith("-") else ("ASC", ">")


def list_query(sort: str, of_type: bool = False) -> tuple[str, Sort]:
    """``list_jobs``' SQL for a sort key (prefix ``-``: descending) and the key:
    ``list_jobs_by_priority`` for a key with a copy in vq.job_search, else
    ``list_jobs_of_type`` when the list is filtered by type (``of_type``)."""
    after, order, spec = _keyset(sort, side=True)
    if spec.side_column:
        block = "list_jobs_by_priority"
    else:
        block = "list_jobs_of_type" if of_type else "list_jobs"
    return sql(block).format(filter=sql("job_filter"), after=after, order=order), spec


def list_among_query(sort: str) -> str:
    """``list_jobs_among``' SQL for a sort key: ``list_jobs`` among given ids ($13)."""
    after, order, _ = _keyset(sort)
    return sql("list_jobs_among").format(filter=sql("job_filter"), after=after, order=order)


def window_query(sort: str, window: int | None = None, filtered: bool = False) -> str:
    """The SQL of a search within the next ``window`` jobs of a creation-order sort key
    (0: all of them, walked until the page is full): ``list_jobs_words_window``, through
    vq.job_search's key (default ``WORDS_WINDOW``), or, with other filters
    (``filtered``), ``list_jobs_window``, through vq.jobs' indexes (``SEARCH_WINDOW``)."""
    after, order, spec = _keyset(sort)
    if not spec.by_id:
        raise ValueError(f"a search window walks creation order, not {sort!r}")
    if filtered:
        size = SEARCH_WINDOW if window is None else window
        return sql("list_jobs_window").format(
            filter=sql("job_filter"), after=after, order=order, window=size or "ALL"
        )
    direction, cmp = _direction(sort)
    size = WORDS_WINDOW if window is None else window
    return sql("list_jobs_words_window").format(
        filter=sql("job_filter"),
        order=order,
        side_after=f"o.job_id {cmp} $11::uuid",
        side_order=f"o.job_id {direction}",
        window=size or "ALL",
    )


def search_ids_query() -> str:
    """``search_job_ids``' SQL: one more than ``SEARCH_IDS``, to tell "all" from "more"."""
    return sql("search_job_ids").format(limit=SEARCH_IDS + 1)


def filter_args(f: JobFilter) -> tuple[Any, ...]:
    """``job_filter``'s nine parameters ($1 to $9) for a filter."""
    text = f.text.strip() if f.text and f.text.strip() else None
    return (
        f.status.value if f.status else None,
        f.job_type,
        int(f.priority) if f.priority is not None else None,
        text,
        f.category.value if f.category else None,
        f.service,
        f.group_key,
        f.created_after,
        f.created_before,
    )


def matches(job: Job, f: JobFilter) -> bool:
    """Whether one job passes the filters other than the text (``job_filter`` in Python,
    for a pasted id)."""
    category = (job.error or {}).get("type")  # the category, as error_record names it
    return (
        (f.status is None or job.status is f.status)
        and (f.job_type is None or job.job_type == f.job_type)
        and (f.priority is None or job.priority is f.priority)
        and (f.category is None or category == f.category.value)
        and (f.service is None or job.service == f.service)
        and (f.group_key is None or job.group_key == f.group_key)
        and (f.created_after is None or job.created_at >= f.created_after)
        and (f.created_before is None or job.created_at < f.created_before)
    )


def _is_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _encode_cursor(value: Any, job_id: uuid.UUID) -> str:
    raw = json.dumps([value.isoformat() if hasattr(value, "isoformat") else value, str(job_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        value, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        # uuid.UUID(2) raises AttributeError: only a string can be the id part.
        return str(value), uuid.UUID(job_id if isinstance(job_id, str) else "")
    except (ValueError, TypeError):
        # A fixed answer: the decoder's own message would echo Python internals.
        raise InvalidInput("cursor: not a cursor this server issued") from None


class JobListing:
    """Paging through ``vq.jobs``; part of ``Store``."""

    pool: asyncpg.Pool

    async def list_jobs(
        self,
        filters: JobFilter | None = None,
        sort: str = "-created_at",
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """One page of jobs; pass ``next_cursor`` back for the next page."""
        f = filters or JobFilter()
        query, spec = list_query(sort, of_type=f.job_type is not None)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit: must be between 1 and {MAX_PAGE}")
        text = f.text.strip() if f.text and f.text.strip() else None
        if text is not None and (pasted := _as_uuid(text)) is not None:
            return await self._list_one(pasted, f)
        after_value, after_id = _decode_cursor(cursor) if cursor else (None, None)
        if after_value is not None and spec.by_id and not _is_timestamp(after_value):
            # The id alone places the page; still refuse another sort's cursor.
            raise InvalidInput("cursor: not a cursor of this sort order")
        args = filter_args(f)
        rows = None
        if text is not None:
            rows = await self._search(text, sort, spec, args, after_value, after_id, limit)
        if rows is None:
            rows = await self.pool.fetch(query, *args, after_value, after_id, limit + 1)
        jobs = [job_from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _encode_cursor(last[spec.column], last["id"])
        return JobPage(jobs, next_cursor)

    async def _search(
        self,
        text: str,
        sort: str,
        spec: Sort,
        args: tuple[Any, ...],
        after_value: str | None,
        after_id: uuid.UUID | None,
        limit: int,
    ) -> list[asyncpg.Record] | None:
        """A search's page, or None when ``list_jobs`` itself is quickest (many matches).

        One ordered query cannot tell common words from rare ones (the planner guesses,
        and a wrong guess walks the whole table), so: in creation order, the next
        ``WORDS_WINDOW`` jobs first, or with other filters the next ``SEARCH_WINDOW``
        jobs that pass them (common words fill the page there); then the word
        index's matches, unordered, up to ``SEARCH_IDS`` (rare words: the page is sorted
        from them alone); past that, the walk goes on through every job in creation
        order (of the type, with a type filter: ``list_jobs_of_type``), and in another
        order ``list_jobs`` (a full sort either way).
        """
        untexted = (*args[:3], None, *args[4:])
        filtered = any(a is not None for a in untexted)
        of_type = args[1] is not None  # job_filter's $2
        if spec.by_id:
            rows = await self.pool.fetch(
                window_query(sort, filtered=filtered),
                *untexted,
                after_value,
                after_id,
                limit + 1,
                text,
            )
            if len(rows) > limit:
                return rows
        hits = await self.pool.fetch(search_ids_query(), text)
        if len(hits) > SEARCH_IDS:
            if spec.by_id and not of_type:
                # Common words behind many jobs without them (a burst of another type):
                # the walk goes on, each job's words looked up by its key, rather than
                # list_jobs' plan, which may hash every match first (a million of them
                # for a word every job has: seconds). With a type, list_jobs_of_type
                # walks that type's jobs instead, as rare as the type may be.
                return await self.pool.fetch(
                    window_query(sort, 0, filtered),
                    *untexted,
                    after_value,
                    after_id,
                    limit + 1,
                    text,
                )
            return None
        ids = [r["job_id"] for r in hits]
        return await self.pool.fetch(
            list_among_query(sort), *untexted, after_value, after_id, limit + 1, ids
        )

    async def _list_one(self, job_id: uuid.UUID, f: JobFilter) -> JobPage:
        """A pasted job id: one primary-key read instead of a search of the table."""
        row = await self.pool.fetchrow(sql("get_job"), job_id)
        if row is None:
            return JobPage([], None)
        job = job_from_row(row)
        return JobPage([job] if matches(job, f) else [], None)
