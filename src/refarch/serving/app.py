"""The scoring app: `POST /invocations` for any refarch pyfunc model, plus what production needs.

MLflow's own server answers `{"inputs": [...]}` with `{"predictions": [...]}`; this app keeps
that contract and adds API-key auth, 4xx errors with a JSON body for every kind of bad
input (never a 500), `/health`, `/ready` (model loaded, its store reachable), Prometheus
`/metrics` and an OpenAPI description built from the model's own input and output types.
The model loads in the background so the process answers `/health` at once and `/ready`
when it can serve.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field, create_model
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from refarch.serving.auth import KEYS_ENV, ApiKeys, presented_key
from refarch.serving.errors import ApiError, error_response
from refarch.serving.loader import DEFAULT_MAX_BATCH, ServedModel, load_served_model
from refarch.serving.metrics import Metrics, MetricsMiddleware

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
ROUTES = ("/invocations", "/health", "/ready", "/metrics", "/openapi.json", "/docs")


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable reason, e.g. invalid_json, invalid_request, unauthorized")
    message: str
    details: list[dict[str, Any]] | None = Field(None, description="one entry per bad field: loc, message, type")


class ErrorResponse(BaseModel):
    error: ErrorDetail


@dataclass
class AppState:
    """What the background loader fills in; read by every request."""

    model_uri: str
    model: ServedModel | None = None
    load_error: str | None = None
    loaded_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_STATUS_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def create_app(
    model_uri: str,
    *,
    api_keys: ApiKeys | None = None,
    auth: bool = True,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    background_load: bool = True,
    predict_in_threadpool: bool = False,
) -> FastAPI:
    """The app for one model URI (`models:/name@alias`, `runs:/...`, or a local folder).

    Keys: `api_keys`, else $REFARCH_API_KEYS / $REFARCH_API_KEY_FILE; `auth=False` serves
    without keys (local experiments only). `predict_in_threadpool` suits slow models that
    release the GIL; fast lookups are quicker on the event loop itself.
    """
    keys = (api_keys or ApiKeys.from_env()) if auth else None
    state = AppState(model_uri=model_uri)
    metrics = Metrics()

    def load() -> None:
        started = time.perf_counter()
        try:
            served = load_served_model(model_uri, max_batch=max_batch)
        except Exception as err:  # reported by /ready and /health; the traceback goes to the log
            log.exception("could not load model %s", model_uri)
            state.load_error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            return
        state.model, state.loaded_at = served, time.time()
        app.openapi_schema = None
        log.info("model %s loaded in %.1f s", model_uri, time.perf_counter() - started)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background_load:
            threading.Thread(target=load, name="model-loader", daemon=True).start()
        else:
            load()
        yield

    app = ScoringApp(
        title=f"refarch scoring: {model_uri}",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )
    app.state.refarch = state
    app.state.metrics = metrics

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, _STATUS_CODES.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:  # pragma: no cover - last resort
        log.error("unexpected error: %s", type(exc).__name__)
        return error_response(500, "internal_error", "internal error")

    @app.get("/health", summary="liveness: the process answers (and its model did not fail to load)")
    async def health() -> Response:
        if state.load_error is not None:
            return JSONResponse({"status": "failed", "reason": state.load_error}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/ready", summary="readiness: model loaded and its store reachable")
    async def ready() -> Response:
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

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    error_responses: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorResponse, "description": "bad JSON, wrong types, unknown fields, values out of range"},
        401: {"model": ErrorResponse, "description": "missing or invalid API key"},
        413: {"model": ErrorResponse, "description": f"body over {max_body_bytes} bytes"},
        503: {"model": ErrorResponse, "description": "model not loaded yet, or its store unavailable"},
    }

    async def score(get_header: Any, body: bytes) -> tuple[int, bytes, dict[str, str] | None]:
        """Auth, parse, predict, serialise: (status, JSON body, extra headers). Never raises."""
        if keys is not None and not keys.check(presented_key(get_header)):
            log.info("rejected a request to /invocations: missing or invalid API key")
            return 401, _UNAUTHORIZED, {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}
        model = state.model
        if model is None:
            return _error(503, "not_ready", "the model is not loaded yet; retry shortly")
        try:
            inputs = model.parse(body)
            if predict_in_threadpool or model.threadpool:
                result = await run_in_threadpool(model.predict, inputs)
            else:
                result = model.predict(inputs)
            payload = model.serialize(result)
        except ApiError as err:
            return _error(err.status, err.code, err.message, err.details)
        except Exception as err:
            status = getattr(err, "http_status", 500)
            status = status if isinstance(status, int) and 500 <= status <= 599 else 500
            log.error(
                "prediction failed (%d): %s: %s", status, type(err).__name__, str(err)[:300], exc_info=status == 500
            )
            if status == 503:
                return _error(503, "unavailable", "temporarily unavailable; retry shortly")
            return _error(status, "prediction_failed", "prediction failed")
        metrics.predictions.inc(len(inputs))
        return 200, payload, None

    too_large = _error(413, "too_large", f"request body over {max_body_bytes} bytes")

    @app.post("/invocations", summary="score a batch of inputs", responses=error_responses)
    async def invocations(request: Request) -> Response:
        """Documents the route; requests are answered by `InvocationsHandler` before FastAPI."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            return Response(too_large[1], status_code=413, media_type="application/json")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return Response(too_large[1], status_code=413, media_type="application/json")
            chunks.append(chunk)
        status, payload, headers = await score(request.headers, b"".join(chunks))
        return Response(payload, status_code=status, media_type="application/json", headers=headers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        post = schema["paths"]["/invocations"]["post"]
        if keys is not None:
            post["security"] = [{"ApiKey": []}]
        model = state.model
        if model is None:
            return schema  # not cached: the model's types arrive with the model
        _add_model_schemas(components.setdefault("schemas", {}), post, model)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=ROUTES)
    # the hot path skips FastAPI's middleware, routing and dependency machinery (most of its cost)
    app.invocations_handler = MetricsMiddleware(
        InvocationsHandler(score, max_body_bytes, too_large[1]), metrics=metrics, routes=ROUTES
    )
    return app


