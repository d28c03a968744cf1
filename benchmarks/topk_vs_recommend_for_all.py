"""Top-k for every user as the user count grows: refarch's top-k against Spark's `ALSModel.recommendForAllUsers`.

For each user count (50,000, 200,000 and 1,000,000 by default) x 20,000 items, rank 32, k = 10,
the factors are generated directly (random numpy, in Spark tasks: fitting ALS on a million users
would take hours on 2 cores, and the top-k cost does not depend on where factors come from), as
are about 20 seen items per user (long-tail popularity). Ours removes the seen items; Spark's
method cannot (it ranks all items), and runs up to `--spark-up-to` users. Both outputs are fully
computed (Spark's `noop` sink), after a warm-up.

Seen pairs travel with the tasks up to `SEEN_SHIPPED_PAIRS` and are shuffled with their users
beyond (`--always-shuffle`: at every size, to time that path alone), in tasks that hold at most
`TASK_BYTES` each (`--task-mb`: smaller tasks show the per-task memory staying flat as users grow).

Memory, measured from outside the code under test (Linux /proc, nothing added to the top-k):
- driver Python: the peak resident set (VmHWM) of this process, reset before each run by
  writing 5 to /proc/self/clear_refs;
- JVM heap: the sum of the peak usage of the JVM's heap pools (MemoryPoolMXBean), reset after a
  System.gc() before each run. In local mode the JVM is both the driver and the executor, so
  this includes shuffle buffers and sorts, not only what the driver collects;
- Python workers: the peak resident set (VmHWM) of each Python worker process under the JVM
  (reset at the start, polled every 0.1 s, so workers that exit are counted too); the table
  shows the largest: the memory one task needs.
CPU seconds (user + system, from psutil) of the JVM and the Python workers are printed beside the
wall time: on a machine shared with other work, they compare the two methods more steadily.

    .venv/bin/python benchmarks/topk_vs_recommend_for_all.py [--users 50000 200000 1000000 --spark-up-to 200000]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("benchmark")

MB = 2**20


def _status_kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak(pid: int | str) -> None:
    """Set VmHWM back to the current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class Memory:
    driver_python_mb: float
    jvm_heap_mb: float
    worker_mb: float
    workers: int
    jvm_cpu_s: float  # CPU seconds of the JVM (driver and executor threads in local mode)
    worker_cpu_s: float  # CPU seconds of the Python workers


class MemoryWatch:
    """Peak memory of the driver Python, the JVM heap and the Python workers during a `with` block."""

    def __init__(self, spark) -> None:
        self.jvm = spark._jvm
        self.jvm_pid = int(self.jvm.java.lang.ProcessHandle.current().pid())
        self.peaks: dict[int, int] = {}
        self.cpu: dict[int, float] = {}  # Python worker pid -> CPU seconds at the last poll
        self.cpu_start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _workers(self) -> list[int]:
        import psutil

        out = []
        for child in psutil.Process(self.jvm_pid).children(recursive=True):
            try:
                if "python" in child.name().lower():
                    out.append(child.pid)
            except psutil.NoSuchProcess:
                continue
        return out

    def _heap_pools(self):
        factory = self.jvm.java.lang.management.ManagementFactory
        heap = self.jvm.java.lang.management.MemoryType.HEAP
        return [p for p in factory.getMemoryPoolMXBeans() if p.getType().equals(heap)]

    @staticmethod
    def _cpu(pid: int) -> float:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return times.user + times.system

    def _sample(self) -> None:
        import psutil

        for pid in self._workers():
            try:
                self.peaks[pid] = max(self.peaks.get(pid, 0), _status_kb(pid, "VmHWM"))
                self.cpu[pid] = self._cpu(pid)
            except (FileNotFoundError, ProcessLookupError, psutil.NoSuchProcess):
                continue

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def __enter__(self) -> MemoryWatch:
        import gc

        gc.collect()
        self.jvm.java.lang.System.gc()
        for pool in self._heap_pools():
            pool.resetPeakUsage()
        import psutil

        for pid in self._workers():
            with contextlib.suppress(OSError, psutil.NoSuchProcess):  # a worker that just exited
                _reset_peak(pid)
                self.cpu_start[pid] = self._cpu(pid)
        self.jvm_cpu_start = self._cpu(self.jvm_pid)
        _reset_peak("self")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        heap = sum(p.getPeakUsage().getUsed() for p in self._heap_pools())
        worker = max(self.peaks.values(), default=0)
        worker_cpu = sum(cpu - self.cpu_start.get(pid, 0.0) for pid, cpu in self.cpu.items())
        self.memory = Memory(
            _status_kb("self", "VmHWM") / 1024,
            heap / MB,
            worker / 1024,
            len(self.peaks),
            self._cpu(self.jvm_pid) - self.jvm_cpu_start,
            worker_cpu,
        )


