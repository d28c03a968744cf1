"""The run log: one row per (stage, device, sensor) and run, so a failing group is visible, not fatal.

Statuses: ok, bad_readings, too_few_intervals, failed (training); ok, missing_model,
model_unreadable, no_intervals, failed (scoring); ok (whole-stage summaries, no device).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

RUN_LOG_DDL = (
    "run_id string, stage string, device string, sensor string, status string, rows long, "
    "seconds double, model_version string, message string, logged_at timestamp"
)
RUN_LOG_COLUMNS = [c.strip().split(" ")[0] for c in RUN_LOG_DDL.split(",")]


def new_run_id(stage: str) -> str:
    """Sortable and unique: `<stage>-<UTC time>-<6 hex>`."""
    return f"{stage}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def to_run_log(df: DataFrame, run_id: str, stage: str) -> DataFrame:
    """Give per-group rows (device, sensor, status, rows, seconds, model_version, message) the log's shape."""
    from pyspark.sql import functions as F

    return df.select(
        F.lit(run_id).alias("run_id"),
        F.lit(stage).alias("stage"),
        F.col("device").cast("string"),
        F.col("sensor").cast("string"),
        F.col("status").cast("string"),
        F.col("rows").cast("long"),
        F.col("seconds").cast("double"),
        F.col("model_version").cast("string"),
        F.col("message").cast("string"),
        F.current_timestamp().alias("logged_at"),
    )


def summary_rows(spark: SparkSession, run_id: str, stage: str, rows: list[dict[str, Any]]) -> DataFrame:
    """Whole-stage or per-group rows built on the driver (e.g. groups without a model)."""
    from pyspark.sql import functions as F

    full = [
        (
            r.get("device"),
            r.get("sensor"),
            r["status"],
            int(r.get("rows", 0)),
            float(r.get("seconds", 0.0)),
            r.get("model_version"),
            r.get("message", ""),
        )
        for r in rows
    ]
    df = spark.createDataFrame(
        full,
        "device string, sensor string, status string, rows long, seconds double, model_version string, message string",
    )
    return to_run_log(df, run_id, stage).withColumn("logged_at", F.current_timestamp())


def append_run_log(tables: Tables, table: str, df: DataFrame) -> None:
    tables.append(df.select(*RUN_LOG_COLUMNS), table)
