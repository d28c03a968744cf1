"""Score a window: every (device, sensor) group's own model scores its intervals, a shard per task.

The intervals, joined with the model set's index, are hash-partitioned by (device, sensor)
exactly as training partitioned them (`manifest.shard_count` partitions), so each `mapInPandas`
task downloads one shard blob once and scores all its rows together (`shards.ShardScorer`:
vectorised for OneClassSVM). One pass returns two kinds of rows — predictions and one run-log
row per group — so a group without a model, with an unreadable shard or failing while scoring is
recorded and the other groups still score. Groups that have a model but no intervals in the
window are found on the driver and logged as `no_intervals`.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from refarch.anomaly.evaluate import Quality, record_quality
from refarch.anomaly.runlog import append_run_log, summary_rows, to_run_log
from refarch.anomaly.shards import ShardScorer
from refarch.runtime.blob import BlobLocation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.anomaly.registry import Manifest
    from refarch.anomaly.settings import Settings
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

SCORED_SCHEMA = (
    "record string, device string, sensor string, interval_start timestamp, score double, "
    "is_anomaly boolean, model_version string, status string, rows long, seconds double, message string, "
    "download_seconds double, unpack_seconds double, predict_seconds double"
)
SCORED_COLUMNS = [c.strip().split(" ")[0] for c in SCORED_SCHEMA.split(",")]
PREDICTION_COLUMNS = ("device", "sensor", "interval_start", "score", "is_anomaly", "model_version")
LOG_COLUMNS = ("device", "sensor", "status", "rows", "seconds", "model_version", "message")


def _group_log(rows: pd.DataFrame, status: str, message: str | pd.Series, seconds: float) -> pd.DataFrame:
    """One log row per (device, sensor) of `rows`; `seconds` is shared out by the groups' row counts."""
    counts = rows.groupby(["device", "sensor"], sort=False).agg(
        rows=("device", "size"), model_version=("model_version", "first")
    )
    counts = counts.reset_index()
    total = max(int(counts["rows"].sum()), 1)
    return pd.DataFrame(
        {
            "record": "log",
            "device": counts["device"],
            "sensor": counts["sensor"],
            "interval_start": pd.NaT,
            "score": np.nan,
            "is_anomaly": None,
            "model_version": counts["model_version"],
            "status": status,
            "rows": counts["rows"].astype("int64"),
            "seconds": seconds * counts["rows"] / total,
            "message": message if isinstance(message, str) else message.to_numpy(),
        }
    )


