"""Load test: `mlflow models serve` vs `refarch serve` on the same `recommender` model.

Builds a MovieLens-1M-sized model (6,040 users, 3,706 items, rank 16 ALS-like factors,
top-10 lists with seen items removed) in a throw-away home, publishes the lists to the
SQLite serving store, logs the pyfunc, then for each server (same number of uvicorn workers):

1. saturation, closed loop: wrk with 200 connections for 15 s, each connection sending its next
   request as soon as the last is answered; requests/s, p50, p99, CPU per request;
2. latency at fixed rates, open loop: 1,000, 4,000 and 8,000 requests/s (the rates a server
   sustains: for mlflow, those up to 80 % of its saturation, plus 25, 50 and 80 % of it),
   each for 15 s after 2 s of warm-up; p50, p99 and p99.9.

The open-loop generator is this script's own (wrk2 is not in Debian): `--gen-procs` processes,
each with its share of `--gen-connections` keep-alive connections on an asyncio (uvloop) loop.
Every connection has its own schedule, one request every connections/rate seconds, whether the
server kept up or not. A request's latency is its time in the server plus the time it waited,
after it was due, for the previous answer on its connection: a server that falls behind is
charged for the requests queued behind a slow one (no coordinated omission, as in wrk2). What
is not charged is the generator's own lateness, how late it sent a request whose connection was
free (its event loop busy, timers of about 1 ms): that lag is reported apart, with the rate of
answers achieved. `--check-generator` (or `--only generator`) runs the generator alone against
a trivial asyncio server at the same rates, to show what it can do on this machine.

The request mix: known users (k=10), unknown users (popular fallback) and deep k=25 (computed
from the factors). The tables are printed, and saved with a latency-against-load plot in
`--out` (default .refarch/benchmarks/serving_load.txt and .png).

    .venv/bin/python benchmarks/serving_load.py [--duration 15] [--rates 1000,4000,8000] [--workers 2]

Needs wrk (Debian: apt-get install -y wrk) for the saturation figure. Both servers are stopped at
the end. The machine's cores are shared by the load generators and the servers: the load
average at the end of each run is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _servers import session_cpu_seconds, stop, wait_ready, wrk_script

from refarch.runtime.blob import free_port

log = logging.getLogger("serving_load")
API_KEY = "benchmark-key-0123456789abcdef"
VENV_BIN = Path(sys.executable).parent


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


def request_bodies(users: int, n_bodies: int = 500, seed: int = 11) -> list[str]:
    """The request mix: 85% known users k=10, 10% unknown users, 5% deep k=25."""
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
    return bodies


def raw_requests(users: int) -> list[bytes]:
    """The same mix as whole HTTP/1.1 requests, for the open-loop generator."""
    head = "POST /invocations HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    head += f"X-API-Key: {API_KEY}\r\n"
    return [f"{head}Content-Length: {len(b)}\r\n\r\n{b}".encode() for b in request_bodies(users)]


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


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


# ---- open loop: fixed rates ------------------------------------------------------------

WARMUP_S = 2.0
GRACE_S = 10.0  # after the last due time: answers still awaited; what is not sent by then is dropped


def _whole_message(buffer: bytearray) -> tuple[bytes, int] | None:
    """The lower-cased head and the size of the first whole HTTP/1.1 message in `buffer`, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    at = head.find(b"content-length:")
    length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
    return (head, end + 4 + length) if len(buffer) >= end + 4 + length else None


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: `exchange(request)` is a future of (status, server closes)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        message = _whole_message(self.buffer)
        if message is None:
            return
        head, size = message
        del self.buffer[:size]
        self.waiter.set_result((int(head[9:12]), b"connection: close" in head))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def exchange(self, request: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self.waiter


async def _open_loop(
    port: int, requests: list[bytes], rate: float, first: int, mine: int, total: int, start_wall: float, seconds: float
) -> dict[str, np.ndarray]:
    """Connections `first..first+mine-1` of `total`, each due every total/rate s; every request recorded as
    (due time, latency, status or 0 for a transport error, the generator's own lag)."""
    loop = asyncio.get_running_loop()

    async def connect() -> _Connection:
        return (await loop.create_connection(_Connection, "127.0.0.1", port))[1]

    conns = [await connect() for _ in range(mine)]
    clock = time.perf_counter  # uvloop's loop time ticks in whole milliseconds
    start = clock() + (start_wall - time.time())  # the processes agree on a wall-clock start
    interval = total / rate
    end, give_up = start + seconds, start + seconds + GRACE_S
    due_at, latency, status, lag = [], [], [], []

    async def run(slot: int) -> None:
        number = first + slot
        conn, due, free_at, k = conns[slot], start + interval * number / total, clock(), number
        while due < end and clock() < give_up:
            wait = due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            sent = clock()
            code = 0
            try:
                if conn.closed:
                    conn = await connect()
                code, close = await asyncio.wait_for(conn.exchange(requests[k % len(requests)]), give_up - sent)
                if close:
                    conn.transport.close()  # type: ignore[union-attr]
            except (OSError, ConnectionError, asyncio.TimeoutError):
                conn.closed = True
            done = clock()
            due_at.append(due - start)
            # its own time in the server, plus the time it was held behind the previous answer on its
            # connection: the wait a user arriving when it was due would see, less the generator's lateness
            latency.append((done - sent) + max(0.0, free_at - due))
            status.append(code)
            lag.append(max(0.0, sent - max(due, free_at)))
            free_at, due, k = done, due + interval, k + total

    await asyncio.gather(*(run(i) for i in range(mine)))
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return {
        "due": np.array(due_at),
        "latency": np.array(latency),
        "status": np.array(status, dtype=np.int32),
        "lag": np.array(lag),
    }


def _generator_process(out: Any, *args: Any) -> None:
    try:
        import uvloop

        result = uvloop.run(_open_loop(*args))
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        result = asyncio.run(_open_loop(*args))
    out.send(result)
    out.close()


def open_loop(port: int, requests: list[bytes], rate: float, seconds: float, args: argparse.Namespace) -> dict:
    """Load `port` at `rate` requests/s for WARMUP_S + `seconds`; figures of the last `seconds`."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    procs, total = args.gen_procs, args.gen_connections
    start_wall = time.time() + 1.0 + total / 200  # time to open the connections first
    pipes, workers = [], []
    for p in range(procs):
        first, mine = p * total // procs, (p + 1) * total // procs - p * total // procs
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(
            target=_generator_process,
            args=(send, port, requests, rate, first, mine, total, start_wall, WARMUP_S + seconds),
        )
        worker.start()
        pipes.append(receive)
        workers.append(worker)
    parts = [pipe.recv() for pipe in pipes]
    for worker in workers:
        worker.join(timeout=30)
    merged = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    return summarize(merged, rate, seconds)


def summarize(r: dict[str, np.ndarray], rate: float, seconds: float) -> dict[str, float]:
    """Percentiles of the answers to requests due after the warm-up; throughput in the measured window."""
    measured = r["due"] >= WARMUP_S
    ok = measured & (r["status"] == 200)
    finished = r["due"] + r["latency"]
    in_window = (finished >= WARMUP_S) & (finished < WARMUP_S + seconds) & (r["status"] == 200)
    lat_ms = r["latency"][ok] * 1e3
    lag_ms = r["lag"][measured] * 1e3
    scheduled = rate * seconds

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else float("nan")

    return {
        "rate": rate,
        "achieved": float(in_window.sum() / seconds),
        "sent_share": float(measured.sum() / scheduled),
        "p50_ms": pct(lat_ms, 50),
        "p99_ms": pct(lat_ms, 99),
        "p999_ms": pct(lat_ms, 99.9),
        "errors": int((measured & (r["status"] != 200)).sum()),
        "lag_p50_ms": pct(lag_ms, 50),
        "lag_p99_ms": pct(lag_ms, 99),
        "requests": int(measured.sum()),
    }


def _trivial_server(port: int, ready: Any) -> None:
    """An HTTP/1.1 server answering every request at once with a fixed 200 (the generator's own check)."""
    import uvloop

    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = bytearray()

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (message := _whole_message(self.buffer)) is not None:
                del self.buffer[: message[1]]
                self.transport.write(answer)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port, backlog=4096)
        ready.set()
        await server.serve_forever()

    uvloop.run(main())


def check_generator(args: argparse.Namespace, rates: list[float]) -> dict[str, dict[str, float]]:
    """The generator against a server that costs (almost) nothing: what it sustains here."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    port = free_port()
    ready = context.Event()
    server = context.Process(target=_trivial_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    requests = raw_requests(args.users)
    try:
        results = {}
        for rate in rates:
            results[f"{rate:.0f}"] = r = open_loop(port, requests, rate, args.rate_duration, args)
            r["load"] = os.getloadavg()[0]
            log.info("generator check at %.0f req/s: %s", rate, r)
        return results
    finally:
        server.terminate()
        server.join(timeout=10)


def fixed_rates(name: str, saturation: float, args: argparse.Namespace) -> list[float]:
    """The open-loop rates for a server: all asked for refarch; for mlflow those it can sustain."""
    if name == "refarch serve":
        return list(args.rates)
    own = [round(saturation * f, -1) for f in (0.25, 0.5, 0.8)]
    return sorted({r for r in args.rates if r <= 0.8 * saturation} | {r for r in own if r >= 10})


def bench(
    name: str,
    cmd: list[str],
    ready_url: str,
    base_url: str,
    env: dict[str, str],
    script: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Saturation (wrk, closed loop), then the fixed rates (open loop), on one server process."""
    log.info("starting %s: %s", name, " ".join(cmd))
    log_path = script.parent / f"{name.replace(' ', '_')}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    fixed: list[dict[str, float]] = []
    try:
        try:
            wait_ready(ready_url, [proc])
        except RuntimeError:
            log.error("%s failed to start:\n%s", name, log_path.read_text()[-3000:])
            raise
        run_wrk(base_url, script, args.connections, 3, args.wrk_threads)  # warm-up
        cpu_before = session_cpu_seconds([proc.pid])
        result = run_wrk(base_url, script, args.connections, args.duration, args.wrk_threads)
        cpu = session_cpu_seconds([proc.pid]) - cpu_before
        # CPU per request is what contention on a shared machine does not distort
        result["cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
        result["load"] = os.getloadavg()[0]
        log.info("%s saturation: %s", name, result)
        port = int(base_url.rsplit(":", 1)[1])
        requests = raw_requests(args.users)
        time.sleep(3)  # what wrk left queued drains first
        for rate in fixed_rates(name, result["rps"], args):
            r = open_loop(port, requests, rate, args.rate_duration, args)
            r["load"] = os.getloadavg()[0]
            log.info("%s at %.0f req/s: %s", name, rate, r)
            fixed.append(r)
    finally:
        stop([proc])
    return {"saturation": result, "fixed": fixed}


def saturation_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        f"saturation (wrk, closed loop): {args.connections} connections, {args.duration} s, {args.workers} uvicorn "
        f"workers, {os.cpu_count()} cores shared with the load generator (and other users of the machine)",
        f"{'server':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'(http':>7}{'sock)':>7}"
        f"{'requests':>10}{'CPU us/req':>12}{'load':>7}",
    ]
    for name, both in results.items():
        r = both["saturation"]
        lines.append(
            f"{name:<22}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8.0f}"
            f"{r['http_errors']:>7.0f}{r['socket_errors']:>7.0f}{r['requests']:>10.0f}{r['cpu_us_per_request']:>12.0f}"
            f"{r['load']:>7.1f}"
        )
    if len(results) == 2:
        a, b = results["mlflow models serve"]["saturation"], results["refarch serve"]["saturation"]
        lines.append(
            f"ratio refarch / mlflow: {b['rps'] / max(a['rps'], 1e-9):.1f}x requests/s, "
            f"{a['cpu_us_per_request'] / max(b['cpu_us_per_request'], 1e-9):.1f}x less CPU per request"
        )
    return lines


def fixed_rate_table(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, title: str) -> list[str]:
    lines = [
        f"{title}: open loop, {args.rate_duration} s per rate after {WARMUP_S:.0f} s of warm-up, "
        f"{args.gen_connections} connections from {args.gen_procs} generator processes; latency: time in the "
        f"server plus time queued after it was due",
        f"{'server':<22}{'rate/s':>8}{'achieved':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'errors':>8}"
        f"{'lag p50':>9}{'lag p99':>9}{'load':>7}",
    ]
    for name, rows in results.items():
        for r in rows:
            lines.append(
                f"{name:<22}{r['rate']:>8.0f}{r['achieved']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                f"{r['p999_ms']:>10.2f}{r['errors']:>8d}{r['lag_p50_ms']:>9.2f}{r['lag_p99_ms']:>9.2f}{r['load']:>7.1f}"
            )
    lines.append(
        "achieved: answers (200) per second within the measured window; lag: how late the generator sent a request "
        "whose connection was free (its own delay, not in the latencies), ms"
    )
    return lines


def plot(results: dict[str, list[dict[str, float]]], path: Path, note: str) -> None:
    """Latency (p50, p99, p99.9) against the offered rate, one colour per server; log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"refarch serve": "tab:blue", "mlflow models serve": "tab:orange", "generator check": "tab:gray"}
    for name, rows in results.items():
        if not rows:
            continue
        rates = [r["rate"] for r in rows]
        for key, style, label in (("p50_ms", "-o", "p50"), ("p99_ms", "--s", "p99"), ("p999_ms", ":^", "p99.9")):
            ax.plot(rates, [r[key] for r in rows], style, color=colours.get(name), label=f"{name} {label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, requests/s (open loop)")
    ax.set_ylabel("latency (time in server + queued since due), ms")
    ax.set_title("POST /invocations: latency against load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, note, fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def default_out() -> Path:
    home = os.environ.get("REFARCH_HOME") or str(Path(__file__).resolve().parents[1] / ".refarch")
    return Path(home) / "benchmarks" / "serving_load"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds of the wrk saturation run")
    parser.add_argument("--connections", type=int, default=200, help="wrk connections (saturation)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument(
        "--only", choices=["mlflow", "refarch", "generator"], default=None, help="generator: only the generator check"
    )
    parser.add_argument("--access-log", action="store_true", help="keep refarch's per-request log lines on")
    parser.add_argument(
        "--rates",
        type=lambda v: [float(x) for x in v.split(",") if x],
        default=[1000.0, 4000.0, 8000.0],
        help="open-loop rates, requests/s ('' for none)",
    )
    parser.add_argument("--rate-duration", type=float, default=15.0, help="measured seconds per rate")
    parser.add_argument("--gen-procs", type=int, default=2, help="load generator processes")
    parser.add_argument("--gen-connections", type=int, default=128, help="open-loop connections, all processes")
    parser.add_argument("--check-generator", action="store_true", help="also run the generator against a no-op server")
    parser.add_argument("--out", type=Path, default=None, help="table and plot path without suffix")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if shutil.which("wrk") is None and args.only != "generator":
        log.error("wrk is not installed (apt-get install -y wrk)")
        return 2
    out = args.out or default_out()
    out.parent.mkdir(parents=True, exist_ok=True)

    check: dict[str, dict[str, float]] = {}
    if (args.check_generator or args.only == "generator") and args.rates:
        check = check_generator(args, args.rates)
    if args.only == "generator":
        text = "\n".join(fixed_rate_table({"generator check": list(check.values())}, args, "the generator alone"))
        sys.stdout.write(f"{text}\nload average {os.getloadavg()[0]:.1f}\n")
        return 0

    home = Path(tempfile.mkdtemp(prefix="refarch-bench-"))
    try:
        model = build_model(home, args.users, args.items, rank=16)
        script = home / "requests.lua"
        wrk_script(script, request_bodies(args.users), API_KEY)
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow execs `uvicorn`
            "REFARCH_API_KEYS": API_KEY,
            "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        }
        results: dict[str, dict[str, Any]] = {}
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

    load = os.getloadavg()
    lines = [*saturation_table(results, args), ""]
    fixed = {name: both["fixed"] for name, both in results.items()}
    lines += fixed_rate_table(fixed, args, "latency at fixed rates")
    if check:
        lines += ["", *fixed_rate_table({"generator check": list(check.values())}, args, "the generator alone")]
    lines.append(
        f"load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) on "
        f"{os.cpu_count()} cores shared by the servers, the generators and the machine's other users"
    )
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    out.with_suffix(".txt").write_text(text)
    if any(fixed.values()):
        plot(
            {**fixed, **({"generator check": list(check.values())} if check else {})},
            out.with_suffix(".png"),
            f"{args.workers} uvicorn workers, {os.cpu_count()} shared cores, load average {load[0]:.1f}",
        )
        log.info("table and plot: %s, %s", out.with_suffix(".txt"), out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
