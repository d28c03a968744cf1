"""`refarch serve`: argument checks in-process, and a real two-worker server in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

KEY = "cli-key-0123456789abcdef"


def test_serve_without_keys_is_a_clear_error(monkeypatch, capsys):
    from refarch.cli import main

    monkeypatch.delenv("REFARCH_API_KEYS", raising=False)
    monkeypatch.delenv("REFARCH_API_KEY_FILE", raising=False)
    assert main(["serve", "--model", "models:/recommender@champion"]) == 2
    assert "no API key configured" in capsys.readouterr().err
    monkeypatch.setenv("REFARCH_API_KEYS", KEY)
    assert main(["serve", "--model", "m", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _requests_200(text: str) -> float:
    found = re.search(r'refarch_http_requests_total\{method="POST",route="/invocations",status="200"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_two_workers_share_metrics_and_stop_cleanly(tiny_recommender, tracking_uri):
    port = _free_port()
    env = {**os.environ, "REFARCH_API_KEYS": KEY, "MLFLOW_TRACKING_URI": tracking_uri}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [
        sys.executable,
        "-m",
        "refarch.cli",
        "serve",
        "--model",
        tiny_recommender["uri"],
        "--port",
        str(port),
        "--workers",
        "2",
        "--no-access-log",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready = 0
        while time.monotonic() < deadline and ready < 4:  # both workers loaded: several readies in a row
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            try:
                ready = ready + 1 if httpx.get(url + "/ready", timeout=2).status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            time.sleep(0.2)
        assert ready >= 4, "server not ready in 120 s"
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=10) as client:
            answers = []
            for _ in range(30):  # new connections, so both workers get some
                r = httpx.post(
                    url + "/invocations", json={"inputs": [{"user_id": 1, "k": 2}]}, headers={"X-API-Key": KEY}
                )
                answers.append(r.status_code)
            assert answers == [200] * 30
            # every scrape (whichever worker answers) sums the samples of both processes
            counts = {_requests_200(client.get("/metrics").text) for _ in range(6)}
            assert counts == {30.0}
            refused = httpx.post(
                url + "/invocations", json={"inputs": []}, headers={"X-API-Key": "wrong-" + KEY, "X-Request-ID": "r-1"}
            )
            assert (refused.status_code, refused.headers["x-request-id"]) == (401, "r-1")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out[-2000:]
    assert "Finished server process" in out
    assert KEY not in out
    # every worker logs JSON lines with time and level; the app's own INFO lines are there, with request ids
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    loaded = [line for line in lines if line["message"].startswith(f"model {tiny_recommender['uri']} loaded")]
    assert len(loaded) == 2 and all(line["level"] == "INFO" for line in loaded)
    (rejected,) = [line for line in lines if "missing or invalid API key" in line["message"]]
    assert rejected["request_id"] == "r-1"


def test_the_cli_works_without_the_serving_extra():
    """A job cluster installs the core wheel only: every command but serve must still run."""
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['prometheus_client'] = None; sys.modules['fastapi'] = None\n"
        "from refarch.cli import main\n"
        "assert main(['job', 'list']) == 0\n"
        "sys.exit(main(['serve', '--model', 'models:/x@champion']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "refarch serve needs the serving extra (prometheus_client is missing)" in done.stderr
