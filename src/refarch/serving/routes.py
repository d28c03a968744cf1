"""The FastAPI routes: probes, metrics, and the JSON error shape for everything FastAPI answers.

Each handler reads the app's `AppState` from `request.app.state.refarch`; nothing here reads
a request body (only `/invocations` takes one, see `refarch.serving.invocations`).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from refarch.serving.errors import error_response

log = logging.getLogger(__name__)

router = APIRouter()

_STATUS_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@router.get("/health", summary="liveness: the process answers (and its model did not fail to load)")
async def health(request: Request) -> Response:
    """Never touches the store: a store outage must not make the orchestrator restart healthy pods."""
    state = request.app.state.refarch
    if state.load_error is not None:
        return JSONResponse({"status": "failed", "reason": state.load_error}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready", summary="readiness: model loaded, its store reachable, signing keys loaded (--auth jwt)")
async def ready(request: Request) -> Response:
    """Within the store timeout; the reason never names the store's host, port or path (no auth here)."""
    state = request.app.state.refarch
    model = state.model
    if model is None:
        status = "failed" if state.load_error else "loading"
        return JSONResponse({"status": status, "reason": state.load_error}, status_code=503)
    waiting = state.access.not_ready() if state.access is not None else None
    if waiting is not None:
        return _unavailable(waiting)
    if state.breaker.is_open:
        return _unavailable("store failing; probing it in the background")
    try:
        await state.check_store()
    except Exception as err:
        log.info("not ready: %s: %s", type(err).__name__, str(err)[:300])
        return _unavailable(f"store {_reason(err)}")
    return JSONResponse({"status": "ready", "model": model.uri, "loaded_at": state.loaded_at})


def _reason(err: Exception) -> str:
    reason = getattr(err, "reason", None)
    if isinstance(reason, str):
        return reason  # the store's own short, safe reason (StoreError.reason)
    return "timed out" if isinstance(err, (TimeoutError, asyncio.TimeoutError)) else "unavailable"


def _unavailable(reason: str) -> Response:
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
    """404, 405 (with its Allow header), ... in the JSON error shape."""
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def unexpected(_: Request, exc: Exception) -> Response:  # pragma: no cover - last resort
    log.error("unexpected error: %s", type(exc).__name__)
    return error_response(500, "internal_error", "internal error")
