"""Settings of `refarch serve`: request limits, connection limits, and how the app guards its store.

The defaults live here, once. `refarch serve` has one flag per field (`--store-timeout-ms`,
`--max-connections`, ...), the AKS Deployment sets the ones it changes, and the CLI hands the
result to every uvicorn worker as JSON in $REFARCH_SERVE_SETTINGS.

The connection limits sit behind the ingress (deploy/aks/ingress.yaml), which refuses most
abuse first; they protect each worker from whatever reaches it anyway.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

SETTINGS_ENV = "REFARCH_SERVE_SETTINGS"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectionLimits(_Settings):
    """Per uvicorn worker; each limit is logged once when first hit."""

    max_connections: int = Field(
        1000, ge=1, description="open connections per worker; one more is answered 503 and closed at once"
    )
    keep_alive_s: int = Field(
        65,
        ge=1,
        description="idle time allowed between requests on one connection; above the ingress' 60 s upstream "
        "keep-alive, so the ingress, not the app, closes idle pooled connections",
    )
    head_timeout_s: float = Field(
        10.0, gt=0, description="time for the request line and headers to arrive (408, then the connection closes)"
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="time for the request body to arrive once the headers have (408, connection closed)"
    )
    max_header_bytes: int = Field(
        48 * 1024,
        ge=1024,
        description="request line plus headers (431); the ingress forwards at most 4 x 8 KiB header lines "
        "and adds a few of its own",
    )
    max_headers: int = Field(100, ge=8, description="header lines per request (431)")


class StoreGuard(_Settings):
    """How the app calls a model's store (a model with `predict_async`) and when it stops trying."""

    timeout_ms: int = Field(
        50, ge=1, le=10_000, description="one call to the store: connect, send, answer; a slower call fails"
    )
    breaker_failures: int = Field(5, ge=1, description="store failures within the window that open the circuit")
    breaker_window_s: float = Field(1.0, gt=0, description="the window in which failures are counted")
    probe_interval_s: float = Field(0.2, gt=0, description="while open, how often a background probe tries the store")
    retry_after_s: int = Field(1, ge=1, description="Retry-After of a 503")


class ServeSettings(_Settings):
    max_inputs: int = Field(100, ge=1, le=10_000, description="most inputs per request")
    max_batch: int = Field(
        1,
        ge=1,
        le=10_000,
        description="dynamic batching: most inputs per model call, from concurrent requests (1: off)",
    )
    max_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="dynamic batching: how long a request waits for others to share its call"
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body (413)")
    threadpool: bool = Field(False, description="run a synchronous predict in a thread pool (slow models)")
    limits: ConnectionLimits = Field(default_factory=ConnectionLimits)
    store: StoreGuard = Field(default_factory=StoreGuard)

    @classmethod
    def from_env(cls) -> ServeSettings:
        """What `refarch serve` prepared for its workers; the defaults when started otherwise."""
        raw = os.environ.get(SETTINGS_ENV)
        return cls.model_validate_json(raw) if raw else cls()
