"""Entra ID bearer tokens (`refarch serve --auth jwt`) against a JWKS served from a loopback HTTP server.

The keys are generated here (RSA 2048, EC P-256 and P-384); tokens are signed with them as Entra ID
would sign them, and with everything an attacker might try instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from refarch.serving.app import create_app
from refarch.serving.auth import ApiKeys
from refarch.serving.jwks import parse_jwks
from refarch.serving.settings import JwtSettings, ServeSettings

TENANT = "11111111-2222-3333-4444-555555555555"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
CLIENT_ID = "99999999-8888-7777-6666-555555555555"
AUDIENCE = f"api://refarch-test,{CLIENT_ID}"
API_KEY = "jwt-test-api-key-0123456789"
UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "missing or invalid bearer token"}}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """Signing keys generated once: what the JWKS publishes, and a rogue one it never does."""

    def __init__(self) -> None:
        self.private = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "rsa-2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec-1": ec.generate_private_key(ec.SECP256R1()),
            "ec-384": ec.generate_private_key(ec.SECP384R1()),
            "rogue": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        }
        self.hmac_secret = b"a-shared-secret-that-must-never-verify-anything"

    def jwk(self, kid: str) -> dict:
        public = self.private[kid].public_key()
        algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
        return {**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}

    def jwks(self, *kids: str) -> dict:
        """Entra's shape: RSA keys with kid, use and no alg; plus, here, EC keys and an HMAC (oct) key."""
        keys = [self.jwk(k) for k in kids]
        keys.append({"kty": "oct", "kid": "hmac-1", "k": b64(self.hmac_secret), "use": "sig"})
        return {"keys": keys}

    def public_pem(self, kid: str) -> bytes:
        return (
            self.private[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def claims(**override) -> dict:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 3600,
        "sub": "a-user",
        "oid": str(uuid.UUID(int=7)),
        "tid": TENANT,
        "scp": "Recommend.Read",
    }
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


def sign(keys: Keys, kid: str = "rsa-1", alg: str = "RS256", header_kid: str | None = None, **override) -> str:
    return jwt.encode(claims(**override), keys.private[kid], algorithm=alg, headers={"kid": header_kid or kid})


def forged_hs256(secret: bytes, kid: str) -> str:
    """An HS256 token built by hand (PyJWT rightly refuses to sign with a PEM public key as HMAC secret)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def unsigned(kid: str = "rsa-1", alg: str = "none") -> str:
    head = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    return f"{head}.{b64(json.dumps(claims()).encode())}."


class JwksServer:
    """The provider's keys endpoint on a loopback port: replaceable document, delay, down and up again."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.delay = 0.0
        self.requests = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/discovery/v2.0/keys"
        self.server: ThreadingHTTPServer | None = None

    def up(self) -> JwksServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                time.sleep(owner.delay)
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture()
def jwks_server(keys):
    server = JwksServer(keys.jwks("rsa-1", "ec-1", "ec-384")).up()
    yield server
    server.down()


def jwt_settings(url: str, auth: str = "jwt", **override) -> ServeSettings:
    values = {
        "issuer": f"{ISSUER},https://sts.windows.net/{TENANT}/",
        "audience": AUDIENCE,
        "jwks_url": url,
        "leeway_s": 5.0,
        "jwks_min_interval_s": 0.3,
        "jwks_timeout_s": 3.0,
        **override,
    }
    return ServeSettings(auth=auth, jwt=JwtSettings(**values))


@contextmanager
def serving(tiny_recommender, server_thread, settings: ServeSettings, wait: bool = True, api_keys=None):
    app = create_app(tiny_recommender["uri"], settings=settings, api_keys=api_keys)
    with server_thread(app, wait=wait) as srv:
        srv.keys = app.state.refarch.access.tokens.keys
        yield srv


def call(srv, token: str | None = None, headers: dict | None = None) -> httpx.Response:
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(srv.url + "/invocations", json={"inputs": [{"user_id": 1, "k": 2}]}, headers=headers, timeout=10)


@pytest.fixture()
def server(tiny_recommender, server_thread, jwks_server):
    with serving(tiny_recommender, server_thread, jwt_settings(jwks_server.url)) as srv:
        yield srv


def test_valid_tokens_of_every_asymmetric_kind_are_served(server, keys):
    tokens = {
        "RS256": sign(keys, "rsa-1", "RS256"),
        "RS512": sign(keys, "rsa-1", "RS512"),
        "PS256": sign(keys, "rsa-1", "PS256"),
        "ES256": sign(keys, "ec-1", "ES256"),
        "ES384": sign(keys, "ec-384", "ES384"),
        "app ID URI audience": sign(keys, aud="api://refarch-test"),
        "v1 issuer": sign(keys, iss=f"https://sts.windows.net/{TENANT}/"),
        "several audiences": sign(keys, aud=["someone-else", CLIENT_ID]),
        "exp just passed, within the leeway": sign(keys, exp=int(time.time()) - 2),
    }
    for name, token in tokens.items():
        r = call(server, token)
        assert r.status_code == 200, (name, r.text)
        assert [i["item_id"] for i in r.json()["predictions"][0]["items"]] == [11, 10]


def bad_tokens(keys: Keys) -> dict[str, str | None]:
    now = int(time.time())
    return {
        "expired": sign(keys, exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not yet valid": sign(keys, nbf=now + 3600),
        "issued in the future": sign(keys, iat=now + 3600, nbf=None),
        "wrong issuer": sign(keys, iss="https://login.microsoftonline.com/another-tenant/v2.0"),
        "wrong audience": sign(keys, aud="api://someone-else"),
        "no audience": sign(keys, aud=None),
        "no expiry": sign(keys, exp=None),
        "alg none": unsigned("rsa-1"),
        "alg None": unsigned("rsa-1", alg="None"),
        "HS256 with a made-up secret": forged_hs256(b"guessed-secret", "rsa-1"),
        "HS256 signed with the RSA public key": forged_hs256(keys.public_pem("rsa-1"), "rsa-1"),
        "HS256 with an HMAC key the JWKS publishes": forged_hs256(keys.hmac_secret, "hmac-1"),
        "unknown kid": sign(keys, "rogue"),
        "known kid, signed by another key": sign(keys, "rogue", header_kid="rsa-1"),
        "EC signature under an RSA kid": sign(keys, "ec-1", "ES256", header_kid="rsa-1"),
        "ES384 under a P-256 kid": sign(keys, "ec-384", "ES384", header_kid="ec-1"),
        "no kid": jwt.encode(claims(), keys.private["rsa-1"], algorithm="RS256"),
        "tampered payload": (
            lambda t: t.split(".")[0] + "." + b64(json.dumps(claims(sub="admin")).encode()) + "." + t.split(".")[2]
        )(sign(keys)),
        "malformed": "not-a-token",
        "three garbage parts": "a.b.c",
        "a JSON header and garbage": b64(b'{"alg":"RS256","kid":"rsa-1"}') + ".!!!.???",
        "empty bearer": "",
        "missing": None,
    }


def test_every_bad_token_is_the_same_401(server, keys):
    answers = {}
    for name, token in bad_tokens(keys).items():
        if token == "":
            r = call(server, headers={"Authorization": "Bearer"})  # httpx refuses a trailing space
        else:
            r = call(server, token)
        answers[name] = (r.status_code, r.content, r.headers.get("www-authenticate"), r.headers.get("connection"))
    expected = (401, json.dumps(UNAUTHORIZED).encode(), "Bearer", "close")
    assert {name: a for name, a in answers.items() if a != expected} == {}
    # other schemes and an API key are refused alike under --auth jwt
    assert call(server, headers={"Authorization": "Basic dXNlcjpwYXNz"}).content == expected[1]
    assert call(server, headers={"X-API-Key": API_KEY}).content == expected[1]


def test_no_token_reaches_the_log(server, keys, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "propagate", True)
    tokens = [t for t in bad_tokens(keys).values() if t and len(t) > 20] + [sign(keys), sign(keys, "ec-1", "ES256")]
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.INFO, logger="uvicorn.access"):
        for token in tokens:
            call(server, token)
    served = [r for r in caplog.records if r.name.startswith(("refarch", "uvicorn"))]  # the server's, not httpx's
    text = "\n".join(f"{r.getMessage()} {r.args} {getattr(r, 'exc_text', '')}" for r in served)
    assert "POST /invocations" in text  # the access log is on
    assert "bearer token: expired" in text and "bearer token: algorithm not allowed" in text  # the reason, yes
    for token in tokens:
        for part in token.split("."):
            if len(part) > 12:
                assert part not in text


def test_a_required_scope_or_app_role(tiny_recommender, server_thread, jwks_server, keys):
    settings = jwt_settings(jwks_server.url, scope="Recommend.Read", role="Recommend.All")
    with serving(tiny_recommender, server_thread, settings) as srv:
        assert call(srv, sign(keys, scp="User.Read Recommend.Read")).status_code == 200
        assert (
            call(srv, sign(keys, scp=None, roles=["Recommend.All"])).status_code == 200
        )  # an app (client credentials)
        for token in (sign(keys, scp="User.Read"), sign(keys, scp=None, roles=["Other"]), sign(keys, scp=None)):
            r = call(srv, token)
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "forbidden"
            assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
        assert call(srv, sign(keys, "rogue", scp="Recommend.Read")).status_code == 401  # scope never before signature


def test_a_rotated_key_is_picked_up_without_a_restart(tiny_recommender, server_thread, jwks_server, keys):
    with serving(tiny_recommender, server_thread, jwt_settings(jwks_server.url)) as srv:
        old, new = sign(keys, "rsa-1"), sign(keys, "rsa-2")
        assert call(srv, old).status_code == 200
        assert call(srv, new).status_code == 401  # not published yet (that request asked for a fetch)
        jwks_server.document = keys.jwks("rsa-2", "ec-1")  # Entra rotates: rsa-2 in, rsa-1 out
        time.sleep(0.35)  # the least interval between two fetches
        assert call(srv, new).status_code == 200
        assert call(srv, old).status_code == 401  # gone with the fetch the new kid asked for
        # a burst of invented kids costs at most one fetch per interval, not one per request
        before = jwks_server.requests
        started = time.monotonic()
        answers = [call(srv, sign(keys, "rogue", header_kid=f"invented-{i}")).status_code for i in range(20)]
        intervals = (time.monotonic() - started) / 0.3
        assert answers == [401] * 20
        assert jwks_server.requests - before <= intervals + 1


def test_a_fetch_in_flight_blocks_no_other_request(tiny_recommender, server_thread, jwks_server, keys):
    """The keys are fetched in a thread: while a request waits for a slow JWKS, /health answers at once."""
    with serving(tiny_recommender, server_thread, jwt_settings(jwks_server.url)) as srv:
        jwks_server.document = keys.jwks("rsa-1", "rsa-2")
        jwks_server.delay = 1.5
        time.sleep(0.35)
        waited: dict = {}

        def ask() -> None:
            started = time.monotonic()
            waited["status"] = call(srv, sign(keys, "rsa-2")).status_code
            waited["seconds"] = time.monotonic() - started

        t = threading.Thread(target=ask)
        t.start()
        time.sleep(0.3)
        started = time.monotonic()
        health = httpx.get(srv.url + "/health", timeout=5)
        health_seconds = time.monotonic() - started
        known = call(srv, sign(keys, "rsa-1"))  # a cached key does not wait for the fetch either
        known_seconds = time.monotonic() - started - health_seconds
        t.join(timeout=10)
    assert waited == {"status": 200, "seconds": pytest.approx(1.5, abs=1.0)}
    assert health.status_code == 200 and health_seconds < 0.5
    assert known.status_code == 200 and known_seconds < 0.5


def test_keys_loaded_then_the_jwks_down(tiny_recommender, server_thread, jwks_server, keys):
    """Cached keys keep serving; an unknown kid stays a 401 (the keys we hold do not know it)."""
    with serving(tiny_recommender, server_thread, jwt_settings(jwks_server.url)) as srv:
        assert call(srv, sign(keys)).status_code == 200
        jwks_server.down()
        time.sleep(0.35)
        assert call(srv, sign(keys, "rsa-2")).status_code == 401
        assert call(srv, sign(keys)).status_code == 200
        assert call(srv, sign(keys, "ec-1", "ES256")).status_code == 200
        assert httpx.get(srv.url + "/ready").status_code == 200


def test_started_while_the_jwks_is_down_is_503_until_it_is_back(tiny_recommender, server_thread, jwks_server, keys):
    """No key ever loaded: a well-formed token cannot be judged, which is our outage (503 + Retry-After),
    while a missing or malformed token is still the 401. Once the JWKS answers, all is served."""
    jwks_server.down()
    with serving(tiny_recommender, server_thread, jwt_settings(jwks_server.url), wait=False) as srv:
        srv.wait_for("/health", lambda r: r.status_code == 200)
        r = srv.wait_for("/ready", lambda r: r.json().get("reason") == "signing keys not loaded")
        assert r.status_code == 503
        r = call(srv, sign(keys))
        assert (r.status_code, r.headers["retry-after"], r.json()["error"]["code"]) == (503, "1", "unavailable")
        assert call(srv).status_code == 401
        assert call(srv, unsigned()).status_code == 401
        assert call(srv, "not-a-token").status_code == 401
        jwks_server.up()
        srv.wait_for("/ready", lambda r: r.status_code == 200, seconds=10)
        assert call(srv, sign(keys)).status_code == 200


def test_key_or_jwt_accepts_either(tiny_recommender, server_thread, jwks_server, keys):
    settings = jwt_settings(jwks_server.url, auth="key-or-jwt")
    with serving(tiny_recommender, server_thread, settings, api_keys=ApiKeys([API_KEY])) as srv:
        assert call(srv, headers={"X-API-Key": API_KEY}).status_code == 200
        assert call(srv, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
        assert call(srv, sign(keys)).status_code == 200
        refused = [call(srv, sign(keys, "rogue")), call(srv, headers={"X-API-Key": "wrong-key-0123456789"}), call(srv)]
        assert {(r.status_code, r.content) for r in refused} == {
            (401, b'{"error": {"code": "unauthorized", "message": "missing or invalid API key or bearer token"}}')
        }
        assert refused[0].headers.get_list("www-authenticate") == ['ApiKey header="X-API-Key"', "Bearer"]
        schemes = httpx.get(srv.url + "/openapi.json").json()["components"]["securitySchemes"]
        assert set(schemes) == {"ApiKey", "EntraId"} and schemes["EntraId"]["bearerFormat"] == "JWT"


def test_the_jwks_keeps_only_asymmetric_signature_keys(keys):
    document = keys.jwks("rsa-1", "ec-1")
    document["keys"] += [
        {**keys.jwk("rsa-2"), "use": "enc"},  # an encryption key
        {**keys.jwk("ec-384"), "alg": "ES256"},  # alg that does not fit the curve
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(b"x" * 32)},
        {**keys.jwk("rogue"), "alg": "RS384"},
    ]
    parsed = parse_jwks(document)
    assert set(parsed) == {"rsa-1", "ec-1", "rogue"}
    assert parsed["rsa-1"].algorithms == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    assert parsed["ec-1"].algorithms == {"ES256"} and parsed["rogue"].algorithms == {"RS384"}
    assert not isinstance(parsed["rsa-1"].key, rsa.RSAPrivateKey)
    with pytest.raises(ValueError, match="not a JWKS"):
        parse_jwks({"no": "keys"})


def test_jwt_settings_are_checked_at_start():
    import argparse

    from refarch.serving.cli import _check, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    entra = ["--auth", "jwt", "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE]
    keys_url = f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    settings = _check(parser.parse_args(["--model", "m", *entra, "--jwt-jwks-url", keys_url, "--jwt-scope", "S"]))
    assert (settings.auth, settings.jwt.jwks_url, settings.jwt.scope) == ("jwt", keys_url, "S")
    with pytest.raises(ValueError, match="--jwt-jwks-url is required"):
        _check(parser.parse_args(["--model", "m", *entra]))
    with pytest.raises(ValueError, match="must be https"):
        _check(parser.parse_args(["--model", "m", *entra, "--jwt-jwks-url", "http://evil.example/keys"]))
    with pytest.raises(ValueError, match="contradict"):
        _check(parser.parse_args(["--model", "m", *entra, "--jwt-jwks-url", keys_url, "--no-auth"]))


def test_each_bad_token_fails_the_check_meant_for_it(jwks_server, keys):
    """The 401s look alike from outside; inside, each is caught by its own check (the log's reason)."""
    import asyncio

    from refarch.serving.tokens import BearerTokens

    verifier = BearerTokens(jwt_settings(jwks_server.url).jwt)

    async def reasons() -> dict[str, str]:
        return {name: (await verifier.verify(token or None)).reason for name, token in bad_tokens(keys).items()}

    got = asyncio.run(reasons())
    verifier.close()
    hs256 = {n: "algorithm not allowed" for n in got if n.startswith(("HS256", "alg "))}
    assert got == {
        "expired": "expired",
        "not yet valid": "not yet valid",
        "issued in the future": "not yet valid",
        "wrong issuer": "wrong issuer",
        "wrong audience": "wrong audience",
        "no audience": "no aud claim",
        "no expiry": "no exp claim",
        **hs256,
        "unknown kid": "unknown key id",
        "known kid, signed by another key": "bad signature",
        "EC signature under an RSA kid": "algorithm does not match the key",
        "ES384 under a P-256 kid": "algorithm does not match the key",
        "no kid": "no key id",
        "tampered payload": "bad signature",
        "malformed": "malformed token",
        "three garbage parts": "malformed token",
        "a JSON header and garbage": "malformed token",
        "empty bearer": "no bearer token",
        "missing": "no bearer token",
    }
    assert len(hs256) == 5


def test_an_accepted_token_is_remembered_until_it_expires_or_the_keys_change(jwks_server, keys):
    import asyncio

    from refarch.serving.tokens import BearerTokens, Outcome

    verifier = BearerTokens(jwt_settings(jwks_server.url, leeway_s=0.0).jwt)

    async def run() -> list[tuple[Outcome, str]]:
        out = []
        short = sign(keys, exp=int(time.time()) + 2)
        for _ in range(2):
            v = await verifier.verify(short)
            out.append((v.outcome, v.reason))
        await asyncio.sleep(2.5)
        v = await verifier.verify(short)  # remembered, but not past its exp
        out.append((v.outcome, v.reason))
        kept = sign(keys, "rsa-1")
        await verifier.verify(kept)
        await verifier.verify(sign(keys, "rogue", header_kid="invented"))  # a fetch of the same set
        v = await verifier.verify(kept)  # its key did not change: still remembered
        out.append((v.outcome, v.reason))
        await asyncio.sleep(0.35)
        fetches = jwks_server.requests
        jwks_server.document = keys.jwks("rsa-2")  # rsa-1 leaves the set
        await asyncio.sleep(0.35)
        await verifier.verify(sign(keys, "rsa-2"))  # an unknown kid: the set is fetched again
        assert jwks_server.requests == fetches + 1
        v = await verifier.verify(kept)  # remembered, but signed by a key that is gone
        out.append((v.outcome, v.reason))
        return out

    got = asyncio.run(run())
    verifier.close()
    assert got == [
        (Outcome.ACCEPTED, "accepted"),
        (Outcome.ACCEPTED, "accepted before"),
        (Outcome.REFUSED, "expired"),
        (Outcome.ACCEPTED, "accepted before"),
        (Outcome.REFUSED, "unknown key id"),
    ]


@pytest.mark.slow
def test_refarch_serve_with_two_workers_takes_tokens_and_no_api_key(tiny_recommender, tracking_uri, jwks_server, keys):
    """The token settings reach every uvicorn worker through the environment; no API key is configured."""
    import os
    import signal
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if k not in ("REFARCH_API_KEYS", "REFARCH_API_KEY_FILE")}
    env.update(MLFLOW_TRACKING_URI=tracking_uri)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "refarch.cli", "serve", "--model", tiny_recommender["uri"], "--port", str(port)]
    cmd += ["--workers", "2", "--auth", "jwt", "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE]
    cmd += ["--jwt-jwks-url", jwks_server.url, "--jwt-scope", "Recommend.Read"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    good, scopeless = sign(keys), sign(keys, scp="User.Read")
    try:
        deadline, ready = time.monotonic() + 120, 0
        while time.monotonic() < deadline and ready < 4:  # both workers: several readies in a row
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            try:
                ready = ready + 1 if httpx.get(url + "/ready", timeout=2).status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            time.sleep(0.2)
        assert ready >= 4, "server not ready in 120 s"
        answers = [
            httpx.post(url + "/invocations", json={"inputs": [{"user_id": 1}]}, headers=h, timeout=10).status_code
            for h in [{"Authorization": f"Bearer {good}"}] * 6 + [{"Authorization": f"Bearer {scopeless}"}]
        ]
        assert answers == [200] * 6 + [403]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert "auth: jwt" in out
    assert good.split(".")[2] not in out and scopeless.split(".")[2] not in out
