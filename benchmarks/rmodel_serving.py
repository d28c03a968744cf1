"""Load test: one ranger model served by Plumber and by `refarch serve`, with wrk.

Fits the conf's ranger model (conf/rmodel.yml: trees, mtry, leaf size, split) on ggplot2's diamonds
in a throw-away folder, saves it with saveRDS, and serves that one RDS file two ways:
- Plumber (Debian's r-cran-plumber): one R process per worker, each on its own port. Plumber has no
  workers of its own, so one wrk per process shares the connections and the wrk threads (latency
  quantiles merged, weighted by requests); its endpoint builds factors with the conf's levels and
  calls the same `predict(model, newdata, num.threads = 1)`, with no other validation;
- `refarch serve` with API-key auth and the same number of workers (one embedded R each, through
  rpy2), requests validated against the declared columns.
For each server, back to back, wrk runs with single-row and with 100-row requests (held-out
diamonds, cycled) and the table gives requests/s, p50 and p99 latency, errors, rows/s, and the CPU
the server used per request (what contention on a shared machine distorts least). The load average
is printed before and after each run.

    .venv/bin/python benchmarks/rmodel_serving.py [--duration 15] [--connections 64] [--workers 2] [--rounds 1]

Needs R with r-cran-ranger, r-cran-ggplot2, r-cran-plumber, and wrk (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _servers import session_cpu_seconds, stop, wait_ready, wrk_script

from refarch.runtime.blob import free_port

log = logging.getLogger("rmodel_serving")
API_KEY = "benchmark-key-0123456789abcdef"
VENV_BIN = Path(sys.executable).parent


def r_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def fit(home: Path, settings: Any) -> tuple[Path, Path]:
    """The conf's ranger model on diamonds (the job's split): model.rds and the held-out rows."""
    rds, test = home / "model.rds", home / "test.csv"
    levels = "\n".join(
        f"d[[{r_literal(c.name)}]] <- factor(as.character(d[[{r_literal(c.name)}]]), "
        f"levels = c({', '.join(map(r_literal, c.levels))}), ordered = {str(c.ordered).upper()})"
        for c in settings.inputs
        if c.type == "factor"
    )
    columns = ", ".join(r_literal(c.name) for c in settings.inputs)
    r = settings.ranger
    script = f"""
suppressPackageStartupMessages(library(ranger))
d <- as.data.frame(ggplot2::diamonds)[c({columns}, {r_literal(settings.target)})]
{levels}
set.seed({settings.split.seed})
held_out <- sort(sample.int(nrow(d), round(nrow(d) * {settings.split.test_share})))
m <- ranger(dependent.variable.name = {r_literal(settings.target)}, data = d[-held_out, ],
            num.trees = {r.num_trees}, mtry = {r.mtry}, min.node.size = {r.min_node_size},
            num.threads = {r.num_threads}, seed = {settings.split.seed})
saveRDS(m, {r_literal(str(rds))})
utils::write.csv(d[held_out, ], {r_literal(str(test))}, row.names = FALSE)
cat(as.character(packageVersion("ranger")))
"""
    started = time.perf_counter()
    version = subprocess.run(["Rscript", "-e", script], check=True, capture_output=True, text=True).stdout.strip()
    log.info("ranger %s fitted in %.1f s (%d trees)", version, time.perf_counter() - started, r.num_trees)
    return rds, test


def plumber_file(home: Path, rds: Path, settings: Any) -> Path:
    """A Plumber API for the RDS file: factors with the conf's levels, then the same predict call."""
    factors = "\n".join(
        f"  newdata[[{r_literal(c.name)}]] <- factor(newdata[[{r_literal(c.name)}]], "
        f"levels = c({', '.join(map(r_literal, c.levels))}), ordered = {str(c.ordered).upper()})"
        for c in settings.inputs
        if c.type == "factor"
    )
    args = ", ".join(f"`{k}` = {r_literal(v)}" for k, v in settings.serving.predict_args.items())
    path = home / "plumber.R"
    path.write_text(
        f"""suppressPackageStartupMessages(library(ranger))
model <- readRDS({r_literal(str(rds))})

#* @get /health
function() list(status = "ok")

#* @post /invocations
function(req) {{
  newdata <- req$body$inputs
{factors}
  list(predictions = predict(model, newdata, {args})$predictions)
}}
"""
    )
    return path


