"""Score a window: each (device, sensor) group's own model scores its intervals, in parallel.

One `applyInPandas` pass returns two kinds of rows — predictions and one run-log row per
group — so a group without a model, with an unreadable model or failing while scoring is
recorded and the other groups still score. Groups that have a model but no intervals in
the window are found on the driver and logged as `no_intervals`.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from refarch.anomaly.detectors import loads, score_detector
from refarch.anomaly.evaluate import Quality, record_quality
from refarch.anomaly.runlog import append_run_log, summary_rows, to_run_log
from refarch.runtime.blob import BlobLocation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.anomaly.registry import Manifest
    from refarch.anomaly.settings import Settings
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

SCORED_SCHEMA = (
    "record string, device string, sensor string, interval_start timestamp, score double, "
    "is_anomaly boolean, model_version string, status string, rows long, seconds double, message string"
)
PREDICTION_COLUMNS = ("device", "sensor", "interval_start", "score", "is_anomaly", "model_version")
LOG_COLUMNS = ("device", "sensor", "status", "rows", "seconds", "model_version", "message")


def _log_row(
    device: str, sensor: str, status: str, rows: int, seconds: float, version: str | None, message: str
) -> dict:
    return {
        "record": "log",
        "device": device,
        "sensor": sensor,
        "interval_start": None,
        "score": None,
        "is_anomaly": None,
        "model_version": version,
        "status": status,
        "rows": rows,
        "seconds": seconds,
        "message": message,
    }


def score_group(pdf: pd.DataFrame, location: BlobLocation, features: tuple[str, ...]) -> pd.DataFrame:
    """Predictions for one group's intervals plus its run-log row."""
    from azure.core.exceptions import ResourceNotFoundError

    started = time.perf_counter()
    device, sensor = str(pdf["device"].iat[0]), str(pdf["sensor"].iat[0])
    blob, version = pdf["blob"].iat[0], pdf["model_version"].iat[0]
    n = len(pdf)
    if blob is None or pd.isna(blob):
        row = _log_row(
            device,
            sensor,
            "missing_model",
            n,
            time.perf_counter() - started,
            None,
            "no model for this device and sensor in the registered model set",
        )
        return pd.DataFrame([row])
    try:
        model = loads(location.container_client().download_blob(blob).readall())
    except Exception as err:  # a missing or corrupt model is logged; the other groups go on
        detail = (
            f"model blob {blob} not found"
            if isinstance(err, ResourceNotFoundError)
            else f"model blob {blob}: {type(err).__name__}: {err}"[:500]
        )
        row = _log_row(device, sensor, "model_unreadable", n, time.perf_counter() - started, version, detail)
        return pd.DataFrame([row])
    try:
        scores, flags = score_detector(model, pdf, features)
    except Exception as err:  # a model that cannot score these rows must not fail the others
        row = _log_row(
            device, sensor, "failed", n, time.perf_counter() - started, version, f"{type(err).__name__}: {err}"[:500]
        )
        return pd.DataFrame([row])
    row = _log_row(
        device,
        sensor,
        "ok",
        n,
        time.perf_counter() - started,
        version,
        f"{int(flags.sum())} of {n} interval(s) flagged",
    )
    # predictions, then the group's log row: built column by column (no all-NA frames to concat)
    return pd.DataFrame(
        {
            "record": ["prediction"] * n + ["log"],
            "device": [device] * (n + 1),
            "sensor": [sensor] * (n + 1),
            "interval_start": [*pd.to_datetime(pdf["interval_start"]), pd.NaT],
            "score": [*scores.astype(float), None],
            "is_anomaly": [*flags.astype(bool), None],
            "model_version": [version] * (n + 1),
            "status": ["ok"] * (n + 1),
            "rows": [1] * n + [n],
            "seconds": [None] * n + [row["seconds"]],
            "message": [None] * n + [row["message"]],
        }
    )


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
    intervals: DataFrame, models: DataFrame, location: BlobLocation, features: tuple[str, ...]
) -> Scored:
    """`models` has device, sensor, blob, model_version (the manifest); intervals without one are logged."""
    from pyspark import StorageLevel

    joined = intervals.select("device", "sensor", "interval_start", *features).join(
        models.select("device", "sensor", "blob", "model_version"), ["device", "sensor"], "left"
    )

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return score_group(pdf, location, features)

    combined = joined.groupBy("device", "sensor").applyInPandas(run, SCORED_SCHEMA)
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
    scored = score_intervals(intervals, models, location, manifest.features)
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
