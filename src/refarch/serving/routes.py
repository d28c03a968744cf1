"""The FastAPI routes: probes, metrics, and the JSON error shape for everything FastAPI answers.

Each handler reads the app's `AppState` from `request.app.state.refarch`; nothing here reads
a request body (only `/invocations` takes one, see `refarch.serving.invocations`).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from refarch.serving.errors import error_response

log = logging.getLogger(__name__)

router = APIRouter()

_STATUS_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@router.get("/health", summary="liveness: the process answers (and its model did not fail to load)")
async def health(request: Request) -> Response:
    state = request.app.state.refarch
    if state.load_error is not None:
        return JSONResponse({"status": "failed", "reason": state.load_error}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready", summary="readiness: model loaded and its store reachable")
async def ready(request: Request) -> Response:
    state = request.app.state.refarch
    model = state.model
    if model is None:
        status = "failed" if state.load_error else "loading"
        return JSONResponse({"status": status, "reason": state.load_error}, status_code=503)
    if model.ready_check is not None:
        try:
            await run_in_threadpool(model.ready_check)
        except Exception as err:
            return JSONResponse({"status": "unavailable", "reason": str(err)[:300]}, status_code=503)
    return JSONResponse({"status": "ready", "model": model.uri, "loaded_at": state.loaded_at})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
    """404, 405, ... in the JSON error shape."""
    return error_response(exc.status_code, _STATUS_CODES.get(exc.status_code, "http_error"), str(exc.detail))


async def unexpected(_: Request, exc: Exception) -> Response:  # pragma: no cover - last resort
    log.error("unexpected error: %s", type(exc).__name__)
    return error_response(500, "internal_error", "internal error")
