"""The reference services as one Starlette app: orchestrator, Manim and Revideo contracts
rendered with the local engine, the files they made under ``/media``, and fault injection.

Routes (docs/services.md has the contracts):

- ``POST /render`` orchestrator, ``POST /manim/render``, ``POST /revideo/compose``
- ``GET /health``, ``GET /manim/health``, ``GET /revideo/health``
- ``GET|HEAD /media/{name}`` with range requests; ``GET /_not_video/{name}`` (HTML)
- ``GET|POST|DELETE /_faults`` global faults; ``GET|DELETE /_requests`` request log
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from vq_plugins.reference import manim_runner
from vq_plugins.reference.contracts import ComposeRequest, ManimRequest, RenderRequest
from vq_plugins.reference.faults import (
    FAULT_HEADER,
    FAULT_QUERY,
    FaultBox,
    FaultError,
    Faults,
    faults_from,
    parse_fault_spec,
)
from vq_plugins.services import render_engine, speech
from vq_plugins.services.doubt_kinds import SceneKind, classify

CACHE_LIMIT = 10_000
_MEDIA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


@dataclass
class RenderOptions:
    """How big and long the reference renders are (tests make them tiny)."""

    width: int = 640
    height: int = 360
    fps: int = 24
    clip_seconds: float = 4.0
    max_length: float = 120.0
    # Manim renders /manim/render: None when it is installed, False never (the PyAV
    # clip instead), True always (a render fails when it is missing).
    manim: bool | None = None
    manim_time_limit: float = 120.0
    manim_workers: int = 2
    # Origins (scheme://host:port) of other servers /revideo/compose may fetch Manim
    # clips from; its own /media files are always read directly.
    clip_origins: tuple[str, ...] = ()


@dataclass
class ReferenceState:
    """Everything the handlers share."""

    media_dir: Path
    options: RenderOptions = field(default_factory=RenderOptions)
    public_url: str = ""
    faults: FaultBox = field(default_factory=FaultBox)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    cache: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)


class BadRequest(Exception):
    """Answer 400 with ``{"error": message}``."""


class WorkFailed(Exception):
    """Answer ``status`` with ``{"error": message}``: the work itself failed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


