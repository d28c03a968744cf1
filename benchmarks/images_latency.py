"""Image classification over HTTP: `refarch serve` with and without dynamic batching, on this machine's CPU.

ResNet-50 and ResNet-152 (torchvision, random weights, the IMAGENET1K_V2 preset: 1,000 classes,
resize 232, crop 224) are saved as the pyfunc image model and served by `refarch serve` in
subprocesses (one uvicorn worker each, no API key). Clients POST one 224x224 JPEG per request
(batch 1) in closed loops, 1 and 8 at a time; the table gives images/s and the
p50/p99 latency, unbatched (`--max-batch 1`), with dynamic batching (`--max-batch 8`), and unbatched
with `--threadpool` (concurrent requests' forward passes in threads, the other way to use several
cores). The servers of a model run side by side and are loaded one at a time, in turn, for several
rounds (so each comparison is back to back under the same machine load); a row pools its rounds.
The load average of the machine is printed with each row: on shared cores the figures move with it.

Target (issue 13): with 8 clients, batching gives at least 1.5x the images/s of unbatched serving at
a p99 no worse than 2x. Reference: about 55 ms per request on one GPU per pod (AKS).

torch runs with one intra-op thread (OMP_NUM_THREADS=1, `--threads` to change): on cores shared with
other work, OpenMP threads waiting for each other at every layer made a forward pass 10-20x slower.

    .venv/bin/python benchmarks/images_latency.py [--duration 15] [--rounds 3] [--models 50,152] [--max-wait-ms 10]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refarch.runtime.blob import free_port

ROOT = Path(__file__).resolve().parents[1]


def save_model(depth: int, folder: Path) -> Path:
    """ResNet-<depth>, random weights, saved as the pyfunc image model (what `refarch serve` loads)."""
    import torch

    from refarch.images.model import save_image_classifier
    from refarch.images.vision import build_resnet, published_weights

    published = published_weights(depth, "IMAGENET1K_V2")
    torch.manual_seed(0)
    net = build_resnet(depth, len(published.labels))
    return save_image_classifier(
        net,
        published.labels,
        published.preprocessing,
        folder / f"resnet{depth}",
        depth=depth,
        top_k=5,
        forward_batch=32,
        provenance={"weights": published.name, "weights_source": "random (benchmark)"},
    )


def request_bodies(n: int, seed: int = 0) -> list[bytes]:
    """n different 224x224 JPEGs, each as a one-image request body."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(n):
        pixels = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)  # coarse blocks: a JPEG of normal size
        img = Image.fromarray(pixels).resize((224, 224), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=90)
        image = base64.b64encode(out.getvalue()).decode()
        bodies.append(json.dumps({"inputs": [{"image": image, "k": 5}]}).encode())
    return bodies