def request_bodies(test: pd.DataFrame, inputs: list[str], rows: int, count: int) -> list[str]:
    records = test[inputs].to_dict(orient="records")
    return [json.dumps({"inputs": [records[(i * rows + j) % len(records)] for j in range(rows)]}) for i in range(count)]


# wrk's done(): the counts and 999 latency quantiles as one JSON line, so runs against several ports pool
DONE_AS_JSON = """done = function(summary, latency, requests)
  local q = {}
  for k = 1, 999 do q[#q + 1] = string.format("%d", latency:percentile(k / 10)) end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, '
    .. '"timeout": %d, "quantiles_us": [%s]}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, table.concat(q, ",")))
end
"""


def wrk(urls: list[str], script: Path, connections: int, duration: int) -> dict[str, float]:
    """One wrk per URL at once (connections split between them); throughput summed, quantiles pooled."""
    per = max(connections // len(urls), 1)
    threads = 2 if len(urls) == 1 else 1
    procs = [
        subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{per}", f"-d{duration}s", "--timeout", "5s", "-s", str(script), url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for url in urls
    ]
    runs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=duration + 60)
        line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{out[-2000:]}")
        runs.append(json.loads(line[len("RESULT ") :]))
    requests = sum(r["requests"] for r in runs)
    seconds = max(r["duration_us"] for r in runs) / 1e6
    errors = sum(r[k] for r in runs for k in ("connect", "read", "write", "status", "timeout"))
    pooled = sorted((q, r["requests"] / 999) for r in runs for q in r["quantiles_us"])

    def quantile(p: float) -> float:
        target, seen = p * sum(w for _, w in pooled), 0.0
        for value, weight in pooled:
            seen += weight
            if seen >= target:
                return value / 1000
        return pooled[-1][0] / 1000

    return {
        "rps": requests / seconds,
        "requests": requests,
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "errors": errors,
    }


