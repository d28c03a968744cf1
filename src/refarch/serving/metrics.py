"""Prometheus metrics: requests, latency histogram and errors by status, per route.

With several uvicorn workers each process writes its samples to $PROMETHEUS_MULTIPROC_DIR
and `/metrics` sums them, so a scrape sees the whole pod, not one worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class Metrics:
    """The app's own registry (so several apps in one process, as in tests, do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "refarch_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "refarch_http_request_duration_seconds",
            "Time from request to response, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "refarch_http_errors",
            "Responses with status >= 400, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.predictions = Counter(
            "refarch_predictions",
            "Inputs scored by the model",
            registry=self.registry,
        )
        self.circuit_openings = Counter(
            "refarch_store_circuit_openings",
            "Times the store's circuit breaker opened (the store failing: 503s without calling it)",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def children(self, route: str, method: str, status: int) -> tuple[Any, Any, Any]:
        """The (requests, latency, errors or None) series of one route, method and status."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
                self.errors.labels(route, str(status)) if status >= 400 else None,
            )
            self._children[key] = children
        return children

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._children.get((route, method, status)) or self.children(route, method, status)
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text: summed over worker processes when running multi-process."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Plain ASGI (no per-request task or body copy): times every HTTP request, counts its status."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope["path"]
            route = path if path in self.routes else "other"  # unknown paths must not blow up label sets
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - start)
