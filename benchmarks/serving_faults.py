"""Fault benchmark: `refarch serve` under load while its Redis store is killed (SIGKILL) or frozen (SIGSTOP).

Publishes a small recommender's lists to a throw-away redis-server on a free loopback port,
saves the pyfunc pointed at it, starts `refarch serve`, and loads it with a closed loop of
keep-alive connections (an asyncio client in this process) while a probe asks `/health`
every 10 ms. For each scenario:

- kill: Redis is killed with SIGKILL mid-load, restarted after the outage from its last
  snapshot (as a failover would bring a replica), and "back" once it answers PING;
- stop: Redis is frozen with SIGSTOP (a hung host: connections stay open, nothing answers),
  and "back" at SIGCONT.

Printed per scenario: time from the fault to the first 503, request p99 and /health p99 (and
max) of those in flight during the outage, time from Redis being back until service is
restored (the first answer that opens 0.2 s of nothing but 200s), and how many requests failed
after that (isolated timeouts on a busy machine).
Targets (issue 15): first 503 <= 0.5 s, /health p99 < 50 ms, recovery <= 1 s.

    .venv/bin/python benchmarks/serving_faults.py [--workers 2] [--connections 16] [--outage 3] [--json]

Run it against another checkout's code with PYTHONPATH=<checkout>/src (flags the server lacks
are not passed unless given with --server-arg). Needs redis-server (Debian: redis-server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _servers import stop

from refarch.runtime.blob import free_port

log = logging.getLogger("serving_faults")
API_KEY = "fault-benchmark-key-0123456789"
REDIS_PASSWORD = "fault-benchmark-redis-secret"
VENV_BIN = Path(sys.executable).parent
TARGETS = {"first_503_s": 0.5, "health_p99_ms": 50.0, "recovery_s": 1.0}


class Redis:
    """A redis-server this script owns: killed, frozen, restarted from its snapshot."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
        self.port = free_port()
        self.cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.cmd += ["--requirepass", REDIS_PASSWORD, "--dir", str(folder), "--dbfilename", "dump.rdb"]
        self.proc: subprocess.Popen | None = None

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=REDIS_PASSWORD, socket_timeout=2)

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        with self.client() as c:
            while True:
                try:
                    c.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start within 10 s") from None
                    time.sleep(0.01)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=10)

    def stop_for_good(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)


def build_model(home: Path, redis: Redis, users: int = 2000, items: int = 500, rank: int = 8) -> Path:
    """Publish top-10 lists to Redis (and snapshot them), save the pyfunc; return its folder."""
    import mlflow

    from refarch.recommender.model import Factors, RecommenderModel
    from refarch.recommender.store import RedisStore

    rng = np.random.default_rng(5)
    user_ids, item_ids = np.arange(1, users + 1), np.arange(1, items + 1)
    seen_items = item_ids[rng.integers(0, items, users * 10)]
    factors = Factors.build(
        user_ids,
        rng.normal(0, 0.5, (users, rank)),
        item_ids,
        rng.normal(0, 0.5, (items, rank)),
        np.repeat(user_ids, 10),
        seen_items,
    )
    factors.save(home / "factors.npz")
    with redis.client() as client:
        store = RedisStore(client)
        lists = ((int(u), *factors.top_k(int(u), 10)) for u in user_ids)
        store.publish(lists, item_ids[:50].tolist(), [float(50 - i) for i in range(50)])
        client.save()  # the snapshot a restarted server loads
    model_dir = home / "model"
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=RecommenderModel({"kind": "redis", "host": "127.0.0.1", "port": redis.port}),
        artifacts={"factors": str(home / "factors.npz")},
        pip_requirements=["mlflow"],
    )
    return model_dir