class Server:
    """One server under test: its processes, the URLs wrk hits, its health URL(s)."""

    def __init__(self, name: str, commands: list[list[str]], urls: list[str], ready: list[str], env: dict[str, str]):
        self.name, self.commands, self.urls, self.ready, self.env = name, commands, urls, ready, env
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Server:
        logs = Path(tempfile.gettempdir())
        self.procs = []
        for i, cmd in enumerate(self.commands):
            out = (logs / f"rmodel-bench-{self.name.split()[0]}-{i}.log").open("wb")
            self.procs.append(
                subprocess.Popen(cmd, env=self.env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
            )
        try:
            for url in self.ready:
                wait_ready(url, self.procs)
        except BaseException:
            stop(self.procs)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.procs)

    def predict(self, rows: list[dict[str, Any]]) -> list[float]:
        import httpx

        r = httpx.post(self.urls[0] + "/invocations", json={"inputs": rows}, headers={"X-API-Key": API_KEY}, timeout=30)
        r.raise_for_status()
        return [float(x) for x in r.json()["predictions"]]

    def measure(self, script: Path, connections: int, duration: int) -> dict[str, float]:
        wrk(self.urls, script, connections, 2)  # warm-up
        load_before = os.getloadavg()[0]
        cpu_before = session_cpu_seconds([p.pid for p in self.procs])
        result = wrk(self.urls, script, connections, duration)
        cpu = session_cpu_seconds([p.pid for p in self.procs]) - cpu_before
        result["cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
        result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="processes of each server (default: cores)")
    parser.add_argument("--rounds", type=int, default=1, help="measure each pair this many times")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("mlflow", "alembic", "urllib3", "httpx", "rpy2", "refarch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    missing = [tool for tool in ("wrk", "Rscript") if shutil.which(tool) is None]
    if missing:
        log.error("%s not installed (apt-get install -y wrk r-base-core r-cran-ranger r-cran-plumber)", missing)
        return 2

    from refarch.rmodel.columns import Columns
    from refarch.rmodel.model import save_r_model
    from refarch.rmodel.settings import Settings
    from refarch.runtime.config import load_config
    from refarch.serving.workers import cpu_count

    settings = load_config("rmodel", "local").settings(Settings)
    workers = args.workers or cpu_count()
    inputs = [c.name for c in settings.inputs]
    home = Path(tempfile.mkdtemp(prefix="refarch-rbench-"))
    results: list[tuple[str, str, int, dict[str, float]]] = []
    try:
        rds, test_path = fit(home, settings)
        test = pd.read_csv(test_path, dtype={c.name: str for c in settings.inputs if c.type == "factor"})
        version = subprocess.run(
            ["Rscript", "-e", 'cat(as.character(packageVersion("ranger")))'], check=True, capture_output=True, text=True
        ).stdout
        model = save_r_model(
            home / "model",
            rds,
            settings.inputs,
            r_packages={"ranger": version},
            predict_args=settings.serving.predict_args,
            max_combined_rows=settings.serving.max_combined_rows,
            example=test,
        )
        Columns(settings.inputs).from_frame(test[inputs])  # every held-out row is a valid request
        scripts = {}
        for rows, label in ((1, "1 row"), (100, "100 rows")):
            bodies = request_bodies(test, inputs, rows, 500 if rows == 1 else 50)
            for server in ("plumber", "refarch"):
                scripts[(label, server)] = home / f"{server}-{rows}.lua"
                wrk_script(scripts[(label, server)], bodies, API_KEY if server == "refarch" else None, DONE_AS_JSON)

        env = {**os.environ, "REFARCH_API_KEYS": API_KEY, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
        api = plumber_file(home, rds, settings)
        ports = [free_port() for _ in range(workers)]
        plumber = Server(
            f"Plumber ({workers} R processes)",
            [
                ["Rscript", "-e", f"plumber::pr_run(plumber::pr({r_literal(str(api))}), port = {p}, docs = FALSE)"]
                for p in ports
            ],
            [f"http://127.0.0.1:{p}" for p in ports],
            [f"http://127.0.0.1:{p}/health" for p in ports],
            env,
        )
        port = free_port()
        refarch = Server(
            f"refarch serve ({workers} workers)",
            [
                [
                    *(str(VENV_BIN / "refarch"), "serve", "--model", str(model), "--port", str(port)),
                    *("--workers", str(workers), "--no-access-log"),
                ]
            ],
            [f"http://127.0.0.1:{port}"],
            [f"http://127.0.0.1:{port}/ready"],
            env,
        )
        sample = test[inputs].head(20).to_dict(orient="records")
        for _ in range(args.rounds):
            for label in ("1 row", "100 rows"):
                rows = 1 if label == "1 row" else 100
                for server in (plumber, refarch):  # back to back, never at the same time
                    with server:
                        if not results:
                            check = server.predict(sample)
                            log.info("%s predicts %s ... for the first held-out rows", server.name, check[:3])
                        key = "plumber" if server is plumber else "refarch"
                        log.info("%s, %s per request: wrk %d s", server.name, label, args.duration)
                        r = server.measure(scripts[(label, key)], args.connections, args.duration)
                    results.append((server.name, label, rows, r))
                    log.info("%s %s: %s", server.name, label, {k: round(v, 1) for k, v in r.items()})
    finally:
        shutil.rmtree(home, ignore_errors=True)

    lines = [
        f"wrk: {args.connections} connections, {args.duration} s per run, {workers} processes per server, "
        f"{os.cpu_count()} cores shared with wrk (and with whatever else runs on the machine)",
        f"{'server':<28}{'request':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'rows/s':>10}"
        f"{'CPU us/req':>12}{'load before/after':>19}",
    ]
    for name, label, rows, r in results:
        lines.append(
            f"{name:<28}{label:>9}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8.0f}"
            f"{r['rps'] * rows:>10.0f}{r['cpu_us_per_request']:>12.0f}"
            f"{r['load_before']:>10.1f} /{r['load_after']:>5.1f}"
        )
    for label in ("1 row", "100 rows"):
        pairs = [(n, r) for n, lab, _, r in results if lab == label]
        p = [r["rps"] for n, r in pairs if n.startswith("Plumber")]
        f = [r["rps"] for n, r in pairs if n.startswith("refarch")]
        if p and f:
            lines.append(f"{label}: refarch / Plumber = {sum(f) / max(sum(p), 1e-9):.1f}x requests/s")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
