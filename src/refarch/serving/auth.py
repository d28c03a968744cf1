"""API keys from an environment variable or a mounted secret file, compared in constant time.

The 401 never says whether the key was missing, malformed or wrong, and no key ever
reaches a log line. A mounted Kubernetes Secret is re-read when it changes, so keys
rotate without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

KEYS_ENV = "REFARCH_API_KEYS"
KEY_FILE_ENV = "REFARCH_API_KEY_FILE"
MIN_KEY_LENGTH = 16
HEADER = "x-api-key"


class AuthConfigError(ValueError):
    """No usable API key configured (or one too short to be safe)."""


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def parse_keys(text: str) -> list[str]:
    """Keys separated by commas or new lines; blank lines and `#` comments ignored."""
    keys = []
    for line in text.replace(",", "\n").splitlines():
        key = line.strip()
        if key and not key.startswith("#"):
            keys.append(key)
    return keys


class ApiKeys:
    """The accepted keys, held only as SHA-256 digests."""

    def __init__(self, keys: Sequence[str] = (), file: str | Path | None = None, reload_seconds: float = 5.0):
        self._static = [_digest(k) for k in self._checked(keys, "given")]
        self.file = Path(file) if file else None
        self.reload_seconds = reload_seconds
        self._from_file: list[bytes] = []
        self._file_mtime: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        if self.file is not None:
            self._reload(force=True)
        if not self._static and not self._from_file:
            raise AuthConfigError(
                f"no API key configured: set ${KEYS_ENV} or mount a key file (${KEY_FILE_ENV} / --api-key-file)"
            )

    @classmethod
    def from_env(cls, keys_env: str = KEYS_ENV, file: str | Path | None = None) -> ApiKeys:
        file = file or os.environ.get(KEY_FILE_ENV) or None
        return cls(parse_keys(os.environ.get(keys_env, "")), file=file)

    @staticmethod
    def _checked(keys: Sequence[str], source: str) -> list[str]:
        short = [k for k in keys if len(k) < MIN_KEY_LENGTH]
        if short:
            raise AuthConfigError(f"{len(short)} API key(s) from {source} are shorter than {MIN_KEY_LENGTH} characters")
        return list(keys)

    def _reload(self, force: bool = False) -> None:
        assert self.file is not None
        now = time.monotonic()
        if not force and now - self._checked_at < self.reload_seconds:
            return
        with self._lock:
            self._checked_at = now
            try:
                mtime = self.file.stat().st_mtime
            except OSError as err:
                if force:
                    raise AuthConfigError(f"API key file {self.file}: {err.strerror}") from None
                log.warning("API key file %s is unreadable; keeping the keys loaded before", self.file)
                return
            if mtime == self._file_mtime and not force:
                return
            keys = self._checked(parse_keys(self.file.read_text()), str(self.file))
            self._from_file = [_digest(k) for k in keys]
            self._file_mtime = mtime
            log.info("loaded %d API key(s) from %s", len(keys), self.file)

    def check(self, presented: str | None) -> bool:
        """True if `presented` is one of the keys; the time taken does not depend on which part differs."""
        if self.file is not None:
            self._reload()
        digest = _digest(presented or "")
        ok = False
        for known in (*self._static, *self._from_file):
            ok |= hmac.compare_digest(digest, known)
        return ok and bool(presented)


def presented_key(headers: dict[str, str] | object) -> str | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer <key>`, without surrounding whitespace."""
    get = headers.get  # type: ignore[attr-defined]
    key = get(HEADER)
    if key:
        key = key.strip()
        if key:
            return key
    auth = get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None