def score_shard(
    rows: pd.DataFrame, location: BlobLocation, features: Sequence[str], blob: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions, log rows) of the groups whose models live in `blob`."""
    from azure.core.exceptions import ResourceNotFoundError

    started = time.perf_counter()
    try:
        data = location.container_client().download_blob(blob).readall()
    except Exception as err:  # a missing or unreadable shard is logged; the other shards go on
        detail = (
            f"model shard {blob} not found"
            if isinstance(err, ResourceNotFoundError)
            else f"model shard {blob}: {type(err).__name__}: {err}"[:500]
        )
        return pd.DataFrame(), _group_log(rows, "model_unreadable", detail, time.perf_counter() - started)
    downloaded = time.perf_counter() - started
    bank = None
    if pd.notna(rows["bank_offset"].iat[0]):
        bank = (int(rows["bank_offset"].iat[0]), int(rows["bank_length"].iat[0]))
    scorer = ShardScorer(data, bank)
    try:
        scores = scorer.score(rows, features)
    except Exception as err:  # a shard that cannot score these rows must not fail the others
        message = f"{type(err).__name__}: {err}"[:500]
        return pd.DataFrame(), _group_log(rows, "failed", message, time.perf_counter() - started)
    flags = scores > 0
    predictions = pd.DataFrame(
        {
            "record": "prediction",
            "device": rows["device"].to_numpy(),
            "sensor": rows["sensor"].to_numpy(),
            "interval_start": rows["interval_start"].to_numpy(),
            "score": scores,
            "is_anomaly": flags,
            "model_version": rows["model_version"].to_numpy(),
            "status": "ok",
            "rows": 1,
            "seconds": np.nan,
            "message": None,
        }
    )
    flagged = (
        pd.Series(flags, index=rows.index).groupby([rows["device"], rows["sensor"]], sort=False).agg(["sum", "size"])
    )
    messages = pd.Series(
        [f"{int(f)} of {int(n)} interval(s) flagged" for f, n in zip(flagged["sum"], flagged["size"], strict=True)]
    )
    logs = _group_log(rows, "ok", messages, time.perf_counter() - started)
    share = logs["rows"] / max(int(logs["rows"].sum()), 1)  # the shard's times shared out like `seconds`
    logs["download_seconds"] = downloaded * share
    logs["unpack_seconds"] = scorer.times.unpack * share
    logs["predict_seconds"] = scorer.times.predict * share
    return predictions, logs


def score_partition(pdf: pd.DataFrame, location: BlobLocation, features: Sequence[str]) -> pd.DataFrame:
    """Predictions and log rows of one task's rows (normally exactly one shard)."""
    parts = []
    missing = pdf[pdf["blob"].isna()]
    if len(missing):
        parts.append(
            _group_log(missing, "missing_model", "no model for this device and sensor in the registered model set", 0.0)
        )
    for blob, rows in pdf[pdf["blob"].notna()].groupby("blob", sort=True):
        predictions, logs = score_shard(rows, location, features, str(blob))
        parts.extend(p for p in (predictions, logs) if len(p))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SCORED_COLUMNS)
    for c in ("download_seconds", "unpack_seconds", "predict_seconds"):
        if c not in out:
            out[c] = np.nan
    return out.loc[:, SCORED_COLUMNS]


@dataclass
class Scored:
    """The two outputs of one scoring pass (the combined frame is cached: unpersist when done)."""

    combined: DataFrame

    @property
    def predictions(self) -> DataFrame:
        from pyspark.sql import functions as F

        return self.combined.filter(F.col("record") == "prediction").select(*PREDICTION_COLUMNS)

    @property
    def group_log(self) -> DataFrame:
        from pyspark.sql import functions as F

        return self.combined.filter(F.col("record") == "log").select(*LOG_COLUMNS)

    def unpersist(self) -> None:
        self.combined.unpersist()


