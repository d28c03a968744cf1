"""`refarch serve` for R models over real HTTP: predictions, 400s naming the field before R runs, free health checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import mlflow
import pytest

from refarch.runtime.blob import free_port
from refarch.serving.app import create_app
from refarch.serving.auth import ApiKeys

from .conftest import KEY, ROW_COLUMNS


def _rows(test, n):
    return test[ROW_COLUMNS].head(n).to_dict(orient="records")


def _predictor(app):
    return app.state.refarch.model.pyfunc.unwrap_python_model().predictor


def test_predictions_and_field_errors_over_http(tiny_model, tiny_ranger, server_thread):
    app = create_app(tiny_model["registered"], api_keys=ApiKeys([KEY]))
    test = tiny_ranger["test"]
    with server_thread(app) as srv:
        post = lambda body, **kw: httpx.post(srv.url + "/invocations", json=body, headers={"X-API-Key": KEY}, **kw)  # noqa: E731
        r = post({"inputs": _rows(test, 7)})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == pytest.approx(test["expected"].head(7).tolist(), rel=1e-12)  # one per row
        predictor = _predictor(app)
        calls = predictor.calls
        good = _rows(test, 1)[0]
        for change, where in (
            ({"cut": "Perfect"}, "inputs.0.cut"),
            ({"carat": 9.0}, "inputs.0.carat"),
            ({"carat": "heavy"}, "inputs.0.carat"),
            ({"colour": "E"}, "inputs.0.colour"),
        ):
            bad = post({"inputs": [good, {**good, **change}]})
            assert bad.status_code == 400, bad.text
            assert bad.json()["error"]["message"].startswith(where.replace("0", "1") + ":"), bad.text
        missing = {k: v for k, v in good.items() if k != "z"}
        assert post({"inputs": [missing]}).json()["error"]["message"].startswith("inputs.0.z: Field required")
        assert predictor.calls == calls, "R ran for a request that was rejected"
        assert httpx.post(srv.url + "/invocations", json={"inputs": [good]}).status_code == 401
        schema = httpx.get(srv.url + "/openapi.json").json()["components"]["schemas"]
        assert schema["RModelInput"]["properties"]["cut"]["enum"] == ["Fair", "Good", "Very Good", "Premium", "Ideal"]
        assert schema["InvocationResponse"]["properties"]["predictions"]["items"] == {"type": "number"}


def test_a_slow_r_call_blocks_no_health_check(picky_rds, embedded_picky, tracking, server_thread, tmp_path):
    """predict.picky sleeps 2 s for x = 99: meanwhile /health and /ready answer at once."""
    import pandas as pd

    from refarch.rmodel.model import save_r_model
    from refarch.rmodel.settings import NumberColumn

    path = save_r_model(
        tmp_path / "picky",
        picky_rds,
        [NumberColumn(name="x", type="number", min=-10, max=100, help="")],
        r_packages={},
        predict_args={},
        max_combined_rows=100,
        example=pd.DataFrame({"x": [1.0]}),
    )
    with server_thread(create_app(str(path), api_keys=ApiKeys([KEY]))) as srv:
        answer: dict = {}

        def slow() -> None:
            answer["r"] = httpx.post(
                srv.url + "/invocations", json={"inputs": [{"x": 99}]}, headers={"X-API-Key": KEY}, timeout=30
            )

        thread = threading.Thread(target=slow)
        started = time.monotonic()
        thread.start()
        time.sleep(0.3)
        probes = []
        for path_ in ("/health", "/ready", "/health", "/metrics"):
            t = time.monotonic()
            assert httpx.get(srv.url + path_, timeout=5).status_code == 200
            probes.append(time.monotonic() - t)
        assert time.monotonic() - started < 1.8, "the probes waited for R"
        assert max(probes) < 0.5, probes
        thread.join(timeout=30)
        assert answer["r"].status_code == 200 and answer["r"].json() == {"predictions": [198.0]}


@pytest.mark.slow
def test_refarch_serve_gives_one_r_per_core_for_the_champion(tiny_model, tiny_ranger, tracking):
    """`refarch serve --model models:/rmodel_tiny@champion` in a subprocess, workers left to their default."""
    from refarch.serving.workers import cpu_count

    port = free_port()
    env = {**os.environ, "REFARCH_API_KEYS": KEY, "MLFLOW_TRACKING_URI": tracking}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "refarch.cli", "serve", "--model", tiny_model["registered"], "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, ready = time.monotonic() + 180, 0
        while time.monotonic() < deadline and ready < 4:  # every worker loaded: several readies in a row
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            try:
                ready = ready + 1 if httpx.get(url + "/ready", timeout=2).status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            time.sleep(0.3)
        assert ready >= 4, "server not ready in 180 s"
        test = tiny_ranger["test"]
        for _ in range(10):  # new connections: every worker gets some
            r = httpx.post(url + "/invocations", json={"inputs": _rows(test, 3)}, headers={"X-API-Key": KEY})
            assert r.status_code == 200
            assert r.json()["predictions"] == pytest.approx(test["expected"].head(3).tolist(), rel=1e-12)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode()
    assert f"with {cpu_count()} worker(s)" in out
    assert proc.returncode == 0, out[-3000:]
    assert KEY not in out
    assert mlflow.get_tracking_uri()  # the test's own MLflow is untouched
