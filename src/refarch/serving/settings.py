"""Settings of `refarch serve`: request limits, connection limits, how the app guards its store, and auth.

The defaults live here, once. `refarch serve` has one flag per field (`--store-timeout-ms`,
`--max-connections`, ...), the AKS Deployment sets the ones it changes, and the CLI hands the
result to every uvicorn worker as JSON in $REFARCH_SERVE_SETTINGS.

The connection limits sit behind the ingress (deploy/aks/ingress.yaml), which refuses most
abuse first; they protect each worker from whatever reaches it anyway.
"""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def split_list(value: str | None) -> list[str]:
    """`a,b` -> ["a", "b"]: flags that take several values (audiences, issuers)."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class JwtSettings(_Settings):
    """Bearer tokens from Entra ID (or any OpenID provider publishing a JWKS), for `--auth jwt`.

    Entra ID: issuer `https://login.microsoftonline.com/<tenant>/v2.0`, audience the API's
    application (client) id and/or its application ID URI, JWKS
    `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`.
    """

    issuer: str | None = Field(None, description="accepted `iss`, comma-separated if several (v1 and v2 tokens)")
    audience: str | None = Field(None, description="accepted `aud`, comma-separated if several (client id, app ID URI)")
    jwks_url: str | None = Field(None, description="the provider's signing keys (JWKS), https (http on loopback only)")
    scope: str | None = Field(None, description="a delegated scope the token must carry in `scp` (or --jwt-role)")
    role: str | None = Field(None, description="an app role the token must carry in `roles` (or --jwt-scope)")
    leeway_s: float = Field(60.0, ge=0, le=600, description="clock skew allowed on exp, nbf and iat")
    jwks_refresh_s: float = Field(
        3600.0, gt=0, description="age after which the signing keys are fetched again, in the background"
    )
    jwks_min_interval_s: float = Field(
        10.0, gt=0, description="least time between two fetches of the keys (an unknown `kid` asks for one)"
    )
    jwks_timeout_s: float = Field(
        2.0, gt=0, le=30, description="one fetch of the keys; a request waiting for it waits no longer"
    )

    def problems(self) -> list[str]:
        """What is missing or unsafe for `--auth jwt` (flag names), empty when usable."""
        out = [
            f"--jwt-{name.replace('_', '-')} is required"
            for name in ("issuer", "audience", "jwks_url")
            if not getattr(self, name)
        ]
        if self.jwks_url:
            url = urlparse(self.jwks_url)
            if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK):
                out.append("--jwt-jwks-url must be https (http only on loopback, for tests)")
        return out


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
    auth: Literal["key", "jwt", "key-or-jwt"] = Field(
        "key", description="what a request must present: an API key, an Entra ID bearer token, or either"
    )
    jwt: JwtSettings = Field(default_factory=JwtSettings)

    @model_validator(mode="after")
    def _jwt_complete(self) -> ServeSettings:
        if self.auth != "key" and self.jwt.problems():
            raise ValueError("; ".join(self.jwt.problems()))
        return self

    @classmethod
    def from_env(cls) -> ServeSettings:
        """What `refarch serve` prepared for its workers; the defaults when started otherwise."""
        raw = os.environ.get(SETTINGS_ENV)
        return cls.model_validate_json(raw) if raw else cls()
