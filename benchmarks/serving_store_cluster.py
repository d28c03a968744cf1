"""Serving-store reads on one Redis node against a three-node Redis Cluster, with the same data.

Starts, on free loopback ports: a standalone redis-server (the one-script read), a one-node
cluster (every slot on one node) and a three-node cluster (`redis-server --cluster-enabled yes`,
then `redis-cli --cluster create ... --cluster-replicas 0`). Publishes the same lists to each
(`--users` users, top-10, spread over 256 buckets per version), then reads them through
`RecommendationStore.get_many_async`, the scoring app's path, from `--procs` processes with
`--concurrency` reads in flight each, for `--seconds`, one user per read and then `--batch`
users per read. Every answer is checked: the user's own list, from the published version.

Printed: reads/s and lists/s, read latency p50/p99, and the redis-server CPU per read with its
split over the nodes. On this machine the client processes, the servers and everybody else
share 2 cores, so the three nodes cannot add throughput here: what the table shows is that the
reads spread evenly over the shards (each node does a third of the work), which is what lets a
cluster on separate machines serve several times the reads of one node.

    .venv/bin/python benchmarks/serving_store_cluster.py [--users 100000] [--seconds 10] [--procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from refarch.runtime.local_redis import LocalRedis

log = logging.getLogger("serving_store_cluster")
PASSWORD = "cluster-benchmark-secret"


def publish(settings: dict[str, Any], users: int) -> str:
    """User u's list is items u*10 .. u*10+9: a read can check it got the right one."""
    from refarch.recommender.store import open_store

    store = open_store(settings)
    rows = ((u, [u * 10 + r for r in range(10)], [1.0 - r / 10 for r in range(10)]) for u in range(1, users + 1))
    version = store.publish(rows, [1, 2, 3], [3.0, 2.0, 1.0], batch_size=5000)
    store.close()
    return version


async def _read(settings: dict[str, Any], users: int, batch: int, concurrency: int, start_wall: float, seconds: float):
    from refarch.recommender.store import StoreError, open_store

    store = open_store(settings)
    clock = time.perf_counter
    start = clock() + (start_wall - time.time())
    end = start + seconds
    latencies: list[float] = []
    wrong = errors = 0
    await store.get_many_async([1], timeout=5.0)  # connections and scripts before the clock starts
    await asyncio.sleep(max(0.0, start - clock()))

    async def reader(seed: int) -> None:
        nonlocal wrong, errors
        rng = random.Random(seed)
        while clock() < end:
            ids = [rng.randint(1, users) for _ in range(batch)]
            began = clock()
            try:
                got = await store.get_many_async(ids, timeout=1.0)
            except StoreError:
                errors += 1
                continue
            latencies.append(clock() - began)
            wrong += sum(g.items[0] != u * 10 for g, u in zip(got, ids, strict=True))

    await asyncio.gather(*(reader(seed) for seed in range(concurrency)))
    return {"latency": np.array(latencies), "wrong": wrong, "errors": errors}


def _reader_process(out: Any, *args: Any) -> None:
    import uvloop

    out.send(uvloop.run(_read(*args)))
    out.close()


def measure(
    servers: LocalRedis, settings: dict[str, Any], users: int, batch: int, args: argparse.Namespace
) -> dict[str, Any]:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    start_wall = time.time() + 2.0
    pipes, procs = [], []
    for _ in range(args.procs):
        receive, send = context.Pipe(duplex=False)
        proc = context.Process(
            target=_reader_process,
            args=(send, settings, users, batch, args.concurrency, start_wall, args.seconds),
        )
        proc.start()
        pipes.append(receive)
        procs.append(proc)
    time.sleep(max(0.0, start_wall - time.time()))
    cpu_before = servers.cpu_seconds()
    time.sleep(args.seconds)
    cpu = [after - before for after, before in zip(servers.cpu_seconds(), cpu_before, strict=True)]
    parts = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join(timeout=30)
    latency = np.concatenate([p["latency"] for p in parts]) * 1e3
    reads = len(latency)
    return {
        "reads_s": reads / args.seconds,
        "lists_s": reads * batch / args.seconds,
        "p50_ms": float(np.percentile(latency, 50)) if reads else float("nan"),
        "p99_ms": float(np.percentile(latency, 99)) if reads else float("nan"),
        "cpu_us_per_read": sum(cpu) / max(reads, 1) * 1e6,
        "cpu_split": [c / max(sum(cpu), 1e-9) for c in cpu],
        "wrong": sum(p["wrong"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "load": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=32, help="reads in flight per client process")
    parser.add_argument("--batch", type=int, default=10, help="users per read in the batched run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            log.error("%s is not installed (apt-get install -y redis-server)", tool)
            return 2
    os.environ["BENCH_REDIS_PASSWORD"] = PASSWORD
    folder = Path(tempfile.mkdtemp(prefix="refarch-cluster-bench-"))
    setups = {
        name: LocalRedis(folder / where, PASSWORD, password_env="BENCH_REDIS_PASSWORD", nodes=nodes, cluster=cluster)
        for name, where, nodes, cluster in (
            ("standalone, 1 node", "standalone", 1, False),
            ("cluster, 1 node", "cluster1", 1, True),
            ("cluster, 3 nodes", "cluster3", 3, True),
        )
    }
    rows = []
    try:
        for name, servers in setups.items():
            servers.start(timeout=30)
            settings = {**servers.settings, "prefix": "bench:"}
            started = time.perf_counter()
            publish(settings, args.users)
            log.info("%s: published %d lists in %.1f s", name, args.users, time.perf_counter() - started)
            for batch in (1, args.batch):
                r = measure(servers, settings, args.users, batch, args)
                log.info("%s, %d per read: %s", name, batch, r)
                rows.append((name, batch, r))
            servers.stop()
    finally:
        for servers in setups.values():
            servers.stop()
        shutil.rmtree(folder, ignore_errors=True)

    lines = [
        f"serving-store reads (get_many_async, the scoring app's path): {args.users} users' top-10 lists, "
        f"{args.procs} client processes x {args.concurrency} reads in flight, {args.seconds:.0f} s per run",
        f"{'setup':<20}{'users/read':>11}{'reads/s':>9}{'lists/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'server CPU us/read':>20}  {'CPU split over nodes':<22}{'wrong':>6}{'errors':>7}{'load':>6}",
    ]
    for name, batch, r in rows:
        split = " / ".join(f"{s:.0%}" for s in r["cpu_split"])
        lines.append(
            f"{name:<20}{batch:>11}{r['reads_s']:>9.0f}{r['lists_s']:>9.0f}{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}"
            f"{r['cpu_us_per_read']:>20.1f}  {split:<22}{r['wrong']:>6}{r['errors']:>7}{r['load']:>6.1f}"
        )
    load = os.getloadavg()
    lines.append(
        f"{os.cpu_count()} cores shared by the clients, every redis-server and the machine's other users "
        f"(load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}): the client, not Redis, is the limit here"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