class Server:
    """`refarch serve` in a subprocess, ready when /ready answers 200."""

    def __init__(self, model: Path, max_batch: int, max_wait_ms: float, threads: int, threadpool: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        cmd = [
            sys.executable,
            "-m",
            "refarch.cli",
            "serve",
            "--model",
            str(model),
            "--port",
            str(self.port),
            "--no-auth",
            "--no-access-log",
            "--workers",
            "1",
            "--max-batch",
            str(max_batch),
            "--max-wait-ms",
            str(max_wait_ms),
            *(["--threadpool"] if threadpool else []),
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)

    def __enter__(self) -> Server:
        import httpx

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"refarch serve exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError("refarch serve was not ready within 600 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def load(url: str, bodies: list[bytes], clients: int, seconds: float) -> Run:
    """`clients` closed loops (send, wait for the answer, send again) for `seconds`: every request's latency."""
    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(i: int) -> None:
        with httpx.Client(timeout=120) as http:
            headers = {"content-type": "application/json"}
            http.post(url + "/invocations", content=bodies[i % len(bodies)], headers=headers)  # connection, warm
            start.wait()
            n = i
            while time.perf_counter() < stop_at[0]:
                began = time.perf_counter()
                r = http.post(url + "/invocations", content=bodies[n % len(bodies)], headers=headers)
                if r.status_code != 200:
                    errors[i] += 1
                latencies[i].append(time.perf_counter() - began)
                n += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # the warm-up requests are answered (clients wait at the barrier)
    stop_at[0] = time.perf_counter() + seconds
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if sum(errors):
        raise RuntimeError(f"{sum(errors)} requests failed")
    return Run([x * 1000 for per in latencies for x in per], elapsed)


@dataclass
class Run:
    """Latencies (ms) of the requests of one or more load runs and the time they took."""

    samples: list[float]
    seconds: float
    loads: list[float] = field(default_factory=list)

    def add(self, other: Run) -> None:
        self.samples += other.samples
        self.seconds += other.seconds
        self.loads += other.loads

    def summary(self) -> dict[str, float]:
        p50, p99 = np.percentile(np.asarray(self.samples), [50, 99])
        load = float(np.mean(self.loads)) if self.loads else float("nan")
        n = len(self.samples)
        return {"images_s": n / self.seconds, "p50": float(p50), "p99": float(p99), "n": n, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration, taken in turn")
    parser.add_argument("--models", default="50,152", help="ResNet depths, comma-separated")
    parser.add_argument("--max-batch", type=int, default=8, help="--max-batch of the batched server")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="--max-wait-ms of the batched server")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the server")
    parser.add_argument("--clients", default="1,8", help="concurrent clients, comma-separated")
    parser.add_argument(
        "--threadpool",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure unbatched serving with `--threadpool` (forward passes of concurrent requests in threads)",
    )
    args = parser.parse_args()
    os.environ.setdefault("REFARCH_ROOT", str(ROOT))
    bodies = request_bodies(64)
    print(
        f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; one 224x224 JPEG per request "
        f"({len(bodies[0]):,} bytes); torch threads {args.threads}; {args.rounds} x {args.duration:.0f} s per row, "
        "the servers of a model loaded in turn"
    )
    rows = []
    print(HEADER)
    configs = [("off", 1, False), (f"{args.max_batch}/{args.max_wait_ms:g}ms", args.max_batch, False)]
    if args.threadpool:
        configs.append(("off+pool", 1, True))
    clients_list = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for depth in (int(d) for d in args.models.split(",")):
            model = save_model(depth, Path(tmp))
            runs = {(label, c): Run([], 0.0) for label, _, _ in configs for c in clients_list}
            with ExitStack() as stack:  # every server of the model up; one is loaded at a time, in turn
                servers = {
                    label: stack.enter_context(Server(model, max_batch, args.max_wait_ms, args.threads, pool))
                    for label, max_batch, pool in configs
                }
                for _ in range(args.rounds):
                    for clients in clients_list:
                        for label, _, _ in configs:
                            before = os.getloadavg()[0]
                            run = load(servers[label].url, bodies, clients, args.duration)
                            run.loads.append((before + os.getloadavg()[0]) / 2)
                            runs[label, clients].add(run)
            for clients in clients_list:
                base = runs["off", clients].summary()
                for label, _, _ in configs:
                    result = runs[label, clients].summary()
                    gain = result["images_s"] / base["images_s"] if label != "off" else None
                    p99_ratio = result["p99"] / base["p99"] if label != "off" else None
                    rows.append((f"ResNet-{depth}", label, clients, result, gain, p99_ratio))
                    print_row(rows[-1], flush=True)
    print()
    print_table(rows)


HEADER = (
    f"{'model':<11} {'batching':<10} {'clients':>7} {'images/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'n':>5} "
    f"{'load':>5} {'x images/s':>10} {'x p99':>6}"
)


def print_row(row, flush: bool = False) -> None:
    model, label, clients, r, gain, p99 = row
    gain_text = f"{gain:.2f}" if gain else "-"
    p99_text = f"{p99:.2f}" if p99 else "-"
    print(
        f"{model:<11} {label:<10} {clients:>7} {r['images_s']:>9.2f} {r['p50']:>8.0f} {r['p99']:>8.0f} "
        f"{r['n']:>5} {r['load']:>5.1f} {gain_text:>10} {p99_text:>6}",
        flush=flush,
    )


def print_table(rows) -> None:
    print(HEADER)
    for row in rows:
        print_row(row)
    print(
        "x images/s, x p99: against unbatched serving (off), same model and clients "
        "(target for batching at 8 clients: >= 1.5, <= 2)"
    )


if __name__ == "__main__":
    main()
