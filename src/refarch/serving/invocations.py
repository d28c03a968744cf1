"""`/invocations` in plain ASGI: the one place a request body is read, scored and answered.

FastAPI's routing, dependency injection and middleware cost more than a store lookup, so
`ScoringApp` hands this path straight to `InvocationsHandler`; the route is still described
in the OpenAPI document (see `refarch.serving.openapi`).

The order is what keeps a worker cheap to attack and quick to fail: the key or token is checked
from the headers before a byte of the body is read (a 401 closes the connection, so the body is
never read at all; see `refarch.serving.access`); an open circuit (the store is down) answers
503 before the body too; the body is read up to `max_body_bytes`; only then parse, predict,
serialise.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from refarch.serving.errors import ApiError
from refarch.serving.logs import REQUEST_ID, request_id

if TYPE_CHECKING:
    from refarch.serving.access import Access
    from refarch.serving.app import AppState
    from refarch.serving.metrics import Metrics

log = logging.getLogger(__name__)

Header = tuple[bytes, bytes]
Answer = tuple[int, bytes, list[Header]]

# the request headers the handler looks at; every other header is skipped without decoding
_WANTED = (b"x-api-key", b"authorization", b"content-length", b"x-request-id")
_CLOSE = (b"connection", b"close")
ROUTE = "/invocations"
LATE = 1.5  # a store timeout that fires after 1.5 times its delay says more about this worker than the store


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    """The documented error shape: `{"error": {"code", "message", "details"?}}`."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return json.dumps({"error": body}).encode()


_NOT_ALLOWED = error_body("method_not_allowed", "Method Not Allowed")
_NOT_READY = error_body("not_ready", "the model is not loaded yet; retry shortly")
_UNAVAILABLE = error_body("unavailable", "temporarily unavailable; retry shortly")


class InvocationsHandler:
    """Check the key, read the body (bounded), parse, predict, serialise, send one JSON response."""

    def __init__(self, state: AppState, access: Access | None, metrics: Metrics) -> None:
        self.state = state
        self.breaker = state.breaker
        self.access = access
        self.metrics = metrics
        settings = state.settings
        self.max_body_bytes = settings.max_body_bytes
        self.threadpool = settings.threadpool
        self.timeout = settings.store.timeout_ms / 1000
        self.retry_after = [(b"retry-after", str(settings.store.retry_after_s).encode())]
        self.too_large = error_body("too_large", f"request body over {self.max_body_bytes} bytes")
        self.answered, self.took, _ = metrics.children(ROUTE, "POST", 200)  # the common case, looked up once

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        start = time.perf_counter()
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _WANTED:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        rid = request_id(headers.get("x-request-id"))
        REQUEST_ID.set(rid)  # this request's task has its own context: every line it logs carries the id
        answer = await self.answer(scope, headers, receive)
        if answer is None:  # the client left before its body was in: nobody to answer
            self.metrics.observe(ROUTE, scope["method"], 499, time.perf_counter() - start)
            return
        status, payload, extra = answer
        response = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", rid.encode()),
        ]
        if extra:
            response.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": response})
        await send({"type": "http.response.body", "body": payload})
        # timed here rather than by MetricsMiddleware: one wrapper less on the hot path
        if status == 200:
            self.answered.inc()
            self.took.observe(time.perf_counter() - start)
        else:
            self.metrics.observe(ROUTE, scope["method"], status, time.perf_counter() - start)

    async def answer(self, scope: dict[str, Any], headers: dict[str, str], receive: Any) -> Answer | None:
        """(status, JSON body, extra headers); never raises."""
        if scope["method"] != "POST":
            return 405, _NOT_ALLOWED, [(b"allow", b"POST")]
        if self.access is not None:
            refused = await self.access.refuse(headers)
            if refused is not None:
                return refused
        model = self.state.model
        if model is None:
            return 503, _NOT_READY, self.retry_after
        if self.breaker.is_open:
            return 503, _UNAVAILABLE, self.retry_after
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            return 413, self.too_large, [_CLOSE]
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return 413, self.too_large, [_CLOSE]
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        started = time.perf_counter()
        try:
            inputs = model.parse(body)
            if model.predict_async is not None:
                result = await model.predict_async(inputs, self.timeout)
            elif model.batcher is not None:
                result = await model.batcher.submit(inputs)
            elif self.threadpool or model.threadpool:
                result = await run_in_threadpool(model.predict, inputs)
            else:
                result = model.predict(inputs)
            payload = model.serialize(result)
        except ApiError as err:
            return err.status, error_body(err.code, err.message, err.details), []
        except Exception as err:
            return self._failed(err, started)
        if self.breaker.failing_since is not None:
            self.breaker.record_success()
        self.metrics.predictions.inc(len(inputs))
        return 200, payload, []

    def _failed(self, err: Exception, started: float) -> Answer:
        status = getattr(err, "http_status", 500)
        if isinstance(status, int) and 400 <= status <= 499:  # the model refused this input (a corrupt image)
            return status, error_body(str(getattr(err, "code", None) or "invalid_input"), str(err)[:300]), []
        status = status if isinstance(status, int) and 500 <= status <= 599 else 500
        if status == 503:  # the store: counted by the breaker, which logs when it opens
            reason = str(getattr(err, "reason", "unavailable"))
            took = time.perf_counter() - started
            if reason == "timed out" and took > self.timeout * LATE:
                # the timer fired late: this worker was stalled (GC, CPU throttling), so the store may have
                # answered in time; the request fails, but the breaker does not count it against the store
                late_ms = (took - self.timeout) * 1e3
                log.warning("store call timed out %.0f ms late (this worker was busy): %s", late_ms, err)
            else:
                log.warning("store call failed (%s): %s", reason, str(err)[:300])
                self.breaker.record_failure(reason, started)
            return 503, _UNAVAILABLE, self.retry_after
        log.error("prediction failed (%d): %s: %s", status, type(err).__name__, str(err)[:300], exc_info=True)
        return status, error_body("prediction_failed", "prediction failed"), []
