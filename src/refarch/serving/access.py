"""Who may call `/invocations`: an API key, an Entra ID bearer token, or either (`refarch serve --auth`).

Checked from the headers alone, before a byte of the body is read. Every refusal of one mode
is the same 401 (same body, same `WWW-Authenticate`), whatever failed; the log line says
what failed, and never holds a key or a token. A valid token without the required scope or
role is a 403. When no signing key could be loaded yet (the provider unreachable since start),
a token cannot be judged at all: that is this service's failure, so a 503 with Retry-After,
not a 401 telling a caller with a good token to go and get another.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Literal

from refarch.serving.auth import ApiKeys, presented_key
from refarch.serving.tokens import BearerTokens, Outcome, bearer_token, looks_like_jwt

log = logging.getLogger(__name__)

Mode = Literal["key", "jwt", "key-or-jwt"]
Header = tuple[bytes, bytes]
Answer = tuple[int, bytes, list[Header]]

_CLOSE = (b"connection", b"close")
_KEY_CHALLENGE = (b"www-authenticate", b'ApiKey header="X-API-Key"')
_BEARER_CHALLENGE = (b"www-authenticate", b"Bearer")
_MESSAGES = {
    "key": "missing or invalid API key",
    "jwt": "missing or invalid bearer token",
    "key-or-jwt": "missing or invalid API key or bearer token",
}


def _body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class Access:
    """`await refuse(headers)`: None to go on, else the answer (401, 403 or 503) to send."""

    def __init__(self, mode: Mode, keys: ApiKeys | None = None, tokens: BearerTokens | None = None) -> None:
        if mode != "jwt" and keys is None:
            raise ValueError(f"--auth {mode} needs API keys")
        if mode != "key" and tokens is None:
            raise ValueError(f"--auth {mode} needs the token settings")
        self.mode = mode
        self.keys = keys
        self.tokens = tokens
        self.message = _MESSAGES[mode]
        challenges = {"key": [_KEY_CHALLENGE], "jwt": [_BEARER_CHALLENGE]}.get(
            mode, [_KEY_CHALLENGE, _BEARER_CHALLENGE]
        )
        self.unauthorized: Answer = (401, _body("unauthorized", self.message), [*challenges, _CLOSE])
        self.forbidden: Answer = (
            403,
            _body("forbidden", "the token lacks the required scope or app role"),
            [(b"www-authenticate", b'Bearer error="insufficient_scope"')],
        )
        retry = math.ceil(tokens.keys.min_interval_s) if tokens is not None else 1
        self.unavailable: Answer = (
            503,
            _body("unavailable", "temporarily unavailable; retry shortly"),
            [(b"retry-after", str(retry).encode())],
        )

    async def refuse(self, headers: dict[str, str]) -> Answer | None:
        if self.tokens is not None and (self.mode == "jwt" or self._presents_token(headers)):
            return await self._check_token(headers)
        assert self.keys is not None
        if self.keys.check(presented_key(headers)):
            return None
        log.info("rejected a request to /invocations: %s", self.message)
        return self.unauthorized

    @staticmethod
    def _presents_token(headers: dict[str, str]) -> bool:
        """In `key-or-jwt`: a JWT in `Authorization: Bearer` and no `X-API-Key` (API keys have no dots)."""
        if (headers.get("x-api-key") or "").strip():
            return False
        token = bearer_token(headers.get("authorization"))
        return token is not None and looks_like_jwt(token)

    async def _check_token(self, headers: dict[str, str]) -> Answer | None:
        assert self.tokens is not None
        verdict = await self.tokens.verify(bearer_token(headers.get("authorization")))
        if verdict.outcome is Outcome.ACCEPTED:
            return None
        log.info("rejected a request to /invocations: bearer token: %s", verdict.reason)
        if verdict.outcome is Outcome.FORBIDDEN:
            return self.forbidden
        if verdict.outcome is Outcome.UNAVAILABLE:
            return self.unavailable
        return self.unauthorized

    def start(self) -> None:
        """Begin loading the signing keys (in the background), so the first request rarely waits."""
        if self.tokens is not None:
            self.tokens.keys.start()

    def not_ready(self) -> str | None:
        """Why requests cannot be judged yet (for /ready, which does not wait: a fetch begins if allowed)."""
        if self.tokens is None or self.tokens.keys.loaded:
            return None
        self.tokens.keys.start()
        return "signing keys not loaded"

    def close(self) -> None:
        if self.tokens is not None:
            self.tokens.close()
