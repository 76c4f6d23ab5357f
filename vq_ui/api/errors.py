"""One error shape for the whole API: ``{"detail": "<field>: <what is wrong>", ...}``.

Bad input is a 4xx whose message names the field; nothing a client sends becomes
a 500. The store's own exceptions map to statuses here, so routes stay short.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vq_core import db
from vq_core.errors import InvalidInput, InvalidTransition, JobNotFound
from vq_ui.auth.users import AlreadyExists, UnknownName

log = logging.getLogger("vq.api")

# The submit body is "one job or a list": pydantic reports errors of both union
# branches; keep the branch the client meant.
_UNION_BRANCHES: dict[str, type] = {"JobRequest": dict, "list[JobRequest]": list}


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    shown = [str(p) for p in parts if str(p) not in _UNION_BRANCHES]
    # "body" and "query" are FastAPI's prefixes; keep them only when alone.
    if len(shown) > 1 and shown[0] in ("body", "query", "path", "header"):
        shown = shown[1:]
    return ".".join(shown) or "body"


def _relevant(errors: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
    branches = [e for e in errors if len(e["loc"]) > 1 and e["loc"][1] in _UNION_BRANCHES]
    if not branches:
        return errors
    wanted = [e for e in branches if isinstance(body, _UNION_BRANCHES[e["loc"][1]])]
    others = [e for e in errors if e not in branches]
    if wanted:
        return others + wanted
    shape = {"loc": ("body",), "msg": "must be a job object or a list of job objects"}
    return [*others, shape]


def validation_message(errors: list[dict[str, Any]]) -> str:
    """``field: message; field: message`` for a list of pydantic errors."""
    return "; ".join(f"{_loc(e['loc'])}: {e['msg']}" for e in errors)


def error_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An error in the API's shape, for code that answers before a route runs (the
    middleware of ``vq_ui.http_guard``) as for the handlers here."""
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _relevant(list(exc.errors()), exc.body)
    simple = [{"field": _loc(e["loc"]), "message": e["msg"]} for e in errors]
    return error_response(422, validation_message(errors), errors=simple)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, str(exc))


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    # The message itself: str() of a KeyError quotes it, and stripping quotes would
    # also eat the closing quote of a name inside it ("no user named 'nobody'").
    return error_response(404, str(exc.args[0]) if exc.args else str(exc))


async def _on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, str(exc))


async def _on_data_error(request: Request, exc: Exception) -> JSONResponse:
    # A value PostgreSQL refuses (a NUL character, an out-of-range number): the
    # client's fault, so a 400, but logged since the edge should have caught it.
    log.warning("database refused input on %s: %s", request.url.path, exc)
    return error_response(400, f"invalid input: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    """Map validation errors, HTTP errors and vq's exceptions to JSON 4xx answers."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(AlreadyExists, _on_conflict)
    app.add_exception_handler(InvalidInput, _on_invalid)
    app.add_exception_handler(JobNotFound, _on_not_found)
    app.add_exception_handler(UnknownName, _on_not_found)
    app.add_exception_handler(InvalidTransition, _on_conflict)
    app.add_exception_handler(db.DataError, _on_data_error)
