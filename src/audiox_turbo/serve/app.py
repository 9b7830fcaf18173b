"""The HTTP API: `create_app(pipe)` is a FastAPI app with `POST /v1/generate` (JSON or
multipart), `GET /v1/models`, `/health`, `/metrics`, `/v1/progress/{id}` and the web page at `/`.
Every error is a JSON body `{"error": {"field", "message"}}` with a 4xx (503 when busy)."""

from __future__ import annotations

import asyncio
import base64
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from audiox_turbo.errors import AudioXError
from audiox_turbo.interface import GenerationOutput, Pipeline
from audiox_turbo.serve.batching import BatchQueue, Progress, QueueFull
from audiox_turbo.serve.encoding import encode_output, spectrogram_png
from audiox_turbo.serve.metrics import ServeMetrics
from audiox_turbo.serve.schema import (
    CONTENT_TYPES,
    ApiRequest,
    RequestError,
    ServeLimits,
    first_error,
    parse_options,
)
from audiox_turbo.serve.uploads import check_uploads, parse_body, read_body

RETRY_AFTER_S = 1


def error_response(
    status: int, field: str | None, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error shape of the API."""
    body = {"error": {"field": field, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def field_named_in(message: str) -> str | None:
    """The first request field a pipeline error message names (e.g. 'steps must be ...')."""
    hits = [
        (m.start(), name)
        for name in ApiRequest.model_fields
        if (m := re.search(rf"\b{name}\b", message))
    ]
    return min(hits)[1] if hits else None


def _request_body_schema() -> dict[str, Any]:
    schema = ApiRequest.model_json_schema()
    form = {
        "type": "object",
        "properties": {
            **schema["properties"],
            "span": {"type": "string", "description": "START,END seconds"},
            "video": {"type": "string", "format": "binary"},
            "audio": {"type": "string", "format": "binary"},
        },
    }
    content = {"application/json": {"schema": schema}, "multipart/form-data": {"schema": form}}
    audio = {
        kind: {"schema": {"type": "string", "format": "binary"}} for kind in CONTENT_TYPES.values()
    }
    return {
        "requestBody": {"required": False, "content": content},
        "responses": {
            "200": {"description": "The file, or JSON with base64 outputs", "content": audio}
        },
    }


def model_card(pipe: Pipeline, limits: ServeLimits) -> dict[str, Any]:
    """What `GET /v1/models` says about the served model."""
    config = pipe.config
    return {
        "id": getattr(config, "name", type(pipe).__name__),
        "variant": getattr(config, "variant", "native"),
        "sample_rate": pipe.sample_rate,
        "trained": pipe.trained,
        "default_duration": pipe.check_duration(None),
        "max_duration": min(limits.max_duration, getattr(config, "max_duration", float("inf"))),
        "max_num_outputs": limits.max_num_outputs,
        "formats": list(CONTENT_TYPES),
    }


def _package_version() -> str:
    try:
        return version("audiox-turbo")
    except PackageNotFoundError:
        return "unknown"


def create_app(pipe: Pipeline, limits: ServeLimits | None = None) -> FastAPI:
    """The API over one pipeline; its batching worker starts and stops with the app."""
    limits = limits or ServeLimits()
    metrics = ServeMetrics()
    queue = BatchQueue(pipe, limits.max_batch, limits.max_wait_ms, limits.max_queue, metrics)
    metrics.queue_depth = queue.depth
    progress: dict[str, Progress] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        queue.start()
        yield
        await run_in_threadpool(queue.stop)

    app = FastAPI(
        title="audiox-turbo",
        version=_package_version(),
        description="Anything-to-audio generation with dynamic batching.",
        lifespan=lifespan,
    )
    app.state.queue, app.state.metrics, app.state.limits = queue, metrics, limits

    @app.exception_handler(RequestError)
    async def on_request_error(_: Request, e: RequestError) -> JSONResponse:
        return error_response(e.status, e.field, e.message)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, e: RequestValidationError) -> JSONResponse:
        error = first_error(e)  # type: ignore[arg-type]
        return error_response(422, error.field, error.message)

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, e: HTTPException) -> JSONResponse:
        return error_response(e.status_code, None, str(e.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, e: Exception) -> JSONResponse:
        return error_response(500, None, f"internal error ({type(e).__name__})")

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "other")
        metrics.request_done(path, response.status_code, time.perf_counter() - start)
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((package_files("audiox_turbo.serve") / "static/index.html").read_text())

    @app.get("/health")
    async def health() -> JSONResponse:
        alive = queue.worker.is_alive()
        body = {"status": "ok" if alive else "down", "queue_depth": queue.depth()}
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"data": [model_card(pipe, limits)]}

    @app.get("/v1/progress/{request_id}")
    async def request_progress(request_id: str) -> dict[str, Any]:
        state = progress.get(request_id)
        if state is None:
            raise RequestError("request_id", f"no running request {request_id!r}", 404)
        return {"state": state.state, "step": state.step, "total": state.total}

    @app.post("/v1/generate", openapi_extra=_request_body_schema())
    async def generate(request: Request) -> Response:
        """Generate audio from a text prompt and/or uploaded video and audio prompts."""
        body = await read_body(request, limits.max_upload_bytes)
        with tempfile.TemporaryDirectory(prefix="audiox-request-") as folder:
            fields, uploads = await parse_body(request, body, Path(folder))
            options: ApiRequest = parse_options(ApiRequest, fields)
            options.check(limits, pipe)
            fmt = options.output_format("video" in uploads)
            if options.response == "file" and options.num_outputs > 1:
                raise RequestError("num_outputs", "more than one output needs response=json")
            await run_in_threadpool(check_uploads, uploads)
            video = uploads.get("video")
            try:
                job = queue.submit(options.request(video, uploads.get("audio")))
            except QueueFull as e:
                headers = {"Retry-After": str(RETRY_AFTER_S)}
                return error_response(503, None, f"server busy: {e}", headers)
            except AudioXError as e:
                raise RequestError(field_named_in(str(e)), str(e)) from None
            request_id = request.headers.get("x-request-id")
            if request_id:
                progress[request_id] = job.progress
            try:
                out = await asyncio.wait_for(asyncio.wrap_future(job.future), limits.timeout_s)
            except asyncio.TimeoutError:
                message = f"not finished within {limits.timeout_s:g} s"
                return error_response(503, None, message, {"Retry-After": str(RETRY_AFTER_S)})
            except AudioXError as e:
                raise RequestError(field_named_in(str(e)), str(e)) from None
            finally:
                progress.pop(request_id or "", None)
            return await run_in_threadpool(_respond, out, options, fmt, video)

    return app


def _respond(out: GenerationOutput, options: ApiRequest, fmt: str, video: str | None) -> Response:
    """The generated outputs as one file or as JSON (base64 files and spectrograms)."""
    files = [
        encode_output(w, out.sample_rate, fmt, video, options.video_start) for w in out.waveforms
    ]
    info = {
        "X-Seed": str(out.seed),
        "X-NFE": str(out.nfe),
        "X-Duration": f"{out.duration:g}",
        "X-Sample-Rate": str(out.sample_rate),
    }
    if options.response == "file":
        headers = {**info, "Content-Disposition": f'attachment; filename="audiox_{out.seed}.{fmt}"'}
        return Response(files[0], media_type=CONTENT_TYPES[fmt], headers=headers)
    outputs = [
        {
            "data": base64.b64encode(data).decode(),
            "spectrogram_png": base64.b64encode(spectrogram_png(w, out.sample_rate)).decode(),
        }
        for data, w in zip(files, out.waveforms, strict=True)
    ]
    body = {
        "seed": out.seed,
        "nfe": out.nfe,
        "duration": out.duration,
        "sample_rate": out.sample_rate,
        "format": fmt,
        "content_type": CONTENT_TYPES[fmt],
        "outputs": outputs,
    }
    return JSONResponse(body)