@dataclass
class Trace:
    """(sent, answered, status) of every request and every /health probe; status None: connection error."""

    requests: list[tuple[float, float, int | None]] = field(default_factory=list)
    health: list[tuple[float, float, int | None]] = field(default_factory=list)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
    """One request on an open connection: (status, server asked to close)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers.get("connection", "").strip() == "close"


async def _client(port: int, request: bytes, until: float, out: list, pause: float = 0.0) -> None:
    """A closed loop of requests on one keep-alive connection (reconnecting when closed)."""
    conn = None
    while time.monotonic() < until:
        sent = time.monotonic()
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            status, close = await asyncio.wait_for(_exchange(*conn, request), 10)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            status, close = None, True
        out.append((sent, time.monotonic(), status))
        if close and conn is not None:
            conn[1].close()
            conn = None
        if pause:
            await asyncio.sleep(pause)
    if conn is not None:
        conn[1].close()


def _post(user_id: int) -> bytes:
    body = json.dumps({"inputs": [{"user_id": user_id, "k": 10}]}).encode()
    head = f"POST /invocations HTTP/1.1\r\nHost: bench\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


async def _wait_for_ping(redis: Redis) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=redis.port, password=REDIS_PASSWORD, socket_timeout=0.2)
    try:
        while True:
            try:
                await client.ping()
                return
            except Exception:
                await asyncio.sleep(0.005)
    finally:
        await client.aclose()


async def run_scenario(name: str, port: int, redis: Redis, args: argparse.Namespace) -> dict[str, float]:
    trace = Trace()
    until = time.monotonic() + args.warmup + args.outage + args.after
    clients = [
        asyncio.create_task(_client(port, _post(1 + i * 37 % 1900), until, trace.requests, pause=args.pause))
        for i in range(args.connections)
    ]
    health = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
    clients.append(asyncio.create_task(_client(port, health, until, trace.health, pause=0.01)))
    await asyncio.sleep(args.warmup)
    fault = time.monotonic()
    if name == "kill":
        await asyncio.to_thread(redis.signal, signal.SIGKILL)
        await asyncio.sleep(args.outage)
        redis.proc = await asyncio.to_thread(
            subprocess.Popen, redis.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await _wait_for_ping(redis)
    else:
        redis.signal(signal.SIGSTOP)
        await asyncio.sleep(args.outage)
        redis.signal(signal.SIGCONT)
    back = time.monotonic()
    await asyncio.gather(*clients)
    return summarize(trace, fault, back)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def _restored(requests: list[tuple[float, float, int | None]], back: float, stretch: float = 0.2) -> float:
    """When service came back: the first answer after `back` that opens `stretch` seconds of nothing but 200s."""
    answers = sorted((e, st) for s, e, st in requests if s >= back)
    bad = [e for e, st in answers if st != 200]
    j = 0
    for e, st in answers:
        while j < len(bad) and bad[j] < e:
            j += 1
        if st == 200 and (j == len(bad) or bad[j] > e + stretch) and answers[-1][0] >= e + stretch:
            return e
    return float("nan")


def summarize(trace: Trace, fault: float, back: float) -> dict[str, float]:
    # in flight at some time during the outage: a request stuck across all of it counts too
    during = [(s, e, st) for s, e, st in trace.requests if s < back and e > fault]
    health = [(s, e, st) for s, e, st in trace.health if s < back and e > fault]
    first_503 = min((e for _, e, st in trace.requests if st == 503 and e >= fault), default=float("nan"))
    restored = _restored(trace.requests, back)
    return {
        "first_503_s": first_503 - fault,
        "request_p99_ms": _pct([e - s for s, e, _ in during], 99),
        "request_max_ms": _pct([e - s for s, e, _ in during], 100),
        "health_p99_ms": _pct([e - s for s, e, _ in health], 99),
        "health_max_ms": _pct([e - s for s, e, _ in health], 100),
        "health_failed": sum(1 for _, _, st in health if st != 200),
        "recovery_s": restored - back,
        "failed_after_recovery": sum(1 for _, e, st in trace.requests if e > restored and st != 200),
        "requests_during": len(during),
        "ok_during": sum(1 for _, _, st in during if st == 200),
        "503_during": sum(1 for _, _, st in during if st == 503),
        "errors_during": sum(1 for _, _, st in during if st is None),
        "outage_s": back - fault,
    }


def start_server(model_dir: Path, redis: Redis, args: argparse.Namespace, log_path: Path) -> subprocess.Popen:
    port = free_port()
    env = {
        **os.environ,
        "REFARCH_API_KEYS": API_KEY,
        "REFARCH_STORE_KIND": "redis",
        "REFARCH_STORE_HOST": "127.0.0.1",
        "REFARCH_STORE_PORT": str(redis.port),
        "REFARCH_STORE_PASSWORD_ENV": "FAULT_BENCH_REDIS_PASSWORD",
        "FAULT_BENCH_REDIS_PASSWORD": REDIS_PASSWORD,
    }
    cmd = [str(VENV_BIN / "refarch"), "serve", "--model", str(model_dir), "--port", str(port)]
    cmd += ["--workers", str(args.workers), "--no-access-log", *args.server_arg]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    import httpx

    deadline, ready = time.monotonic() + 120, 0
    while ready < 2 * args.workers:  # several readies in a row: every worker loaded
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not become ready:\n{log_path.read_text()[-3000:]}")
        try:
            ready = ready + 1 if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200 else 0
        except httpx.TransportError:
            ready = 0
        time.sleep(0.2)
    proc.port = port  # type: ignore[attr-defined]
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="kill,stop", help="comma-separated: kill, stop")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--pause", type=float, default=0.0, help="seconds each connection waits between requests (0: closed loop)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the fault")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds Redis stays down")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of load after Redis is back")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `refarch serve` argument")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--server-log", type=Path, default=None, help="keep the server's log in this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    home = Path(tempfile.mkdtemp(prefix="refarch-faults-"))
    redis = Redis(home)
    results: dict[str, dict[str, float]] = {}
    try:
        redis.start()
        model_dir = build_model(home, redis)
        server = start_server(model_dir, redis, args, home / "server.log")
        try:
            for name in args.scenarios.split(","):
                log.info("scenario %s: %.1f s of load, Redis down for %.1f s", name, args.warmup, args.outage)
                results[name] = asyncio.run(run_scenario(name, server.port, redis, args))  # type: ignore[attr-defined]
                log.info("%s: %s", name, results[name])
        finally:
            stop([server])
            if args.server_log:
                shutil.copy(home / "server.log", args.server_log)
    finally:
        redis.stop_for_good()
        shutil.rmtree(home, ignore_errors=True)

    if args.json:
        sys.stdout.write(json.dumps(results) + "\n")
        return 0
    load = os.getloadavg()[0]
    lines = [
        f"{args.connections} connections, {args.workers} uvicorn workers, Redis down {args.outage:g} s, "
        f"{os.cpu_count()} cores (client included); load average {load:.1f} at the end",
        f"{'scenario':<10}{'first 503 s':>12}{'req p99 ms':>12}{'/health p99 ms':>16}{'(max)':>8}"
        f"{'recovery s':>12}{'requests':>10}{'200':>7}{'503':>7}{'errors':>8}{'failed after':>14}",
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<10}{r['first_503_s']:>12.3f}{r['request_p99_ms']:>12.1f}{r['health_p99_ms']:>16.1f}"
            f"{r['health_max_ms']:>8.1f}{r['recovery_s']:>12.3f}{r['requests_during']:>10.0f}"
            f"{r['ok_during']:>7.0f}{r['503_during']:>7.0f}{r['errors_during']:>8.0f}{r['failed_after_recovery']:>14.0f}"
        )
    lines.append(
        "targets: first 503 <= 0.5 s, /health p99 < 50 ms, recovery <= 1 s; requests, 200, 503, errors: in flight "
        "during the outage; failed after: non-200 answers after recovery"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
