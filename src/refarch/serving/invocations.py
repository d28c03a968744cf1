"""`/invocations` in plain ASGI: the one place a request body is read, scored and answered.

FastAPI's routing, dependency injection and middleware cost more than a store lookup, so
`ScoringApp` hands this path straight to `InvocationsHandler`; the route is still described
in the OpenAPI document (see `refarch.serving.openapi`).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from refarch.serving.auth import ApiKeys, presented_key
from refarch.serving.errors import ApiError

if TYPE_CHECKING:
    from refarch.serving.app import AppState
    from refarch.serving.metrics import Metrics

log = logging.getLogger(__name__)

Answer = tuple[int, bytes, dict[str, str] | None]

# the request headers the handler looks at; every other header is skipped without decoding
_WANTED = (b"x-api-key", b"authorization", b"content-length")
_JSON = (b"content-type", b"application/json")


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    """The documented error shape: `{"error": {"code", "message", "details"?}}`."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return json.dumps({"error": body}).encode()


def _error(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> Answer:
    return status, error_body(code, message, details), None


_UNAUTHORIZED = error_body("unauthorized", "missing or invalid API key")
_NOT_ALLOWED = error_body("method_not_allowed", "Method Not Allowed")


class InvocationsHandler:
    """Read the body (bounded), check the key, parse, predict, serialise, send one JSON response."""

    def __init__(
        self,
        state: AppState,
        keys: ApiKeys | None,
        metrics: Metrics,
        max_body_bytes: int,
        predict_in_threadpool: bool,
    ) -> None:
        self.state = state
        self.keys = keys
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.predict_in_threadpool = predict_in_threadpool
        self.too_large = error_body("too_large", f"request body over {max_body_bytes} bytes")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] != "POST":
            await send_json(send, 405, _NOT_ALLOWED, {"Allow": "POST"})
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _WANTED:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await send_json(send, 413, self.too_large, None)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await send_json(send, 413, self.too_large, None)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        status, payload, extra = await self.score(headers, body)
        await send_json(send, status, payload, extra)

    async def score(self, headers: dict[str, str], body: bytes) -> Answer:
        """Auth, parse, predict, serialise: (status, JSON body, extra headers). Never raises."""
        if self.keys is not None and not self.keys.check(presented_key(headers)):
            log.info("rejected a request to /invocations: missing or invalid API key")
            return 401, _UNAUTHORIZED, {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}
        model = self.state.model
        if model is None:
            return _error(503, "not_ready", "the model is not loaded yet; retry shortly")
        try:
            inputs = model.parse(body)
            if self.predict_in_threadpool:
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
        self.metrics.predictions.inc(len(inputs))
        return 200, payload, None


async def send_json(send: Any, status: int, body: bytes, extra: dict[str, str] | None) -> None:
    """One complete JSON response in two ASGI messages."""
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
