"""The identity provider's signing keys (a JWKS), cached, refreshed without blocking the event loop.

Entra ID publishes its keys at `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`
and rotates them: a new key appears in the set before tokens are signed with it, and an old one
leaves it later. So the keys are cached and fetched again:
- in the background once they are `refresh_s` old (requests go on with the cached keys);
- when a token names a `kid` the cache lacks (the rotation came sooner than the refresh): the
  request waits for that one fetch, at most `timeout_s`;
- never more often than once every `min_interval_s`, however many unknown `kid`s arrive (an
  attacker inventing them costs one fetch per interval, not one per request).

A fetch runs in a thread of its own (urllib), never on the event loop; concurrent requests
share one fetch. A failed fetch keeps the keys loaded before. Only RSA and EC public keys for
signatures are kept (kty RSA or EC, `use` sig if given): symmetric (`oct`) keys are never
accepted, whatever a JWKS holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
ALGORITHMS = RSA_ALGORITHMS | frozenset(EC_ALGORITHMS.values())
MAX_JWKS_BYTES = 1 << 20


@dataclass(frozen=True)
class SigningKey:
    """One public key and the algorithms a token signed with it may name."""

    kid: str
    key: Any  # cryptography's RSAPublicKey or EllipticCurvePublicKey
    algorithms: frozenset[str]


def parse_jwks(document: Any) -> dict[str, SigningKey]:
    """The usable signature keys of a JWKS document, by `kid`; anything else is skipped."""
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no `keys` list)")
    keys: dict[str, SigningKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        kty, alg = jwk.get("kty"), jwk.get("alg")
        if jwk.get("use", "sig") != "sig" or "verify" not in jwk.get("key_ops", ["verify"]):
            continue
        try:
            if kty == "RSA":
                key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})  # public parts only
                allowed = RSA_ALGORITHMS
            elif kty == "EC" and jwk.get("crv") in EC_ALGORITHMS:
                key = ECAlgorithm.from_jwk({"kty": "EC", "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]})
                allowed = frozenset({EC_ALGORITHMS[jwk["crv"]]})
            else:  # oct (HMAC secrets), OKP, unknown curves: never
                log.debug("signing keys: skipped key %s (kty %s)", jwk["kid"], kty)
                continue
        except Exception as err:  # one broken key does not spoil the others
            log.warning("signing keys: key %s is unreadable (%s)", jwk["kid"], type(err).__name__)
            continue
        if alg is not None:
            allowed = allowed & {alg}
        if allowed:
            keys[jwk["kid"]] = SigningKey(jwk["kid"], key, frozenset(allowed))
    return keys


def fetch_jwks(url: str, timeout: float) -> dict[str, SigningKey]:
    """GET the JWKS (blocking: call it from a thread)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "refarch-serve"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # https, or http on loopback (settings)
        body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS document over {MAX_JWKS_BYTES} bytes")
    return parse_jwks(json.loads(body))


class SigningKeys:
    """The cache. `await lookup(kid)` is what a request calls; `loaded` says whether any key ever came."""

    def __init__(
        self,
        url: str,
        *,
        refresh_s: float = 3600.0,
        min_interval_s: float = 10.0,
        timeout_s: float = 2.0,
        fetch: Callable[[str, float], dict[str, SigningKey]] = fetch_jwks,
    ) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self.min_interval_s = min_interval_s
        self.timeout_s = timeout_s
        self._fetch = fetch
        self._keys: dict[str, SigningKey] = {}
        self.loaded_at: float | None = None  # monotonic time of the last good fetch
        self.fetches = 0  # attempts (for tests and metrics)
        self._attempted_at = -math.inf
        self._inflight: asyncio.Task[bool] | None = None
        self._executor = ThreadPoolExecutor(1, "jwks-fetch")

    @property
    def loaded(self) -> bool:
        return self.loaded_at is not None

    def cached(self, kid: str) -> SigningKey | None:
        """The key named `kid` as held now, without fetching anything."""
        return self._keys.get(kid)

    async def lookup(self, kid: str) -> SigningKey | None:
        """The key named `kid`; fetches the set again (rate-limited) when it is unknown."""
        key = self._keys.get(kid)
        if key is not None:
            if time.monotonic() - (self.loaded_at or 0.0) > self.refresh_s:
                self.start()  # in the background: this request goes on with the cached key
            return key
        await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch now unless one is running (then wait for it) or the last began under `min_interval_s` ago.

        Waits at most `timeout_s`; True if a key is loaded afterwards.
        """
        task = self.start()
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError):  # the fetch goes on; this request stops waiting
                await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        return self.loaded

    def start(self) -> asyncio.Task[bool] | None:
        """Begin a fetch in the background unless one runs (then that one) or the interval forbids (None)."""
        if self._inflight is not None and not self._inflight.done():
            return self._inflight
        now = time.monotonic()
        if now - self._attempted_at < self.min_interval_s:
            return None
        self._attempted_at = now
        self._inflight = asyncio.get_running_loop().create_task(self._fetch_and_install())
        return self._inflight

    async def _fetch_and_install(self) -> bool:
        self.fetches += 1
        loop = asyncio.get_running_loop()
        try:
            keys = await loop.run_in_executor(self._executor, self._fetch, self.url, self.timeout_s)
        except Exception as err:
            kept = f"keeping the {len(self._keys)} loaded before" if self.loaded else "none loaded yet"
            log.warning("signing keys: fetch from %s failed (%s: %s); %s", self.url, type(err).__name__, err, kept)
            return False
        if not keys:
            log.warning("signing keys: %s holds no usable RSA or EC signature key; keeping the keys before", self.url)
            return False
        added, removed = keys.keys() - self._keys.keys(), self._keys.keys() - keys.keys()
        # a key that did not change stays the same object: what was verified with it stays verified
        keys = {kid: self._keys[kid] if self._keys.get(kid) == key else key for kid, key in keys.items()}
        self._keys, self.loaded_at = keys, time.monotonic()
        if added or removed:
            log.info(
                "signing keys: %d from %s (new: %s; gone: %s)", len(keys), self.url, sorted(added), sorted(removed)
            )
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