def als_model(spark, user_factors, item_factors, rank: int):
    """An ALSModel over given factor DataFrames (the JVM constructor; same object ALS.fit returns)."""
    from pyspark.ml.recommendation import ALSModel

    java = spark._jvm.org.apache.spark.ml.recommendation.ALSModel(
        "als_benchmark", rank, user_factors._jdf, item_factors._jdf
    )
    java.setUserCol("user_id").setItemCol("item_id").setPredictionCol("prediction").setColdStartStrategy("drop")
    model = ALSModel(java)
    model._transfer_params_from_java()
    return model


def factors(spark, n: int, rank: int, seed: int, partitions: int):
    """(id, features) for ids 0..n-1, generated in Spark tasks (nothing of size n on the driver)."""

    def generate(batches):
        for batch in batches:
            ids = batch["id"].to_numpy()
            if not ids.size:
                continue
            rng = np.random.default_rng([seed, int(ids[0])])
            mat = (rng.standard_normal((ids.size, rank)) / np.sqrt(rank)).astype(np.float32)
            yield pd.DataFrame({"id": ids.astype(np.int32), "features": list(mat)})

    return spark.range(0, n, numPartitions=partitions).mapInPandas(generate, "id int, features array<float>")


def seen_items(spark, n_users: int, n_items: int, per_user: int, seed: int, partitions: int):
    """About `per_user` distinct items per user, drawn with a long-tail popularity, in Spark tasks."""
    pop = 1.0 / np.arange(1, n_items + 1)
    pop /= pop.sum()

    def generate(batches):
        for batch in batches:
            users = batch["id"].to_numpy()
            if not users.size:
                continue
            rng = np.random.default_rng([seed, int(users[0])])
            counts = rng.poisson(per_user, users.size) + 1
            pairs = pd.DataFrame(
                {
                    "user_id": np.repeat(users, counts).astype(np.int32),
                    "item_id": rng.choice(n_items, size=counts.sum(), p=pop).astype(np.int32),
                }
            )
            yield pairs.drop_duplicates()

    return spark.range(0, n_users, numPartitions=partitions).mapInPandas(generate, "user_id int, item_id int")


