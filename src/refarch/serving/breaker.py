"""A circuit breaker around the model's store: fail fast while it is down, find out in the background when it is back.

The circuit opens after `failures` store failures within `window_s` seconds, with no success in
between, once at least one of them was a call made after a failure had already been seen. That
last rule keeps a single stall of this process (a GC pause, CPU throttling) from opening it: such
a stall times out every call in flight at once, but calls made after it succeed; in an outage
they fail too. While open, requests are answered 503 with Retry-After at once, without a call
to the store, and `/ready` says "unavailable"; a background task probes the store every
`probe_interval_s`, and the first probe that succeeds closes the circuit. Each opening and
closing is logged; single failures are the caller's to log. One breaker per worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from refarch.serving.logs import REQUEST_ID

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        window_s: float,
        probe_interval_s: float,
        probe: Callable[[], Awaitable[None]],
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.probe_interval_s = probe_interval_s
        self.probe = probe
        self.on_open = on_open
        self.is_open = False
        self.opened_at: float | None = None
        self.failing_since: float | None = None  # the first failure of the current streak
        self._count = 0
        self._confirmed = False  # a call made after the streak began failed too
        self._prober: asyncio.Task[None] | None = None

    def record_success(self) -> None:
        """A store call that worked: the failures before it no longer count (callers may test
        `failing_since is not None` first: a success on the hot path then costs one attribute read)."""
        self.failing_since = None

    def record_failure(self, reason: str, started: float) -> None:
        """A store call made at `started` (time.perf_counter) failed; this may open the circuit."""
        if self.is_open:
            return
        now = time.perf_counter()
        if self.failing_since is None or now - self.failing_since > self.window_s:
            self.failing_since, self._count, self._confirmed = now, 0, False
        self._count += 1
        self._confirmed = self._confirmed or started > self.failing_since
        if self._count >= self.failures and self._confirmed:
            self._open(reason)

    def _open(self, reason: str) -> None:
        self.is_open, self.opened_at = True, time.perf_counter()
        self.failing_since = None
        if self.on_open is not None:
            self.on_open()
        log.warning(
            "store failing (%d failures within %g s; last: %s): answering 503 until a probe succeeds",
            self._count,
            self.window_s,
            reason,
        )
        self._prober = asyncio.get_running_loop().create_task(self._probe_until_closed(), name="store-probe")

    async def _probe_until_closed(self) -> None:
        REQUEST_ID.set(None)  # this task copied the context of the request that opened the circuit
        while self.is_open:
            await asyncio.sleep(self.probe_interval_s)
            try:
                await self.probe()
            except Exception:  # still down; the next probe decides
                continue
            self.close()

    def close(self) -> None:
        if not self.is_open:
            return
        down = time.perf_counter() - (self.opened_at or time.perf_counter())
        self.is_open, self.opened_at = False, None
        log.warning("store answers again: circuit closed after %.2f s", down)

    async def stop(self) -> None:
        """Cancel the probe (app shutdown)."""
        if self._prober is not None and not self._prober.done():
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._prober