class DroppedResponse(Response):
    """Starts a 200 answer, then drops the connection half-way through the body."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"video_', "more_body": True})
        # Raising after the answer started makes the server close the socket.
        raise ConnectionAbortedError("fault injection: connection dropped")


def _request_faults(request: Request, state: ReferenceState) -> Faults:
    spec = request.headers.get(FAULT_HEADER) or request.query_params.get(FAULT_QUERY)
    return parse_fault_spec(spec) if spec else state.faults.take()


def _fault_response(faults: Faults, state: ReferenceState) -> Response | None:
    """The injected answer before any work is done, if the faults call for one."""
    if faults.drop_connection:
        return DroppedResponse()
    status = faults.error_status
    if status is None and state.faults.roll(faults.error_rate):
        status = 500
    if status is not None:
        headers = {"Retry-After": faults.retry_after} if faults.retry_after else None
        if status == 429 and headers is None:
            headers = {"Retry-After": "1"}
        return _error(status, f"injected fault: status {status}", headers)
    if faults.malformed:
        return Response('{"video_url": "http://', media_type="application/json")
    return None


def _output_fault(faults: Faults, state: ReferenceState) -> Response | None:
    """A 2xx answer that is wrong in shape, after the request passed validation."""
    if faults.missing_url:
        return JSONResponse({"status": "accepted"})
    name = f"{uuid.uuid4().hex}.mp4"
    if faults.bad_video_url:
        return JSONResponse({"video_url": f"{state.public_url}/media/missing-{name}"})
    if faults.not_video:
        return JSONResponse({"video_url": f"{state.public_url}/_not_video/{name}"})
    return None


# (state, validated request, file name) -> the JSON answer
Work = Callable[[ReferenceState, Any, str], Awaitable[dict[str, Any]]]


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("body: not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object")
    return body


async def _cached(
    state: ReferenceState, kind: str, key: str | None, req: BaseModel, work: Work
) -> dict[str, Any]:
    """Run ``work`` once per idempotency key; a repeat gets the first success."""
    name = f"{kind}-" + (
        hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()[:24] if key else uuid.uuid4().hex
    )
    if key is None:
        return await work(state, req, name)
    lock = state.locks.setdefault((kind, key), asyncio.Lock())
    async with lock:
        if (kind, key) not in state.cache:
            state.cache[(kind, key)] = await work(state, req, name)
            # A long load run sees many keys; the oldest are forgotten first.
            for table in (state.cache, state.locks):
                while len(table) > CACHE_LIMIT:
                    del table[next(iter(table))]
        return state.cache[(kind, key)]


async def _pause(request: Request, seconds: float) -> bool:
    """Wait ``seconds``; False as soon as the client hangs up (a client timeout), so a
    stopping server is not held by a sleep nobody waits for."""
    await request.body()  # cached for the handler; the next receive() waits for a hang-up
    gone = asyncio.ensure_future(request.receive())
    done, _ = await asyncio.wait({gone}, timeout=seconds)
    if done:
        return gone.result().get("type") != "http.disconnect"
    gone.cancel()
    return True


async def _serve(request: Request, kind: str, model: type[BaseModel], work: Work) -> Response:
    """The common life of a service request: faults, validation, idempotent work."""
    state: ReferenceState = request.app.state.reference
    entry: dict[str, Any] = {
        "at": time.time(), "method": request.method, "path": request.url.path,
        "idempotency_key": request.headers.get("idempotency-key"),
        # The caller's trace context, so a test sees vq's traces reach the services.
        "traceparent": request.headers.get("traceparent"),
    }
    state.log.append(entry)
    try:
        faults = _request_faults(request, state)
    except FaultError as exc:
        entry["status"] = 400
        return _error(400, f"X-Fault: {exc}")
    entry["faults"] = faults.model_dump(exclude_defaults=True)
    if faults.latency_s and not await _pause(request, faults.latency_s):
        entry["status"] = "client gone"
        return _error(499, "client closed the connection")
    response = _fault_response(faults, state)
    try:
        if response is None:
            req = model.model_validate(await _json_body(request))
            response = _output_fault(faults, state)
            if response is None:
                answer = await _cached(state, kind, entry["idempotency_key"], req, work)
                # Every answer says it comes from a stand-in, and the admin page shows it.
                response = JSONResponse({**answer, "reference": True})
    except BadRequest as exc:
        response = _error(400, str(exc))
    except ValidationError as exc:
        response = _error(400, _validation_message(exc))
    except WorkFailed as exc:
        response = _error(exc.status, str(exc))
    entry["status"] = "dropped" if isinstance(response, DroppedResponse) else response.status_code
    return response


def _media_url(state: ReferenceState, path: Path) -> str:
    return f"{state.public_url}/media/{path.name}"


async def _render_orchestrator(
    state: ReferenceState, req: RenderRequest, name: str
) -> dict[str, Any]:
    opts = state.options
    await _known_voice(req.voice, "voice")
    video = await _engine(
        render_engine.render_explainer, state.media_dir, name, req.input,
        length=min(req.length, opts.max_length), width=opts.width, height=opts.height, fps=opts.fps,
        voice=req.voice,
    )
    return {
        "job_id": req.job_id,
        **_video_answer(state, video),
    }


async def _render_manim(state: ReferenceState, req: ManimRequest, name: str) -> dict[str, Any]:
    """A Manim scene of the kind asked for ("auto": read from the content), or the PyAV
    clip of the same kind when Manim is off or not installed; 504 when Manim overruns
    its limit."""
    opts = state.options
    kind: SceneKind = classify(req.content) if req.scene_type == "auto" else req.scene_type
    use_manim = manim_runner.manim_installed() if opts.manim is None else opts.manim
    if not use_manim:
        video = await _engine(
            render_engine.render_clip, state.media_dir, name, req.content,
            length=opts.clip_seconds, width=opts.width, height=opts.height, fps=opts.fps,
            scene_type=kind,
        )
        why = "Manim is not installed" if opts.manim is None else "Manim is turned off"
        return {
            "video_url": _media_url(state, video.video_path),
            "duration": round(video.duration, 3),
            "renderer": "pyav",
            "scene_type": kind,
            "fallback": why,
        }
    path = state.media_dir / f"{name}.mp4"
    try:
        await manim_runner.render_manim_clip(
            kind, req.content, path, width=opts.width, height=opts.height, fps=opts.fps,
            seconds=opts.clip_seconds, time_limit=opts.manim_time_limit,
            max_running=opts.manim_workers,
        )
    except manim_runner.ManimTimeout as exc:
        raise WorkFailed(504, str(exc)) from None
    except manim_runner.ManimFailed as exc:
        raise WorkFailed(500, str(exc)) from None
    _, duration = await asyncio.to_thread(render_engine.probe, path)
    return {
        "video_url": _media_url(state, path),
        "duration": round(duration, 3),
        "renderer": "manim",
        "scene_type": kind,
    }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def _local_clip(state: ReferenceState, url: str, index: int, scratch: Path) -> Path:
    """The file behind a manim segment URL: ours when it is one of our /media files, else
    fetched, but only from an origin in ``clip_origins`` (no redirects followed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"segments.{index}.url: must be an http(s) URL")
    origin, name = _origin(url), parts.path.rpartition("/")[2]
    if origin == _origin(state.public_url):
        local = state.media_dir / name
        if not (parts.path == f"/media/{name}" and _MEDIA_NAME.fullmatch(name)
                and local.is_file()):
            raise BadRequest(f"segments.{index}.url: no such media file here: {parts.path}")
        return local
    if origin not in {_origin(o) for o in state.options.clip_origins}:
        # A compose request must not make this server fetch from anywhere it is told.
        raise BadRequest(f"segments.{index}.url: origin {origin} is not allowed "
                         "(vq services serve --clip-origin)")
    target = scratch / f"clip-{index}.mp4"
    try:
        async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise BadRequest(f"segments.{index}.url: cannot fetch: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise BadRequest(f"segments.{index}.url: answered {response.status_code}")
    await asyncio.to_thread(target.write_bytes, response.content)
    return target


async def _known_voice(voice: str, field: str) -> None:
    """A 400 naming ``field`` before any work when espeak-ng does not know ``voice``."""
    try:
        await asyncio.to_thread(speech.refuse_unknown_voice, voice)
    except ValueError as exc:
        raise BadRequest(f"{field}: {exc}") from None


async def _compose(state: ReferenceState, req: ComposeRequest, name: str) -> dict[str, Any]:
    opts = state.options
    await _known_voice(req.audio.voice, "audio.voice")
    title = next((s.text for s in req.segments if s.type == "narration" and s.text), "Coming up")
    with tempfile.TemporaryDirectory(prefix="vq-revideo-") as scratch:
        plan: list[dict[str, Any]] = []
        for index, seg in enumerate(req.segments):
            if seg.type == "manim":
                if seg.url is None:
                    raise BadRequest(f"segments.{index}.url: required for a manim segment")
                clip = await _local_clip(state, seg.url, index, Path(scratch))
                plan.append({"type": "manim", "path": clip})
            else:
                plan.append(seg.model_dump(exclude_none=True, exclude={"url"}))
        video = await _engine(
            render_engine.compose, state.media_dir, name, plan, title=title,
            width=opts.width, height=opts.height, fps=opts.fps,
            audio={"voice": req.audio.voice, "speed": req.audio.speed},
        )
    return _video_answer(state, video)


def _video_answer(state: ReferenceState, video: render_engine.RenderedVideo) -> dict[str, Any]:
    """The answer for a finished video: its files' URLs, duration and whether it speaks."""
    answer: dict[str, Any] = {
        "video_url": _media_url(state, video.video_path),
        "thumbnail_url": _media_url(state, video.thumbnail_path),
        "duration": round(video.duration, 3),
        "narrated": video.narrated,
    }
    if video.captions_path is not None:
        answer["captions_url"] = _media_url(state, video.captions_path)
    return answer


async def _engine(
    func: Callable[..., render_engine.RenderedVideo], *args: Any, **kwargs: Any
) -> render_engine.RenderedVideo:
    """Run a render in a thread; the engine's ValueError is the caller's bad input."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def orchestrator_render(request: Request) -> Response:
    """Orchestrator ``POST /render``."""
    return await _serve(request, "orch", RenderRequest, _render_orchestrator)


async def manim_render(request: Request) -> Response:
    """Manim ``POST /manim/render``."""
    return await _serve(request, "manim", ManimRequest, _render_manim)


async def revideo_compose(request: Request) -> Response:
    """Revideo ``POST /revideo/compose``."""
    return await _serve(request, "revideo", ComposeRequest, _compose)


async def health(request: Request) -> Response:
    """``GET /health`` (also under /manim and /revideo)."""
    state: ReferenceState = request.app.state.reference
    if state.faults.get().unhealthy:
        return _error(503, "injected fault: unhealthy")
    return JSONResponse({"status": "ok"})


async def media(request: Request) -> Response:
    """A rendered file, with range requests."""
    state: ReferenceState = request.app.state.reference
    name = request.path_params["name"]
    path = state.media_dir / name
    if not _MEDIA_NAME.fullmatch(name) or not path.is_file():
        return _error(404, f"no such media file: {name}")
    return FileResponse(path)


async def not_video(request: Request) -> Response:
    """A 200 page that is not a video, for verification failures."""
    return HTMLResponse("<!doctype html><title>Not a video</title><p>Nothing to see here.</p>")


async def faults_endpoint(request: Request) -> Response:
    """Read, set (POST a JSON object) or clear (DELETE) the global faults."""
    state: ReferenceState = request.app.state.reference
    if request.method == "POST":
        try:
            state.faults.set(faults_from(await _json_body(request)))
        except (FaultError, BadRequest) as exc:
            return _error(400, str(exc))
    elif request.method == "DELETE":
        state.faults.set(Faults())
    return JSONResponse(state.faults.get().model_dump())


async def requests_endpoint(request: Request) -> Response:
    """The log of service requests (newest last); DELETE clears it."""
    state: ReferenceState = request.app.state.reference
    if request.method == "DELETE":
        state.log.clear()
    return JSONResponse(list(state.log))


def create_app(state: ReferenceState) -> Starlette:
    """The reference services over ``state`` (its ``public_url`` is set once bound)."""
    routes = [
        Route("/render", orchestrator_render, methods=["POST"]),
        Route("/manim/render", manim_render, methods=["POST"]),
        Route("/revideo/compose", revideo_compose, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/manim/health", health, methods=["GET"]),
        Route("/revideo/health", health, methods=["GET"]),
        Route("/media/{name}", media, methods=["GET", "HEAD"]),
        Route("/_not_video/{name}", not_video, methods=["GET", "HEAD"]),
        Route("/_faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/_requests", requests_endpoint, methods=["GET", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.reference = state
    return app
