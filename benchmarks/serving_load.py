"""Load test: `mlflow models serve` vs `refarch serve` on the same `recommender` model, with wrk.

Builds a MovieLens-1M-sized model (6,040 users, 3,706 items, rank 16 ALS-like factors,
top-10 lists with seen items removed) in a throw-away home, publishes the lists to the
SQLite serving store, logs the pyfunc, then for each server: start it with the same
number of uvicorn workers, warm up, run wrk (200 connections, 15 s by default) with a
request mix of known users (k=10), unknown users (popular fallback) and deep k=25
(computed from the factors), and print requests/s, p50, p99, errors and the ratio.

    .venv/bin/python benchmarks/serving_load.py [--duration 15] [--connections 200] [--workers 2]

Needs wrk (Debian: apt-get install -y wrk). Both servers are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("serving_load")
API_KEY = "benchmark-key-0123456789abcdef"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_model(home: Path, users: int, items: int, rank: int, seed: int = 7) -> str:
    """Publish lists for `users` users and log the pyfunc; return the model's local folder."""
    import mlflow

    from refarch.recommender.model import Factors, RecommenderModel
    from refarch.recommender.store import SqliteStore

    rng = np.random.default_rng(seed)
    user_ids = np.arange(1, users + 1)
    item_ids = np.arange(1, items + 1)
    uf = rng.normal(0, 0.5, (users, rank)).astype(np.float32)
    vf = rng.normal(0, 0.5, (items, rank)).astype(np.float32)
    pop = rng.zipf(1.3, size=users * 40) % items  # skewed like real ratings
    seen_users = np.repeat(user_ids, 40)
    seen_items = item_ids[pop]
    factors = Factors.build(user_ids, uf, item_ids, vf, seen_users, seen_items)
    factors_path = home / "factors.npz"
    factors.save(factors_path)

    def lists():
        for u in user_ids:
            top_items, top_scores = factors.top_k(int(u), 10)
            yield int(u), top_items, top_scores

    store_path = home / "serving.db"
    store = SqliteStore(store_path)
    counts = np.bincount(pop, minlength=items)
    popular = np.argsort(-counts)[:100]
    version = store.publish(lists(), item_ids[popular].tolist(), counts[popular].astype(float).tolist())
    store.close()
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    exp = mlflow.create_experiment("bench", artifact_location=(home / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(
            name="recommender",
            python_model=RecommenderModel({"kind": "sqlite", "path": str(store_path)}),
            artifacts={"factors": str(factors_path)},
            pip_requirements=["mlflow"],
        )
    local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(home / "model"))
    log.info("model with store version %s at %s", version, local)
    return local


def lua_script(path: Path, users: int, n_bodies: int = 500, seed: int = 11) -> None:
    """wrk cycles through pre-built requests: 85% known k=10, 10% unknown, 5% deep k=25."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(n_bodies):
        roll = rng.random()
        if roll < 0.85:
            one = {"user_id": rng.randint(1, users), "k": 10}
        elif roll < 0.95:
            one = {"user_id": users + rng.randint(1, 10**6), "k": 10}
        else:
            one = {"user_id": rng.randint(1, users), "k": 25}
        bodies.append(json.dumps({"inputs": [one]}))
    lua_bodies = ",\n".join("[[" + b + "]]" for b in bodies)
    path.write_text(
        f"""
local bodies = {{
{lua_bodies}
}}
local requests = {{}}
local i = 0
init = function(args)
  for n, b in ipairs(bodies) do
    requests[n] = wrk.format("POST", "/invocations",
      {{["Content-Type"] = "application/json", ["X-API-Key"] = "{API_KEY}"}}, b)
  end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""
    )


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group: it and its workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_TICK = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(sid: int) -> float:
    """CPU time (user + system) of every live process in session `sid`: a server and its workers."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the name: state ppid pgrp session utime(11) stime(12)
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def parse_wrk(text: str) -> dict[str, float]:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return float(m.group(1)) * _UNIT[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    http_errors = int(non2xx.group(1)) if non2xx else 0
    socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": http_errors + socket_errors,
        "http_errors": http_errors,
        "socket_errors": socket_errors,
    }


def run_wrk(url: str, script: Path, connections: int, duration: int, threads: int) -> dict[str, float]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    log.debug("%s", out)
    return parse_wrk(out)


def bench(
    name: str,
    cmd: list[str],
    ready_url: str,
    base_url: str,
    env: dict[str, str],
    script: Path,
    args: argparse.Namespace,
) -> dict[str, float]:
    log.info("starting %s: %s", name, " ".join(cmd))
    log_path = script.parent / f"{name.replace(' ', '_')}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_ready(ready_url, proc)
        except RuntimeError:
            log.error("%s failed to start:\n%s", name, log_path.read_text()[-3000:])
            raise
        run_wrk(base_url, script, args.connections, 3, args.wrk_threads)  # warm-up
        cpu_before = session_cpu_seconds(proc.pid)
        result = run_wrk(base_url, script, args.connections, args.duration, args.wrk_threads)
        cpu = session_cpu_seconds(proc.pid) - cpu_before
        # CPU per request is what contention on a shared machine does not distort
        result["cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
    finally:
        stop(proc)
    log.info("%s: %s", name, result)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument("--only", choices=["mlflow", "refarch"], default=None)
    parser.add_argument("--access-log", action="store_true", help="keep refarch's per-request log lines on")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if shutil.which("wrk") is None:
        log.error("wrk is not installed (apt-get install -y wrk)")
        return 2

    home = Path(tempfile.mkdtemp(prefix="refarch-bench-"))
    try:
        model = build_model(home, args.users, args.items, rank=16)
        script = home / "requests.lua"
        lua_script(script, args.users)
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow execs `uvicorn`
            "REFARCH_API_KEYS": API_KEY,
            "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        }
        results: dict[str, dict[str, float]] = {}
        if args.only in (None, "mlflow"):
            port = free_port()
            results["mlflow models serve"] = bench(
                "mlflow models serve",
                [
                    str(VENV_BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    model,
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-w",
                    str(args.workers),
                ],
                f"http://127.0.0.1:{port}/ping",
                f"http://127.0.0.1:{port}",
                env,
                script,
                args,
            )
        if args.only in (None, "refarch"):
            port = free_port()
            cmd = [
                str(VENV_BIN / "refarch"),
                "serve",
                "--model",
                model,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ]
            if not args.access_log:
                cmd.append("--no-access-log")
            results["refarch serve"] = bench(
                "refarch serve",
                cmd,
                f"http://127.0.0.1:{port}/ready",
                f"http://127.0.0.1:{port}",
                env,
                script,
                args,
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)

    header = (
        f"{'server':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'(http':>7}{'sock)':>7}"
        f"{'requests':>10}{'CPU us/req':>12}"
    )
    load = os.getloadavg()[0]
    lines = [
        f"wrk: {args.connections} connections, {args.duration} s, {args.workers} uvicorn workers, "
        f"{os.cpu_count()} cores (load generator included); load average {load:.1f} at the end",
        header,
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<22}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8.0f}"
            f"{r['http_errors']:>7.0f}{r['socket_errors']:>7.0f}{r['requests']:>10.0f}{r['cpu_us_per_request']:>12.0f}"
        )
    if len(results) == 2:
        a, b = results["mlflow models serve"], results["refarch serve"]
        lines.append(
            f"ratio refarch / mlflow: {b['rps'] / max(a['rps'], 1e-9):.1f}x requests/s, "
            f"{a['cpu_us_per_request'] / max(b['cpu_us_per_request'], 1e-9):.1f}x less CPU per request"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
