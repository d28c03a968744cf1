"""FAQ matching latency: one question per request, 182 originals (the reference's size).

Trains the ranker (conf/faq.yml for the local target, its first hyperparameter trial) on
generated question families cut to 182 originals, saves it as the pyfunc model that
`refarch serve` loads, then measures per-request latency
(a) in process through `mlflow.pyfunc` and (b) over HTTP through the scoring app on a
real uvicorn server (API key, validation, metrics included). Target: p99 <= 20 ms.
Reference: 46 ms per request in a local container.

    .venv/bin/python benchmarks/faq_latency.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def percentiles(samples_ms: list[float]) -> str:
    a = np.asarray(samples_ms)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return f"n={len(a)} mean={a.mean():.2f} p50={p50:.2f} p95={p95:.2f} p99={p99:.2f} max={a.max():.2f} ms"


def build_model(folder: Path, n_originals: int, seed: int):
    """The ranker the local `faq` job trains (conf/faq.yml for the local target), cut to n originals."""
    from refarch.datasets.faq_generator import generate_faq_data
    from refarch.faq.model import save_faq_model
    from refarch.faq.prepare import prepare_faq
    from refarch.faq.ranker import FaqRanker
    from refarch.faq.settings import Settings
    from refarch.faq.split import split_by_original
    from refarch.faq.tuning import grid
    from refarch.runtime.config import load_config

    overrides = {"generator.n_families": int(n_originals * 1.6), "generator.seed": seed}
    settings = load_config("faq", "local", root=ROOT).settings(Settings, overrides)
    cleaning = settings.cleaning.of("generated")
    prepared = prepare_faq(
        generate_faq_data(**settings.generator.model_dump()),
        min_text=settings.min_text,
        min_dupes=settings.min_dupes,
        cleaning=cleaning,
    )
    if len(prepared.originals) < n_originals:
        raise SystemExit(f"only {len(prepared.originals)} originals generated; raise n_families")
    originals = prepared.originals.head(n_originals)
    duplicates = prepared.duplicates[prepared.duplicates["answer_id"].isin(originals["answer_id"])]
    train, test = split_by_original(duplicates, test_size=settings.test_size, seed=settings.seed)
    params = grid(settings.grid.model_dump())[0]  # the first trial of the local grid
    started = time.perf_counter()
    ranker = FaqRanker(params, cleaning=cleaning).fit(originals, train)
    fit_seconds = time.perf_counter() - started
    report = ranker.evaluate(test)
    print(f"model: {params}")
    print(f"{len(originals)} originals, {len(train)} training duplicates, fit {fit_seconds:.1f} s")
    print(
        f"quality on {report.n_questions} held-out duplicates: Acc@1 {report.acc_at_1:.3f}, "
        f"Acc@3 {report.acc_at_3:.3f}, mean rank {report.mean_rank:.2f}"
    )
    return save_faq_model(ranker, folder / "faq-model", top_n=settings.top_n), test["text"].tolist()


def bench_pyfunc(model_path: Path, questions: list[str], n: int) -> None:
    import mlflow

    model = mlflow.pyfunc.load_model(str(model_path))
    for q in questions[:50]:
        model.predict([{"question": q}])
    samples = []
    for i in range(n):
        q = questions[i % len(questions)]
        t = time.perf_counter()
        model.predict([{"question": q, "top_n": 5}])
        samples.append((time.perf_counter() - t) * 1000)
    print("pyfunc predict, 1 question:", percentiles(samples))


def bench_http(model_path: Path, questions: list[str], n: int) -> None:
    import httpx
    import uvicorn

    from refarch.serving.app import create_app
    from refarch.serving.auth import ApiKeys

    key = "benchmark-key-0123456789"
    app = create_app(str(model_path), api_keys=ApiKeys([key]), background_load=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as client:
            for _ in range(600):  # bounded wait for readiness (60 s)
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            for q in questions[:50]:
                client.post("/invocations", json={"inputs": [{"question": q}]})
            samples = []
            for i in range(n):
                body = {"inputs": [{"question": questions[i % len(questions)], "top_n": 5}]}
                t = time.perf_counter()
                r = client.post("/invocations", json=body)
                samples.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"request failed: {r.status_code} {r.text[:200]}")
            bad = client.post("/invocations", json={"inputs": [{"question": "   "}]})
        print("HTTP POST /invocations, 1 question:", percentiles(samples))
        print(f"empty question -> HTTP {bad.status_code} {bad.json()['error']['code']}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--originals", type=int, default=182)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        model_path, questions = build_model(Path(tmp), args.originals, args.seed)
        bench_pyfunc(model_path, questions, args.requests)
        bench_http(model_path, questions, args.requests)


if __name__ == "__main__":
    main()
