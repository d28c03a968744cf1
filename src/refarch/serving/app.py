"""The scoring app: `POST /invocations` for any refarch pyfunc model, plus what production needs.

MLflow's own server answers `{"inputs": [...]}` with `{"predictions": [...]}`; this app keeps
that contract and adds auth (API keys, Entra ID bearer tokens, or either: `refarch.serving.access`),
4xx errors with a JSON body for every kind of bad input (never a 500), `/health`, `/ready`
(model loaded, its store reachable), Prometheus `/metrics` and an OpenAPI description built
from the model's own input and output types.
The model loads in the background so the process answers `/health` at once and `/ready`
when it can serve.

A store outage fails fast: store calls are bounded by a short timeout, a circuit breaker
answers 503 with Retry-After while the store is down and probes it in the background, and
`/health` never touches the store (see `refarch.serving.breaker`).

The parts: `routes` (probes, metrics, error handlers), `invocations` (the fast `/invocations`
handler), `openapi` (the document), and here the app factory that puts them together.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from refarch.serving import routes
from refarch.serving.access import Access
from refarch.serving.auth import KEYS_ENV, ApiKeys
from refarch.serving.breaker import CircuitBreaker
from refarch.serving.invocations import InvocationsHandler
from refarch.serving.loader import ServedModel, load_served_model
from refarch.serving.logs import REQUEST_ID, install_access_redaction, request_id
from refarch.serving.metrics import Metrics, MetricsMiddleware
from refarch.serving.openapi import build_openapi
from refarch.serving.settings import ServeSettings

log = logging.getLogger(__name__)

ROUTES = ("/invocations", "/health", "/ready", "/metrics", "/openapi.json", "/docs")


@dataclass
class AppState:
    """The model (filled in by the background loader), the settings and the store's circuit breaker."""

    model_uri: str
    settings: ServeSettings
    metrics: Metrics
    model: ServedModel | None = None
    access: Access | None = None
    load_error: str | None = None
    loaded_at: float | None = None
    breaker: CircuitBreaker = field(init=False)
    # a blocking readiness check runs here, one at a time, so a hung store cannot pile up threads
    checker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "store-check"))

    def __post_init__(self) -> None:
        guard = self.settings.store
        self.breaker = CircuitBreaker(
            guard.breaker_failures,
            guard.breaker_window_s,
            guard.probe_interval_s,
            probe=self.check_store,
            on_open=self.metrics.circuit_openings.inc,
        )

    async def check_store(self) -> None:
        """Raise unless the model's store answers, within the store timeout (/ready and the breaker's probe)."""
        model, timeout = self.model, self.settings.store.timeout_ms / 1000
        if model is None:
            raise RuntimeError("no model loaded")
        if model.ready_check_async is not None:
            await model.ready_check_async(timeout)
        elif model.ready_check is not None:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.run_in_executor(self.checker, model.ready_check), timeout)


class ScoringApp(FastAPI):
    """FastAPI for docs, probes and metrics; `/invocations` goes straight to its handler."""

    invocations: Any = None  # InvocationsHandler
    auth: bool = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/invocations":
                await self.invocations(scope, receive, send)
                return
            send = _answering_request_id(scope, send)
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        state: AppState = self.state.refarch
        schema = build_openapi(self, state.model, state.settings, self.auth)
        if state.model is not None:  # not cached before: the model's types arrive with the model
            self.openapi_schema = schema
        return schema


def _answering_request_id(scope: dict[str, Any], send: Any) -> Any:
    """Set the request id for the log lines of a FastAPI request, and answer it in `X-Request-ID`."""
    given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
    rid = request_id(given)
    REQUEST_ID.set(rid)
    header = (b"x-request-id", rid.encode())

    async def send_with_id(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), header]
        await send(message)

    return send_with_id


def load_model(app: ScoringApp) -> None:
    """Load the app's model into its state; a failure is kept for /health and /ready to report."""
    state: AppState = app.state.refarch
    started = time.perf_counter()
    try:
        settings = state.settings
        served = load_served_model(
            state.model_uri, settings.max_inputs, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms
        )
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
    settings: ServeSettings | None = None,
    background_load: bool = True,
) -> ScoringApp:
    """The app for one model URI (`models:/name@alias`, `runs:/...`, or a local folder).

    `settings.auth` says what a request presents: API keys (`api_keys`, else $REFARCH_API_KEYS /
    $REFARCH_API_KEY_FILE), Entra ID bearer tokens (`settings.jwt`), or either; `auth=False`
    serves without any (local experiments only). `settings`: limits, the store guard and auth
    (`ServeSettings()` by default).
    """
    settings = settings or ServeSettings()
    access = _access(settings, api_keys) if auth else None
    install_access_redaction()

    @asynccontextmanager
    async def lifespan(app: ScoringApp) -> AsyncIterator[None]:
        if access is not None:
            access.start()  # the signing keys load in the background
        if background_load:
            threading.Thread(target=load_model, args=(app,), name="model-loader", daemon=True).start()
        else:
            load_model(app)
        yield
        await state.breaker.stop()
        state.checker.shutdown(wait=False)
        if state.model is not None and state.model.batcher is not None:
            state.model.batcher.close()
        if access is not None:
            access.close()

    app = ScoringApp(title=f"refarch scoring: {model_uri}", version="1", description=__doc__, lifespan=lifespan)
    metrics = Metrics()
    app.state.refarch = state = AppState(model_uri=model_uri, settings=settings, metrics=metrics, access=access)
    app.state.metrics = metrics
    app.auth = access is not None
    app.include_router(routes.router)
    app.add_exception_handler(StarletteHTTPException, routes.http_error)
    app.add_exception_handler(Exception, routes.unexpected)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=ROUTES)
    # the hot path skips FastAPI's middleware, routing and dependency machinery (most of its cost)
    app.invocations = InvocationsHandler(state, access, metrics)
    return app


def _access(settings: ServeSettings, api_keys: ApiKeys | None) -> Access:
    """The request check `settings.auth` asks for (API keys are read from the environment if not given)."""
    from refarch.serving.tokens import BearerTokens

    keys = (api_keys or ApiKeys.from_env()) if settings.auth != "jwt" else None
    tokens = BearerTokens(settings.jwt) if settings.auth != "key" else None
    return Access(settings.auth, keys, tokens)


def app_from_env() -> ScoringApp:
    """Factory for uvicorn workers: settings come from the environment the CLI prepared."""
    uri = os.environ.get("REFARCH_SERVE_MODEL_URI")
    if not uri:
        raise RuntimeError("REFARCH_SERVE_MODEL_URI is not set (start the server with `refarch serve`)")
    auth = os.environ.get("REFARCH_SERVE_AUTH", "1") != "0"
    settings = ServeSettings.from_env()
    with_keys = auth and settings.auth != "jwt"
    keys = ApiKeys.from_env(os.environ.get("REFARCH_SERVE_KEYS_ENV", KEYS_ENV)) if with_keys else None
    return create_app(
        uri,
        api_keys=keys,
        auth=auth,
        settings=settings,
        # a worker accepts connections only once its model is loaded: no 503s from a half-started pod
        background_load=os.environ.get("REFARCH_SERVE_BACKGROUND_LOAD", "0") == "1",
    )