def timed(label: str, spark, action) -> tuple[float, Memory]:
    with MemoryWatch(spark) as watch:
        started = time.perf_counter()
        action()
        seconds = time.perf_counter() - started
    m = watch.memory
    log.info(
        "%s: %.1f s (CPU: JVM %.0f s, Python workers %.0f s), driver Python %.0f MB, JVM heap %.0f MB, worker %.0f MB",
        label,
        seconds,
        m.jvm_cpu_s,
        m.worker_cpu_s,
        m.driver_python_mb,
        m.jvm_heap_mb,
        m.worker_mb,
    )
    return seconds, m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seen-per-user", type=int, default=20)
    parser.add_argument(
        "--spark-up-to", type=int, default=200_000, help="run recommendForAllUsers up to this many users"
    )
    parser.add_argument("--data", default=None, help="folder for the generated factors (default: a temporary one)")
    parser.add_argument("--always-shuffle", action="store_true", help="shuffle seen pairs with their users at any size")
    parser.add_argument("--task-mb", type=int, default=None, help="the users and pairs one task holds (TASK_BYTES)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    import tempfile

    from refarch.recommender import topk
    from refarch.recommender.topk import top_k_for_model
    from refarch.runtime import get_spark

    if args.always_shuffle:
        topk.SEEN_SHIPPED_PAIRS = 0
    if args.task_mb:
        topk.TASK_BYTES = args.task_mb * MB
    spark = get_spark()
    parallelism = spark.sparkContext.defaultParallelism
    data = Path(args.data or tempfile.mkdtemp(prefix="refarch-topk-bench-"))
    rows = []
    try:
        items_path = data / f"items_{args.items}_{args.rank}"
        if not items_path.exists():
            factors(spark, args.items, args.rank, 2, parallelism).write.parquet(str(items_path))
        items = spark.read.parquet(str(items_path))

        for n_users in sorted(args.users):
            users_path, seen_path = data / f"users_{n_users}_{args.rank}", data / f"seen_{n_users}_{args.items}"
            if not users_path.exists():
                factors(spark, n_users, args.rank, 1, parallelism).write.parquet(str(users_path))
                seen_items(spark, n_users, args.items, args.seen_per_user, 3, parallelism).write.parquet(str(seen_path))
            users, seen = spark.read.parquet(str(users_path)), spark.read.parquet(str(seen_path))
            n_seen = seen.count()
            model = als_model(spark, users, items, args.rank)
            if not rows:  # warm-up (Python workers, JIT) and a check: with seen items kept both agree
                few = spark.createDataFrame([(u,) for u in range(0, n_users, max(1, n_users // 20))], "user_id int")
                theirs = {
                    r.user_id: [x.item_id for x in r.recommendations]
                    for r in model.recommendForUserSubset(few, args.k).collect()
                }
                ours: dict[int, list[int]] = {}
                for r in top_k_for_model(model, args.k, users=few).orderBy("user_id", "rank").collect():
                    ours.setdefault(r.user_id, []).append(r.item_id)
                agree = sum(set(ours[u]) == set(theirs[u]) for u in theirs)
                log.info("same top-%d lists on %d of %d sampled users (seen kept)", args.k, agree, len(theirs))
                top_k_for_model(model, args.k, seen=seen, users=few).write.format("noop").mode("overwrite").save()
            ours_s, ours_m = timed(
                f"refarch top-k, {n_users:,} users",
                spark,
                lambda model=model, seen=seen: (
                    top_k_for_model(model, args.k, seen=seen).write.format("noop").mode("overwrite").save()
                ),
            )
            row = {
                "users": n_users,
                "seen pairs": n_seen,
                "seconds": ours_s,
                "s per 100k users": ours_s / n_users * 1e5,
                "CPU s": ours_m.jvm_cpu_s + ours_m.worker_cpu_s,
                "driver Python MB": ours_m.driver_python_mb,
                "JVM heap MB": ours_m.jvm_heap_mb,
                "worker peak MB": ours_m.worker_mb,
            }
            if hasattr(topk, "partitions_for"):
                shipped = n_seen <= topk.SEEN_SHIPPED_PAIRS
                row["seen pairs go"] = "with tasks" if shipped else "shuffled"
                row["tasks"] = None if shipped else topk.partitions_for(n_users, n_seen, args.rank, parallelism)
            if n_users <= args.spark_up_to:
                spark_s, spark_m = timed(
                    f"Spark recommendForAllUsers, {n_users:,} users",
                    spark,
                    lambda model=model: (
                        model.recommendForAllUsers(args.k).write.format("noop").mode("overwrite").save()
                    ),
                )
                spark_cpu = spark_m.jvm_cpu_s + spark_m.worker_cpu_s
                row |= {
                    "Spark s": spark_s,
                    "Spark CPU s": spark_cpu,
                    "Spark JVM heap MB": spark_m.jvm_heap_mb,
                    "speed-up": spark_s / ours_s,
                    "CPU ratio": spark_cpu / row["CPU s"],
                }
            rows.append(row)
    finally:
        spark.stop()
    table = pd.DataFrame(rows).set_index("users")
    sys.stdout.write(
        f"top-{args.k} for every user x {args.items:,} items, rank {args.rank}, ~{args.seen_per_user} seen items "
        f"per user removed by ours (Spark's keeps them); {os.cpu_count()} cores, "
        f"{parallelism} default parallelism\n" + table.to_string(float_format=lambda v: f"{v:,.1f}") + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