def score_intervals(
    intervals: DataFrame, models: DataFrame, location: BlobLocation, features: tuple[str, ...], shards: int
) -> Scored:
    """`models` is the model set's index (`Manifest.frame`); intervals without a model are logged.

    `shards`: the count the set was trained with, so each task meets one shard.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    joined = (
        intervals.select("device", "sensor", "interval_start", *features)
        .join(F.broadcast(models), ["device", "sensor"], "left")
        .repartition(shards, "device", "sensor")
    )

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        frames = [b for b in batches if len(b)]
        if frames:
            yield score_partition(pd.concat(frames, ignore_index=True), location, features)

    combined = joined.mapInPandas(run, SCORED_SCHEMA)
    return Scored(combined.persist(StorageLevel.MEMORY_AND_DISK))


def groups_without_intervals(intervals: DataFrame, models: DataFrame) -> DataFrame:
    """Groups of the model set with no interval in the window, as run-log rows (`no_intervals`)."""
    from pyspark.sql import functions as F

    present = intervals.select("device", "sensor").distinct()
    return models.join(present, ["device", "sensor"], "left_anti").select(
        "device",
        "sensor",
        F.lit("no_intervals").alias("status"),
        F.lit(0).cast("long").alias("rows"),
        F.lit(0.0).alias("seconds"),
        "model_version",
        F.lit("no intervals in the window: nothing to score").alias("message"),
    )


def upload_predictions(predictions: DataFrame, location: BlobLocation, prefix: str) -> DataFrame:
    """Write `predictions/<date>/<hour>/predictions.parquet` per hour, in parallel; returns what was written.

    Blob names depend only on the hour, so re-scoring a window replaces its files.
    """
    from pyspark.sql import functions as F

    def upload(pdf: pd.DataFrame) -> pd.DataFrame:
        first = pd.Timestamp(pdf["interval_start"].iat[0])
        name = f"{prefix.rstrip('/')}/{first:%Y-%m-%d}/{first:%H}/predictions.parquet"
        buf = io.BytesIO()
        pdf.drop(columns=["date", "hour"]).sort_values(["device", "sensor", "interval_start"]).to_parquet(
            buf, index=False
        )
        location.container_client().upload_blob(name, buf.getvalue(), overwrite=True)
        return pd.DataFrame([{"blob": name, "rows": len(pdf)}])

    hourly = predictions.withColumn("date", F.to_date("interval_start")).withColumn("hour", F.hour("interval_start"))
    return hourly.groupBy("date", "hour").applyInPandas(upload, "blob string, rows long")


@dataclass
class ScoreResult:
    window: tuple[dt.datetime, dt.datetime]
    model_version: str
    groups: pd.DataFrame  # the run log rows of this run's groups
    predictions: int
    flagged: int
    blobs: list[str]
    seconds: float
    quality: Quality | None

    @property
    def models_per_second(self) -> float:
        scored = int((self.groups["status"] == "ok").sum())
        return scored / self.seconds if self.seconds else 0.0


def score_window(
    tables: Tables,
    settings: Settings,
    intervals: DataFrame,
    manifest: Manifest,
    location: BlobLocation,
    window: tuple[dt.datetime, dt.datetime],
    run_id: str,
) -> ScoreResult:
    """Score the window's intervals with the model set; predictions to the table and to Blob storage.

    Runs inside an active MLflow run; every group's status goes to the run log.
    """
    import mlflow
    from pyspark.sql import functions as F

    start, end = window
    spark = tables.spark
    models = manifest.frame(spark)
    started = time.perf_counter()
    scored = score_intervals(intervals, models, location, manifest.features, manifest.shard_count)
    try:
        predictions = scored.predictions.withColumn("date", F.to_date("interval_start")).withColumn(
            "hour", F.hour("interval_start")
        )
        tables.overwrite_partitions(predictions, settings.tables.predictions, ["date", "hour"])
        written = upload_predictions(scored.predictions, location, settings.blob.predictions_prefix).collect()
        seconds = time.perf_counter() - started
        group_log = scored.group_log.unionByName(groups_without_intervals(intervals, models))
        groups = group_log.toPandas()
        append_run_log(tables, settings.tables.run_log, to_run_log(group_log, run_id, "score"))
        counts = scored.predictions.agg(
            F.count("*").alias("n"), F.sum(F.col("is_anomaly").cast("long")).alias("flagged")
        ).first()
        quality = record_quality(
            tables, settings.tables, scored.predictions, manifest.version, manifest.interval_seconds, run_id, "score"
        )
    finally:
        scored.unpersist()
    n, flagged = int(counts["n"]), int(counts["flagged"] or 0)
    by_status = groups["status"].value_counts().to_dict()
    mlflow.log_params(
        {"window_start": start.isoformat(), "window_end": end.isoformat(), "model_version": manifest.version}
    )
    mlflow.log_metrics(
        {
            "predictions": float(n),
            "flagged": float(flagged),
            "score_seconds": seconds,
            **{f"groups_{k}": float(v) for k, v in by_status.items()},
        }
    )
    summary = {
        "status": "ok",
        "rows": n,
        "seconds": seconds,
        "model_version": manifest.version,
        "message": f"window [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}): {flagged} of {n} interval(s) flagged; "
        + ", ".join(f"{v} {k}" for k, v in sorted(by_status.items())),
    }
    append_run_log(tables, settings.tables.run_log, summary_rows(spark, run_id, "score", [summary]))
    return ScoreResult(
        (start, end), manifest.version, groups, n, flagged, [r["blob"] for r in written], seconds, quality
    )
