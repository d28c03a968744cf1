"""The circuit breaker: when it opens, that it probes in the background, and when it closes."""

from __future__ import annotations

import asyncio
import time

from refarch.serving.breaker import CircuitBreaker


class Store:
    """A probe target that fails until told otherwise, counting the probes."""

    def __init__(self) -> None:
        self.up = False
        self.probes = 0

    async def probe(self) -> None:
        self.probes += 1
        if not self.up:
            raise ConnectionError("down")


def test_opens_after_n_failures_in_a_row_and_closes_when_a_probe_succeeds():
    async def scenario() -> None:
        store, opened = Store(), []
        breaker = CircuitBreaker(3, 1.0, 0.01, store.probe, on_open=lambda: opened.append(1))
        before = time.perf_counter()
        breaker.record_failure("timed out", before)
        breaker.record_failure("timed out", time.perf_counter())
        assert not breaker.is_open
        breaker.record_failure("timed out", time.perf_counter())
        assert breaker.is_open and opened == [1]
        await asyncio.sleep(0.05)
        assert breaker.is_open and store.probes >= 2  # probing, still down
        store.up = True
        await asyncio.sleep(0.05)
        assert not breaker.is_open
        probes = store.probes
        await asyncio.sleep(0.03)
        assert store.probes == probes  # no probing once closed
        await breaker.stop()

    asyncio.run(scenario())


def test_failures_spread_over_more_than_the_window_or_broken_by_a_success_do_not_open():
    async def scenario() -> None:
        breaker = CircuitBreaker(3, 0.05, 0.01, Store().probe)
        for _ in range(3):
            breaker.record_failure("unreachable", time.perf_counter())
            await asyncio.sleep(0.03)  # three failures over 0.06 s > the 0.05 s window
        assert not breaker.is_open
        fresh = CircuitBreaker(3, 1.0, 0.01, Store().probe)
        fresh.record_failure("unreachable", time.perf_counter())
        fresh.record_failure("unreachable", time.perf_counter())
        fresh.record_success()
        fresh.record_failure("unreachable", time.perf_counter())
        fresh.record_failure("unreachable", time.perf_counter())
        assert not fresh.is_open
        fresh.record_failure("unreachable", time.perf_counter())
        assert fresh.is_open
        await fresh.stop()

    asyncio.run(scenario())


def test_a_stall_that_times_out_every_call_in_flight_at_once_does_not_open():
    """All failed calls were made before the first failure was seen: one event (a GC pause), not an outage."""

    async def scenario() -> None:
        breaker = CircuitBreaker(3, 1.0, 0.01, Store().probe)
        sent = time.perf_counter()
        await asyncio.sleep(0.01)
        for _ in range(8):
            breaker.record_failure("timed out", sent)
        assert not breaker.is_open
        breaker.record_failure("timed out", time.perf_counter())  # a call made after: the store is failing
        assert breaker.is_open
        await breaker.stop()

    asyncio.run(scenario())