def _error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
) -> tuple[int, bytes, dict[str, str] | None]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return status, json.dumps({"error": body}).encode(), None


_UNAUTHORIZED = _error(401, "unauthorized", "missing or invalid API key")[1]
_JSON = (b"content-type", b"application/json")


class ScoringApp(FastAPI):
    """FastAPI for docs, probes and metrics; `POST /invocations` goes straight to its handler."""

    invocations_handler: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = self.invocations_handler
        if (
            handler is not None
            and scope["type"] == "http"
            and scope["path"] == "/invocations"
            and scope["method"] == "POST"
        ):
            await handler(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class InvocationsHandler:
    """`POST /invocations` in plain ASGI: read the body (bounded), score, send one JSON response."""

    def __init__(self, score: Any, max_body_bytes: int, too_large: bytes) -> None:
        self.score = score
        self.max_body_bytes = max_body_bytes
        self.too_large = too_large

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in (b"x-api-key", b"authorization", b"content-length"):
                headers[name.decode("latin-1")] = value.decode("latin-1")
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _send(send, 413, self.too_large, None)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _send(send, 413, self.too_large, None)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        status, payload, extra = await self.score(headers, body)
        await _send(send, status, payload, extra)


async def _send(send: Any, status: int, body: bytes, extra: dict[str, str] | None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _add_model_schemas(schemas: dict[str, Any], post: dict[str, Any], model: ServedModel) -> None:
    """Request and response bodies of /invocations from the model's pydantic types."""
    ref = "#/components/schemas/{model}"
    request = model.request_model.model_json_schema(ref_template=ref)
    schemas.update(request.pop("$defs", {}))
    schemas["InvocationRequest"] = request
    post["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvocationRequest"}}},
    }
    if model.output_type is not None:
        response_model = create_model("InvocationResponse", predictions=(model.output_type, ...))
        response = response_model.model_json_schema(ref_template=ref, mode="serialization")
        schemas.update(response.pop("$defs", {}))
        schemas["InvocationResponse"] = response
        post["responses"]["200"] = {
            "description": "one prediction per input, in order",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvocationResponse"}}},
        }


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings come from the environment the CLI prepared."""
    uri = os.environ.get("REFARCH_SERVE_MODEL_URI")
    if not uri:
        raise RuntimeError("REFARCH_SERVE_MODEL_URI is not set (start the server with `refarch serve`)")
    auth = os.environ.get("REFARCH_SERVE_AUTH", "1") != "0"
    keys = ApiKeys.from_env(os.environ.get("REFARCH_SERVE_KEYS_ENV", KEYS_ENV)) if auth else None
    return create_app(
        uri,
        api_keys=keys,
        auth=auth,
        max_batch=int(os.environ.get("REFARCH_SERVE_MAX_BATCH", DEFAULT_MAX_BATCH)),
        max_body_bytes=int(os.environ.get("REFARCH_SERVE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
        predict_in_threadpool=os.environ.get("REFARCH_SERVE_THREADPOOL", "0") == "1",
        # a worker accepts connections only once its model is loaded: no 503s from a half-started pod
        background_load=os.environ.get("REFARCH_SERVE_BACKGROUND_LOAD", "0") == "1",
    )
