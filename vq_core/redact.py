"""What is kept from whom: the credentials of URLs stay out of logs, stack traces with admins.

Both are pure functions over what is about to be shown, so the stored data keeps
everything (``vq jobs show`` on the database host still prints the whole stack).
"""

from __future__ import annotations

import re
from typing import Any

# The userinfo of a URL (``user:pw@`` in ``http://user:pw@host/``): everything between
# "//" and the last "@" before the host ends. A password with a raw "@" still counts
# as userinfo, as urlsplit reads it.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@")
STACK_KEY = "stack"


def redact_urls(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***``:
    ``http://user:pw@host/v.mp4`` becomes ``http://***@host/v.mp4``."""
    return _USERINFO.sub(r"\1***@", text)


def without_stack(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of an error record (``jobs.error``, or the details of a failed attempt's
    event) without its ``stack``; other fields, and ``None``, pass unchanged."""
    if not record or STACK_KEY not in record:
        return record
    return {k: v for k, v in record.items() if k != STACK_KEY}


def job_document_without_stacks(document: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it (``Job.to_dict()``, with ``events`` if present) without
    the stack traces of its error and of its events: what viewers and operators see."""
    out = dict(document)
    if isinstance(out.get("error"), dict):
        out["error"] = without_stack(out["error"])
    if isinstance(out.get("events"), list):
        out["events"] = [
            {**e, "details": without_stack(e.get("details"))} if isinstance(e, dict) else e
            for e in out["events"]
        ]
    return out
