"""Entra ID (Azure AD) bearer tokens: signature, algorithm, issuer, audience, lifetime, scope or role.

Verified with PyJWT: it is already installed with the core wheel (azure-identity needs msal,
which needs PyJWT, and cryptography), it insists on being told the algorithms it may accept,
and it refuses an asymmetric public key as an HMAC secret. joserfc would do the job as well,
as one more dependency to track.

What a token must be:
- a JWS with `alg` one of RS256/384/512, PS256/384/512, ES256/384/512 (never `none`, never
  HS*: a symmetric algorithm would let anyone holding the public key sign), and a `kid` found
  in the provider's keys (`refarch.serving.jwks`), whose type allows that `alg`;
- signed by that key, with `iss`, `aud` and `exp` present and accepted, `nbf` and `iat` not in
  the future (`leeway_s` of clock skew allowed);
- carrying the required scope in `scp` or the required app role in `roles`, when one is set
  (else a 403: the caller is known but not allowed).

Every failure is the same 401 to the client; the log says which check failed, never the token.

A client sends the same token for its whole life (an hour or so), and a signature check costs
about 100 us of CPU, as much as the rest of a request: so an accepted token is remembered, by
its SHA-256 only, until its `exp` or until the key that signed it leaves the provider's set (or
changes), whichever first (`MAX_REMEMBERED` of them, the oldest forgotten first).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from refarch.serving.jwks import ALGORITHMS, SigningKey, SigningKeys
from refarch.serving.settings import JwtSettings, split_list

log = logging.getLogger(__name__)

REQUIRED_CLAIMS = ["exp", "iss", "aud"]
MAX_REMEMBERED = 10_000


class Outcome(enum.Enum):
    ACCEPTED = 200
    REFUSED = 401  # missing, malformed, unverifiable or invalid: the same answer whatever the reason
    FORBIDDEN = 403  # valid, without the required scope or role
    UNAVAILABLE = 503  # no signing key could ever be loaded: this service's failure, not the caller's


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str  # for the log: which check failed (never a token or a claim value)
    claims: dict[str, Any] | None = None
    key: SigningKey | None = None  # the key that verified an accepted token


def bearer_token(authorization: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive), or None."""
    if authorization and authorization[:7].lower() == "bearer ":
        token = authorization[7:].strip()
        return token or None
    return None


def looks_like_jwt(value: str) -> bool:
    """Three base64url parts, the first a JSON object (`eyJ`): tells a token from an API key."""
    return value.count(".") == 2 and value.startswith("eyJ")


class BearerTokens:
    """Verifies the bearer token of a request against `settings` and the provider's `keys`."""

    def __init__(self, settings: JwtSettings, keys: SigningKeys | None = None) -> None:
        self.settings = settings
        self.issuers = split_list(settings.issuer)
        self.audiences = split_list(settings.audience)
        self.keys = keys or SigningKeys(
            settings.jwks_url or "",
            refresh_s=settings.jwks_refresh_s,
            min_interval_s=settings.jwks_min_interval_s,
            timeout_s=settings.jwks_timeout_s,
        )
        # sha256(token) -> (exp, the key that verified it, claims) of tokens accepted before
        self._accepted: dict[bytes, tuple[float, SigningKey, dict[str, Any]]] = {}

    async def verify(self, token: str | None) -> Verdict:
        if not token:
            return Verdict(Outcome.REFUSED, "no bearer token")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        seen = self._accepted.get(digest)
        if seen is not None:
            exp, key, claims = seen
            if time.time() < exp and self.keys.cached(key.kid) is key:
                return Verdict(Outcome.ACCEPTED, "accepted before", claims, key)
            del self._accepted[digest]
        verdict = await self._verify(token)
        if verdict.outcome is Outcome.ACCEPTED and verdict.claims is not None and verdict.key is not None:
            if len(self._accepted) >= MAX_REMEMBERED:
                del self._accepted[next(iter(self._accepted))]
            self._accepted[digest] = (float(verdict.claims["exp"]), verdict.key, verdict.claims)
        return verdict

    async def _verify(self, token: str) -> Verdict:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except Exception:  # DecodeError, and anything odd input may raise: a 401, never a 500
            return Verdict(Outcome.REFUSED, "malformed token")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            return Verdict(Outcome.REFUSED, "algorithm not allowed")
        if not isinstance(kid, str):
            return Verdict(Outcome.REFUSED, "no key id")
        key = await self.keys.lookup(kid)
        if key is None:
            if not self.keys.loaded:
                return Verdict(Outcome.UNAVAILABLE, "no signing keys loaded")
            return Verdict(Outcome.REFUSED, "unknown key id")
        if alg not in key.algorithms:
            return Verdict(Outcome.REFUSED, "algorithm does not match the key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audiences,
                issuer=self.issuers,
                leeway=self.settings.leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            return Verdict(Outcome.REFUSED, "expired")
        except jwt.ImmatureSignatureError:
            return Verdict(Outcome.REFUSED, "not yet valid")
        except jwt.InvalidIssuerError:
            return Verdict(Outcome.REFUSED, "wrong issuer")
        except jwt.InvalidAudienceError:
            return Verdict(Outcome.REFUSED, "wrong audience")
        except jwt.MissingRequiredClaimError as err:
            return Verdict(Outcome.REFUSED, f"no {err.claim} claim")
        except jwt.InvalidSignatureError:
            return Verdict(Outcome.REFUSED, "bad signature")
        except Exception as err:  # InvalidTokenError and its kin; a 401, never a 500
            return Verdict(Outcome.REFUSED, f"invalid token ({type(err).__name__})")
        if not self._permitted(claims):
            return Verdict(Outcome.FORBIDDEN, "without the required scope or role", claims)
        return Verdict(Outcome.ACCEPTED, "accepted", claims, key)

    def _permitted(self, claims: dict[str, Any]) -> bool:
        scope, role = self.settings.scope, self.settings.role
        if not scope and not role:
            return True
        scopes = claims.get("scp")
        roles = claims.get("roles")
        has_scope = bool(scope) and isinstance(scopes, str) and scope in scopes.split()
        has_role = bool(role) and isinstance(roles, list) and role in roles
        return has_scope or has_role

    def close(self) -> None:
        self.keys.close()
