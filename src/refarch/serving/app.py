"""The scoring app: `POST /invocations` for any refarch pyfunc model, plus what production needs.

MLflow's own server answers `{"inputs": [...]}` with `{"predictions": [...]}`; this app keeps
that contract and adds API-key auth, 4xx errors with a JSON body for every kind of bad
input (never a 500), `/health`, `/ready` (model loaded, its store reachable), Prometheus
`/metrics` and an OpenAPI description built from the model's own input and output types.
The model loads in the background so the process answers `/health` at once and `/ready`
when it can serve.

The parts: `routes` (probes, metrics, error handlers), `invocations` (the fast `/invocations`
handler), `openapi` (the document), and here the app factory that puts them together.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from refarch.serving import routes
from refarch.serving.auth import KEYS_ENV, ApiKeys
from refarch.serving.invocations import InvocationsHandler
from refarch.serving.loader import DEFAULT_MAX_BATCH, ServedModel, load_served_model
from refarch.serving.metrics import Metrics, MetricsMiddleware
from refarch.serving.openapi import build_openapi

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
ROUTES = ("/invocations", "/health", "/ready", "/metrics", "/openapi.json", "/docs")


@dataclass
class AppState:
    """What the background loader fills in; read by every request."""

    model_uri: str
    model: ServedModel | None = None
    load_error: str | None = None
    loaded_at: float | None = None


class ScoringApp(FastAPI):
    """FastAPI for docs, probes and metrics; `/invocations` goes straight to its handler."""

    invocations: Any = None  # InvocationsHandler wrapped in MetricsMiddleware
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    auth: bool = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/invocations":
            await self.invocations(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        model = self.state.refarch.model
        schema = build_openapi(self, model, self.max_body_bytes, self.auth)
        if model is not None:  # not cached before: the model's types arrive with the model
            self.openapi_schema = schema
        return schema


def load_model(app: ScoringApp, max_batch: int) -> None:
    """Load the app's model into its state; a failure is kept for /health and /ready to report."""
    state: AppState = app.state.refarch
    started = time.perf_counter()
    try:
        served = load_served_model(state.model_uri, max_batch=max_batch)
    except Exception as err:  # reported by /ready and /health; the traceback goes to the log
        log.exception("could not load model %s", state.model_uri)
        state.load_error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        return
    state.model, state.loaded_at = served, time.time()
    app.openapi_schema = None
    log.info("model %s loaded in %.1f s", state.model_uri, time.perf_counter() - started)


def create_app(
    model_uri: str,
    *,
    api_keys: ApiKeys | None = None,
    auth: bool = True,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    background_load: bool = True,
    predict_in_threadpool: bool = False,
) -> ScoringApp:
    """The app for one model URI (`models:/name@alias`, `runs:/...`, or a local folder).

    Keys: `api_keys`, else $REFARCH_API_KEYS / $REFARCH_API_KEY_FILE; `auth=False` serves
    without keys (local experiments only). `predict_in_threadpool` suits slow models that
    release the GIL; fast lookups are quicker on the event loop itself.
    """
    keys = (api_keys or ApiKeys.from_env()) if auth else None

    @asynccontextmanager
    async def lifespan(app: ScoringApp) -> AsyncIterator[None]:
        if background_load:
            threading.Thread(target=load_model, args=(app, max_batch), name="model-loader", daemon=True).start()
        else:
            load_model(app, max_batch)
        yield

    app = ScoringApp(title=f"refarch scoring: {model_uri}", version="1", description=__doc__, lifespan=lifespan)
    app.state.refarch = state = AppState(model_uri=model_uri)
    app.state.metrics = metrics = Metrics()
    app.max_body_bytes, app.auth = max_body_bytes, keys is not None
    app.include_router(routes.router)
    app.add_exception_handler(StarletteHTTPException, routes.http_error)
    app.add_exception_handler(Exception, routes.unexpected)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=ROUTES)
    # the hot path skips FastAPI's middleware, routing and dependency machinery (most of its cost)
    handler = InvocationsHandler(state, keys, metrics, max_body_bytes, predict_in_threadpool)
    app.invocations = MetricsMiddleware(handler, metrics=metrics, routes=ROUTES)
    return app


def app_from_env() -> ScoringApp:
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
