"""The scoring app over real HTTP: auth, validation errors, health, readiness, metrics, OpenAPI."""

from __future__ import annotations

import logging

import httpx
import pytest

from refarch.serving.app import create_app
from refarch.serving.auth import ApiKeys
from refarch.serving.settings import ServeSettings

KEY = "k3y-for-tests-0123456789"
OTHER = "second-key-abcdefghijklmnop"


@pytest.fixture(scope="module")
def server(tiny_recommender, server_thread):
    settings = ServeSettings(max_inputs=5, max_body_bytes=2000)
    app = create_app(tiny_recommender["uri"], api_keys=ApiKeys([KEY, OTHER]), settings=settings)
    with server_thread(app) as srv:
        yield srv


def post(server, body, key=KEY, **kw):
    headers = {"X-API-Key": key} if key else {}
    if isinstance(body, (bytes, str)):
        return httpx.post(server.url + "/invocations", content=body, headers=headers, timeout=10, **kw)
    return httpx.post(server.url + "/invocations", json=body, headers=headers, timeout=10, **kw)


def test_scores_a_batch(server, tiny_recommender):
    r = post(server, {"inputs": [{"user_id": 1, "k": 2}, {"user_id": 77, "k": 1}]})
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    assert [i["item_id"] for i in first["items"]] == [11, 10]
    assert (first["source"], first["fallback"], first["store_version"]) == (
        "precomputed",
        False,
        tiny_recommender["version"],
    )
    assert (second["source"], second["fallback"], second["items"]) == (
        "popular",
        True,
        [{"item_id": 13, "score": 30.0}],
    )


def test_bearer_token_and_second_key_work(server):
    r = httpx.post(
        server.url + "/invocations", json={"inputs": [{"user_id": 1}]}, headers={"Authorization": f"Bearer {OTHER}"}
    )
    assert r.status_code == 200


