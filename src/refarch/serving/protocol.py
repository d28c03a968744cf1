"""uvicorn's httptools protocol with the limits uvicorn lacks: connection cap, head and body timeouts, header caps.

uvicorn has a keep-alive timeout (between requests) and nothing else: a connection that never
sends a byte, or sends its headers or body slowly, stays open, and httptools accepts any
number and size of headers. `LimitedHttpToolsProtocol` keeps uvicorn's parser and request
cycle and adds, per worker (`ConnectionLimits`):

- a cap on open connections: one more is answered 503 and closed before anything is read;
- a deadline for the request line and headers, from the connection's opening or the request's
  first byte, and one for the body once the headers are in: 408, then the connection closes.
  One timer per worker sweeps the deadlines (every 0.25 s), so a request costs a clock read,
  not timers;
- caps on header bytes and header lines: 431, then the connection closes. The bytes received
  while a head is unfinished are counted, so a head never grows past the cap by more than one
  read; a complete head is measured only when the chunks that carried it were over the cap.

Every answer of its own, and the parser's 400, has the app's JSON error shape, and each kind
is logged once per worker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from refarch.serving.invocations import error_body
from refarch.serving.logs import log_once
from refarch.serving.settings import ConnectionLimits, ServeSettings

log = logging.getLogger(__name__)

SWEEP_SECONDS = 0.25  # resolution of the head and body deadlines


@functools.cache
def _limits_from_env() -> ConnectionLimits:
    return ServeSettings.from_env().limits


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Pass `with_limits(limits)` to uvicorn in-process; workers started by `refarch serve` read the environment."""

    limits: ConnectionLimits | None = None

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[LimitedHttpToolsProtocol]:
        return type(cls.__name__, (cls,), {"limits": limits})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = type(self).limits or _limits_from_env()
        self.max_connections = limits.max_connections
        self.head_timeout = limits.head_timeout_s
        self.body_timeout = limits.body_timeout_s
        self.max_header_bytes = limits.max_header_bytes
        self.max_headers = limits.max_headers
        # when the head (or the body: deadline_body) must be in; a body deadline outlives its body
        # until the sweeper sees the body complete and drops it
        self.deadline: float | None = None
        self.deadline_body = False
        self.head_received = 0  # bytes received since the head began (a whole chunk: maybe some body too)
        self.refused = False
        self.rejection: tuple[int, str, str] | None = None

    # connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.refused, self.transport = True, transport
            message = f"{self.max_connections} connections open on this worker (max_connections); retry shortly"
            self._answer_and_close(503, "too_many_connections", message)
            return
        super().connection_made(transport)
        self.deadline = self.loop.time() + self.head_timeout
        _ensure_sweeper(self.server_state, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refused:
            return
        self.deadline = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the limits: a parser error is the JSON 400, or the 431 a callback decided."""
        self._unset_keepalive_if_required()
        cycle = self.cycle
        if cycle is None or not cycle.more_body:  # a head (or the gap between requests)
            self.head_received += len(data)
            if self.deadline is None:  # the first bytes of a request on a kept-alive connection
                self.deadline, self.deadline_body = self.loop.time() + self.head_timeout, False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._answer_and_close(*(self.rejection or (400, "bad_request", "invalid HTTP request")))
            return
        if self.head_received > self.max_header_bytes and (self.cycle is None or not self.cycle.more_body):
            self._answer_and_close(*self._head_too_large())  # a header line still being buffered

    # parser callbacks
    def on_headers_complete(self) -> None:
        if len(self.headers) > self.max_headers:
            self.rejection = (431, "too_many_headers", f"more than {self.max_headers} header lines")
            raise _LimitHit
        # the head came in chunks totalling fewer bytes than the cap, or is measured now (rarely)
        if self.head_received > self.max_header_bytes and self._head_bytes() > self.max_header_bytes:
            self.rejection = self._head_too_large()
            raise _LimitHit
        self.head_received = 0
        self.deadline, self.deadline_body = self.loop.time() + self.body_timeout, True
        super().on_headers_complete()

    def _head_bytes(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    # limits
    def _head_too_large(self) -> tuple[int, str, str]:
        return 431, "header_too_large", f"request line and headers over {self.max_header_bytes} bytes"

    def expire(self) -> None:
        """Past the deadline: 408 unless the body came in the meantime or something was answered already."""
        self.deadline = None
        cycle = self.cycle
        if self.deadline_body and (cycle is None or not cycle.more_body):
            return  # the body is in: the app has the request, and no limit of ours runs on it
        part, seconds = ("body", self.body_timeout) if self.deadline_body else ("head", self.head_timeout)
        if self.deadline_body:
            cycle.disconnected = True  # the app's receive() now answers http.disconnect
            cycle.message_event.set()
            if cycle.response_started:
                log_once(log, f"{part}_timeout", "closed a connection: request %s not in within %g s", part, seconds)
                self.transport.close()
                return
        self._answer_and_close(408, f"{part}_timeout", f"request {part} not received within {seconds:g} s")

    def _answer_and_close(self, status: int, code: str, message: str) -> None:
        """Our own error response in the app's JSON shape, then close; each kind logged once per worker."""
        log_once(log, code, "answered %d %s and closed the connection: %s", status, code, message)
        if self.transport.is_closing():
            return
        body = error_body(code, message)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/json\r\nconnection: close\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class _LimitHit(Exception):
    """Raised from a parser callback: httptools stops parsing and reports a callback error."""


def _ensure_sweeper(server_state: Any, loop: asyncio.AbstractEventLoop) -> None:
    """One repeating timer per server that closes connections past their deadline."""
    if getattr(server_state, "refarch_sweeper", None) is not None:
        return

    def sweep() -> None:
        now = loop.time()
        for conn in list(server_state.connections):
            deadline = getattr(conn, "deadline", None)
            if deadline is not None and now >= deadline:
                conn.expire()
        server_state.refarch_sweeper = loop.call_later(SWEEP_SECONDS, sweep)

    server_state.refarch_sweeper = loop.call_later(SWEEP_SECONDS, sweep)
