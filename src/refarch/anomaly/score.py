"""Score a window: each (device, sensor) group's own model scores its intervals, in parallel.

One `applyInPandas` pass returns two kinds of rows — predictions and one run-log row per
group — so a group without a model, with an unreadable model or failing while scoring is
recorded and the other groups still score. Groups that have a model but no intervals in
the window are found on the driver and logged as `no_intervals`.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from refarch.anomaly.models import loads, score_detector
from refarch.runtime.blob import BlobLocation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

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