@pytest.mark.parametrize("key", [None, "wrong-key-wrong-key-wrong", KEY + "x", KEY[:-1]])
def test_missing_or_wrong_key_is_one_401(server, key):
    r = post(server, {"inputs": [{"user_id": 1}]}, key=key)
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "unauthorized", "message": "missing or invalid API key"}}


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        (b"{not json", "invalid_json", None),
        (b"", "invalid_json", None),
        (b"[1, 2]", "invalid_request", None),
        ({"instances": [{"user_id": 1}]}, "invalid_request", "inputs"),  # and: instances not allowed
        ({"inputs": []}, "invalid_request", "inputs"),
        ({"inputs": [{"user_id": 1}] * 6}, "invalid_request", "inputs"),
        ({"inputs": [{"user_id": "1"}]}, "invalid_request", "inputs.0.user_id"),
        ({"inputs": [{"user_id": 1.5}]}, "invalid_request", "inputs.0.user_id"),
        ({"inputs": [{"user_id": 1, "k": 0}]}, "invalid_request", "inputs.0.k"),
        ({"inputs": [{"user_id": 1, "k": 101}]}, "invalid_request", "inputs.0.k"),
        ({"inputs": [{"user_id": 1, "kk": 3}]}, "invalid_request", "inputs.0.kk"),
        ({"inputs": [{"k": 3}]}, "invalid_request", "inputs.0.user_id"),
        ({"inputs": {"user_id": 1}}, "invalid_request", "inputs"),
        ({"inputs": [{"user_id": 2**70}]}, "invalid_request", "inputs.0.user_id"),
    ],
)
def test_bad_input_is_a_400_with_a_json_body(server, body, code, where):
    r = post(server, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == code
    if where:
        assert error["message"].startswith(where + ":")


def test_integer_valued_numbers_are_integers(server):
    """JSON Schema's integer: 2.0 is one, 2.5 and "2" are not."""
    r = post(server, {"inputs": [{"user_id": 1.0, "k": 2.0}, {"user_id": 0.0, "k": 1}]})
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    assert (first["user_id"], first["k"], [i["item_id"] for i in first["items"]]) == (1, 2, [11, 10])
    assert (second["user_id"], second["fallback"]) == (0, True)
    for bad in ({"user_id": 1, "k": 2.5}, {"user_id": 1, "k": "2"}, {"user_id": 1, "k": 0.0}, {"user_id": 1e30}):
        r = post(server, {"inputs": [bad]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (bad, r.text)


def test_too_large_body_is_413(server):
    r = post(server, b'{"inputs": [' + b" " * 3000 + b"]}")
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"


def test_unknown_route_and_method_are_json_errors(server):
    r = httpx.get(server.url + "/nope")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = httpx.get(server.url + "/invocations")
    assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")


def test_health_ready_and_metrics(server):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    post(server, {"inputs": [{"user_id": 1}]})
    post(server, {"inputs": [{"user_id": 1, "k": 0}]})
    text = httpx.get(server.url + "/metrics").text
    assert 'refarch_http_requests_total{method="POST",route="/invocations",status="200"}' in text
    assert 'refarch_http_errors_total{route="/invocations",status="400"}' in text
    assert 'refarch_http_request_duration_seconds_bucket{le="0.05",route="/invocations"}' in text
    assert "refarch_predictions_total" in text


def test_openapi_describes_the_model_types(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    schemas = spec["components"]["schemas"]
    item = schemas["InvocationRequest"]["properties"]["inputs"]["items"]["$ref"].split("/")[-1]
    assert schemas[item]["properties"]["k"]["maximum"] == 100
    assert schemas[item]["additionalProperties"] is False
    post_op = spec["paths"]["/invocations"]["post"]
    assert post_op["security"] == [{"ApiKey": []}]
    assert {"200", "400", "401", "413", "503"} <= set(post_op["responses"])
    assert "Recommendation" in schemas


def test_request_logs_carry_no_key(server, caplog, monkeypatch):
    # uvicorn's own logging config (applied by any earlier server in this process) may have set the
    # access logger to WARNING and stopped its propagation: undo both for this test
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "propagate", True)
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="uvicorn.access"):
        post(server, {"inputs": [{"user_id": 1}]})
        post(server, {"inputs": [{"user_id": 1}]}, key="a-wrong-key-that-must-not-leak")
        httpx.post(
            server.url + "/invocations", json={"inputs": [{"user_id": 1}]}, headers={"Authorization": f"Bearer {OTHER}"}
        )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST /invocations" in text  # the access log is on
    assert "missing or invalid API key" in text
    for secret in (KEY, OTHER, "a-wrong-key-that-must-not-leak"):
        assert secret not in text


def test_store_outage_is_503_and_not_ready(tiny_recommender, tmp_path, server_thread, monkeypatch):
    # the container-style override points the same model at a store with nothing published
    monkeypatch.setenv("REFARCH_STORE_PATH", str(tmp_path / "empty.db"))
    with server_thread(create_app(tiny_recommender["uri"], api_keys=ApiKeys([KEY])), wait=False) as srv:
        r = srv.wait_for("/ready", lambda r: r.json()["status"] != "loading")
        assert (r.status_code, r.json()["status"]) == (503, "unavailable")
        assert "nothing published" in r.json()["reason"]
        assert httpx.get(srv.url + "/health").status_code == 200
        r = post(srv, {"inputs": [{"user_id": 1}]})
        assert r.status_code == 503
        assert r.json()["error"] == {"code": "unavailable", "message": "temporarily unavailable; retry shortly"}


def test_a_model_that_fails_to_load_fails_health(tmp_path, server_thread):
    app = create_app(str(tmp_path / "no-such-model"), api_keys=ApiKeys([KEY]))
    with server_thread(app, wait=False) as srv:
        r = srv.wait_for("/health", lambda r: r.status_code == 503)
        assert r.json()["status"] == "failed"
        assert httpx.get(srv.url + "/ready").json()["status"] == "failed"
        assert post(srv, {"inputs": [{"user_id": 1}]}).status_code == 503


def test_served_from_redis_and_a_redis_outage(tiny_recommender, redis_server, redis_client, server_thread, monkeypatch):
    """The same model, pointed at Redis by environment (as on AKS), answers from Redis lists."""
    import redis

    from refarch.recommender.store import RedisStore

    store = RedisStore(
        redis.Redis(host=redis_server["host"], port=redis_server["port"], password=redis_server["password"])
    )
    version = store.publish([(1, [44, 43, 42], [3.0, 2.0, 1.0])], [40], [9.0])
    for key, value in {
        "KIND": "redis",
        "HOST": redis_server["host"],
        "PORT": str(redis_server["port"]),
        "PASSWORD_ENV": "TEST_REDIS_PASSWORD",
    }.items():
        monkeypatch.setenv(f"REFARCH_STORE_{key}", value)
    monkeypatch.setenv("TEST_REDIS_PASSWORD", redis_server["password"])
    with server_thread(create_app(tiny_recommender["uri"], api_keys=ApiKeys([KEY]))) as srv:
        r = post(srv, {"inputs": [{"user_id": 1, "k": 2}, {"user_id": 5, "k": 1}]})
        known, unknown = r.json()["predictions"]
        assert ([i["item_id"] for i in known["items"]], known["store_version"]) == ([44, 43], version)
        assert (unknown["fallback"], unknown["items"]) == (True, [{"item_id": 40, "score": 9.0}])
    monkeypatch.setenv("REFARCH_STORE_PORT", "1")  # nothing listens there
    with server_thread(create_app(tiny_recommender["uri"], api_keys=ApiKeys([KEY])), wait=False) as srv:
        r = srv.wait_for("/ready", lambda r: r.json()["status"] != "loading")
        assert (r.status_code, r.json()) == (503, {"status": "unavailable", "reason": "store unreachable"})
        answers = [post(srv, {"inputs": [{"user_id": 1}]}) for _ in range(6)]
        assert [a.status_code for a in answers] == [503] * 6
        assert all(a.headers["retry-after"] == "1" for a in answers)
        # five failures opened the circuit: /ready says so at once, and still names no host or port
        r = httpx.get(srv.url + "/ready")
        assert (r.status_code, r.json()["status"]) == (503, "unavailable")
        assert redis_server["host"] not in r.text and ":1" not in r.text
    store.close()
