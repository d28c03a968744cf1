"""Connection and request limits, over raw sockets: what a slow, idle, greedy or unauthenticated client gets.

Each test opens its own connection and reads until the server closes it (or a deadline the
server should have beaten passes), so a limit that does not hold fails on time, not by hanging.
"""

from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest

from refarch.serving.app import create_app
from refarch.serving.auth import ApiKeys
from refarch.serving.settings import ConnectionLimits, ServeSettings

KEY = "limits-key-0123456789abcdef"
LIMITS = ConnectionLimits(
    max_connections=12, head_timeout_s=0.5, body_timeout_s=1.0, max_header_bytes=2048, max_headers=20
)


@pytest.fixture(scope="module")
def server(tiny_recommender, server_thread):
    settings = ServeSettings(limits=LIMITS)
    with server_thread(create_app(tiny_recommender["uri"], api_keys=ApiKeys([KEY]), settings=settings)) as srv:
        yield srv


def exchange(server, data: bytes = b"", wait: float = 4.0) -> tuple[int | None, dict[str, str], bytes, float, bool]:
    """Send `data`, read until the server closes (or `wait` s): status, headers, body, seconds, closed."""
    started = time.monotonic()
    raw, closed = b"", False
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as s:
        if data:
            s.sendall(data)
        try:
            while chunk := s.recv(65536):
                raw += chunk
            closed = True
        except (TimeoutError, ConnectionResetError):
            pass
    seconds = time.monotonic() - started
    if not raw:
        return None, {}, b"", seconds, closed
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body, seconds, closed


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


def request(body: bytes = b"", *extra: str, key: str | None = KEY, length: int | None = None) -> bytes:
    lines = ["POST /invocations HTTP/1.1", "Host: test", "Content-Type: application/json"]
    if key:
        lines.append(f"X-API-Key: {key}")
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(server):
    status, _, body, seconds, closed = exchange(server)
    assert (status, error_code(body), closed) == (408, "head_timeout", True)
    assert LIMITS.head_timeout_s <= seconds < LIMITS.head_timeout_s + 1.0


def test_a_limit_is_logged_once_per_worker(server, caplog, monkeypatch):
    from refarch.serving import logs

    monkeypatch.setattr(logs, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="refarch.serving.protocol"):
        for _ in range(3):
            assert exchange(server, b"NOT HTTP\r\n\r\n")[0] == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "refarch.serving.protocol"]
    assert len(lines) == 1 and "bad_request" in lines[0] and "logged once per worker" in lines[0], lines


def test_headers_sent_slowly_are_cut_off(server):
    status, _, body, seconds, closed = exchange(server, b"POST /invocations HTTP/1.1\r\nHost: test\r\n")
    assert (status, error_code(body), closed) == (408, "head_timeout", True)
    assert seconds < LIMITS.head_timeout_s + 1.0


def test_a_body_sent_slowly_is_cut_off(server):
    status, _, body, seconds, closed = exchange(server, request(b'{"inputs": [', length=100))
    assert (status, error_code(body), closed) == (408, "body_timeout", True)
    assert LIMITS.body_timeout_s <= seconds < LIMITS.body_timeout_s + 1.0


def test_a_request_without_a_key_is_refused_before_its_body_is_read(server):
    # 500 kB announced, nothing sent: the 401 must come at once, not after waiting for the body
    status, headers, body, seconds, closed = exchange(server, request(key=None, length=500_000))
    assert (status, error_code(body), closed) == (401, "unauthorized", True)
    assert headers["connection"] == "close"
    assert seconds < LIMITS.body_timeout_s / 2
    # with a key the same request waits for its body (and gets the body timeout): the body is read only then
    status, _, body, seconds, _ = exchange(server, request(length=500_000))
    assert (status, error_code(body)) == (408, "body_timeout")


def test_too_many_headers_is_a_431(server):
    extra = [f"X-Filler-{i}: {i}" for i in range(LIMITS.max_headers)]
    status, _, body, _, closed = exchange(server, request(b'{"inputs": [{"user_id": 1}]}', *extra))
    assert (status, error_code(body), closed) == (431, "too_many_headers", True)


