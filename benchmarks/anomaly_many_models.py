"""Many-models benchmark: train and score 10,000 (device, sensor) models with Spark on this machine.

Generates readings for D devices x S sensors (one reading a minute), aggregates them into
5-minute intervals (12 per model and hour), trains one StandardScaler + OneClassSVM per
group with `groupBy().applyInPandas` (models to Azurite), then scores the next hour with
every group's own model (loaded from Azurite). Prints models per second for both; the
reference runs ~1.4 s per model per process.

    .venv/bin/python benchmarks/anomaly_many_models.py [--devices 2000 --sensors 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--sensors", type=int, default=5)
    ap.add_argument("--interval-seconds", type=int, default=300)
    ap.add_argument("--partitions", type=int, default=8, help="Spark partitions the groups are spread over")
    args = ap.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="refarch-bench-anomaly-"))
    os.environ.update(REFARCH_HOME=str(home), REFARCH_ROOT=str(ROOT), REFARCH_TARGET="local")
    from refarch.runtime.blob import AZURITE_PORT_ENV, AzuriteServer, BlobLocation, ensure_container, free_port

    with AzuriteServer(home / "azurite", free_port(), root=ROOT) as azurite:
        os.environ[AZURITE_PORT_ENV] = str(azurite.port)
        location = BlobLocation("bench", connection_string=azurite.connection_string)
        ensure_container(location.container_client())
        return run(args, location)


def run(args: argparse.Namespace, location) -> int:
    from pyspark.sql import functions as F

    from refarch.anomaly.intervals import aggregate_intervals
    from refarch.anomaly.score import score_intervals
    from refarch.anomaly.settings import Settings
    from refarch.anomaly.train import new_model_version, train_models
    from refarch.datasets.sensors import SensorSpec, generate_hour
    from refarch.runtime import get_spark, load_config

    config = load_config("anomaly")
    settings = config.settings(Settings).model  # the detector of conf/anomaly.yml (OneClassSVM)
    spark = get_spark(config)
    spark.conf.set("spark.sql.shuffle.partitions", str(args.partitions))
    groups = args.devices * args.sensors
    spec = SensorSpec(args.devices, args.sensors, step_seconds=60, anomaly_rate=0.1, seed=1)
    t0 = dt.datetime(2026, 1, 1)

    def intervals_for(hour: dt.datetime):
        readings, _ = generate_hour(spec, hour)
        df = spark.createDataFrame(readings).withColumn("date", F.to_date("TS"))
        return aggregate_intervals(df, args.interval_seconds).cache()

    started = time.perf_counter()
    train_iv, score_iv = intervals_for(t0), intervals_for(t0 + dt.timedelta(hours=1))
    n_train, n_score = train_iv.count(), score_iv.count()
    prep = time.perf_counter() - started
    print(
        f"{groups} (device, sensor) groups; {n_train} training and {n_score} scoring intervals "
        f"({n_train // groups} per model); data prepared in {prep:.1f} s"
    )

    version = new_model_version()
    started = time.perf_counter()
    trained = train_models(train_iv, location, settings, "models", version).toPandas()
    train_s = time.perf_counter() - started
    ok = trained[trained["status"] == "ok"]
    print(
        f"train: {len(ok)} of {len(trained)} models trained and uploaded in {train_s:.1f} s "
        f"= {len(trained) / train_s:.1f} models/s (mean {trained['seconds'].mean() * 1000:.1f} ms in-group)"
    )

    manifest = spark.createDataFrame(ok[["device", "sensor", "blob"]].assign(model_version=version))
    started = time.perf_counter()
    scored = score_intervals(score_iv, manifest, location, settings.features)
    status = scored.group_log.groupBy("status").count().collect()
    flagged = scored.predictions.filter("is_anomaly").count()
    score_s = time.perf_counter() - started
    n_scored = sum(r["count"] for r in status if r["status"] == "ok")
    print(
        f"score: {n_scored} models loaded from blob storage and scored in {score_s:.1f} s "
        f"= {n_scored / score_s:.1f} models/s; {flagged} of {n_score} intervals flagged; "
        f"statuses {sorted((r['status'], r['count']) for r in status)}"
    )
    print(f"reference: ~1.4 s per model per process = {1 / 1.4:.2f} models/s per process")
    scored.unpersist()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