def test_headers_over_the_byte_cap_are_a_431(server):
    status, _, body, _, closed = exchange(server, request(b"{}", "X-Filler: " + "a" * LIMITS.max_header_bytes))
    assert (status, error_code(body), closed) == (431, "header_too_large", True)
    # one endless header line, never finished: refused while it is still being buffered
    endless = b"POST /invocations HTTP/1.1\r\nX-Filler: " + b"a" * (LIMITS.max_header_bytes * 4)
    status, _, body, seconds, closed = exchange(server, endless)
    assert (status, error_code(body), closed) == (431, "header_too_large", True)
    assert seconds < LIMITS.head_timeout_s


def test_a_long_url_is_a_431(server):
    status, _, body, _, _ = exchange(server, b"GET /health?" + b"q" * LIMITS.max_header_bytes + b" HTTP/1.1\r\n\r\n")
    assert (status, error_code(body)) == (431, "header_too_large")


def test_connections_over_the_cap_are_refused_at_once(server):
    idle = []
    try:
        for _ in range(LIMITS.max_connections):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.1)  # the server accepts them
        status, _, body, seconds, closed = exchange(server)
        assert (status, error_code(body), closed) == (503, "too_many_connections", True)
        assert seconds < LIMITS.head_timeout_s
    finally:
        for s in idle:
            s.close()
    time.sleep(0.1)
    assert httpx.get(server.url + "/health").status_code == 200  # freed slots serve again


def test_a_malformed_request_gets_the_json_400(server):
    status, headers, body, _, closed = exchange(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert (status, error_code(body), closed) == (400, "bad_request", True)
    assert headers["content-type"] == "application/json"


def test_405_names_the_allowed_methods(server):
    r = httpx.get(server.url + "/invocations")
    assert (r.status_code, r.headers["allow"], r.json()["error"]["code"]) == (405, "POST", "method_not_allowed")
    r = httpx.post(server.url + "/health")
    assert (r.status_code, r.headers["allow"], r.json()["error"]["code"]) == (405, "GET", "method_not_allowed")


def test_trailing_whitespace_around_the_key_is_ignored(server):
    status, _, body, _, _ = exchange(server, request(b'{"inputs": [{"user_id": 1, "k": 1}]}', key=KEY + " \t"))
    assert status == 200, body


def test_a_key_in_the_url_never_reaches_the_log(server, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "propagate", True)
    secret = "sk-url-secret-0123456789"
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="uvicorn.access"):
        httpx.post(
            server.url + f"/invocations?api_key={secret}&user=bob",
            json={"inputs": [{"user_id": 1}]},
            headers={"X-API-Key": KEY},
        )
        httpx.get(server.url + f"/nope;token={secret}")
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("uvicorn", "refarch")))
    assert "/invocations?api_key=[redacted]&user=[redacted]" in text
    assert "/nope%3Btoken%3D[redacted]" in text  # uvicorn logs the path percent-encoded
    assert secret not in text and "bob" not in text


def test_every_answer_carries_a_request_id(server):
    mine = httpx.post(server.url + "/invocations", json={"inputs": [{"user_id": 1}]}, headers={"X-API-Key": KEY})
    theirs = httpx.get(server.url + "/health", headers={"X-Request-ID": "ingress-abc-123"})
    made_up = httpx.get(server.url + "/health", headers={"X-Request-ID": "not ok " + "x" * 100})
    assert mine.headers["x-request-id"] and theirs.headers["x-request-id"] == "ingress-abc-123"
    assert made_up.headers["x-request-id"] != "not ok" and len(made_up.headers["x-request-id"]) <= 64


def test_a_huge_unknown_field_name_is_not_echoed_back(server):
    name = "x" * 500_000
    r = httpx.post(
        server.url + "/invocations", json={"inputs": [{"user_id": 1, name: 1}]}, headers={"X-API-Key": KEY}, timeout=10
    )
    assert r.status_code == 400 and len(r.content) < 2000, len(r.content)
    (detail,) = r.json()["error"]["details"]
    assert detail["loc"] == ["inputs", 0, "x" * 64 + "...(500000 characters)"]
