"""Features of each machine every few hours, from data up to that moment only.

Readings are first summed into buckets of `step_hours` that end on the grid (a bucket
ending at e holds the readings in (e - step, e]). Buckets, error counts, maintenance
records and the grid of feature times are stacked into one frame keyed by (machineID,
epoch seconds). Windows ordered by epoch seconds with `rangeBetween(-(w - step), 0)` then
see exactly the readings in (t - w, t]: nothing after t can reach a feature at t, whatever
the row order. Ties at t count, so a replacement logged at t is already "0 days ago" at t.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from refarch.datasets.maintenance import COMPONENTS, ERROR_TYPES, SENSORS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

HOUR = 3600
DAY = 86400


@dataclass(frozen=True)
class FeatureSpec:
    """Window lengths and the spacing of feature rows, in hours (from `settings.features.spec()`)."""

    short_hours: int
    long_hours: int
    error_hours: int
    step_hours: int

    def __post_init__(self) -> None:
        if min(self.short_hours, self.long_hours, self.error_hours, self.step_hours) < 1:
            raise ValueError("window lengths and step must be at least one hour")
        for name in ("short_hours", "long_hours", "error_hours"):
            if getattr(self, name) % self.step_hours:
                raise ValueError(f"{name} ({getattr(self, name)}) must be a multiple of step_hours ({self.step_hours})")


def feature_columns(spec: FeatureSpec) -> list[str]:
    """The numeric feature columns, in a fixed order (the model's input order)."""
    cols = []
    for hours in (spec.short_hours, spec.long_hours):
        for s in SENSORS:
            cols += [f"{s}_mean_{hours}h", f"{s}_std_{hours}h"]
    cols += [f"{e}_count_{spec.error_hours}h" for e in ERROR_TYPES]
    cols += [f"{c}_days_since_replacement" for c in COMPONENTS]
    cols += ["age"]
    return cols


CATEGORICAL_COLUMNS = ("model",)


def grid(spark: SparkSession, machines: DataFrame, start: dt.date, end: dt.date, step_hours: int) -> DataFrame:
    """One row per machine every `step_hours` in [start, end), aligned to UTC midnight."""
    from pyspark.sql import functions as F

    step = step_hours * HOUR
    first = _epoch(start)
    first += -first % step
    stop = _epoch(end)
    if stop <= first:
        raise ValueError(f"empty feature range: start {start} is not before end {end}")
    times = spark.range(first, stop, step).select(F.col("id").alias("ts"))
    return machines.select("machineID").distinct().crossJoin(times)


def build_features(
    telemetry: DataFrame,
    errors: DataFrame,
    maint: DataFrame,
    machines: DataFrame,
    start: dt.date,
    end: dt.date,
    spec: FeatureSpec,
) -> DataFrame:
    """Feature rows for [start, end): rolling sensor statistics, error counts, component ages.

    Maintenance before `start` counts (a component replaced last year is a year old).
    A component with no replacement on record gets the days since the first maintenance
    record of the whole history, a lower bound of its true age.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = telemetry.sparkSession
    step = spec.step_hours * HOUR
    lookback = max(spec.short_hours, spec.long_hours, spec.error_hours) * HOUR
    lo, hi = _epoch(start) - lookback, _epoch(end)
    # Compare the timestamp column itself so Parquet/Delta can skip files and row groups.
    first_ts = F.timestamp_seconds(F.lit(lo + 1))
    period = (F.col("datetime") >= first_ts) & (F.col("datetime") < F.timestamp_seconds(F.lit(hi)))
    ts = F.unix_timestamp("datetime")
    # Readings in (e - step, e] go to the bucket that ends at e, a multiple of step.
    bucket = (F.ceil(ts / step) * step).cast("long").alias("ts")

    tel = (
        telemetry.where(period)
        .groupBy("machineID", bucket)
        .agg(
            *[
                agg
                for s in SENSORS
                for agg in (
                    F.sum(s).alias(f"_{s}_sum"),
                    F.sum(F.col(s) * F.col(s)).alias(f"_{s}_sq"),
                    F.count(s).alias(f"_{s}_n"),
                )
            ]
        )
    )
    err = (
        errors.where(period)
        .groupBy("machineID", bucket)
        .agg(*[F.count(F.when(F.col("errorID") == e, 1)).alias(f"_{e}") for e in ERROR_TYPES])
    )
    rep = maint.select(
        "machineID",
        ts.alias("ts"),
        *[F.when(F.col("comp") == c, ts).alias(f"_{c}_replaced") for c in COMPONENTS],
    ).where(F.col("datetime") < F.timestamp_seconds(F.lit(hi)))
    history_start = maint.agg(F.min(ts)).first()[0]
    points = grid(spark, machines, start, end, spec.step_hours).withColumn("_grid", F.lit(True))

    stacked = (
        points.unionByName(tel, allowMissingColumns=True)
        .unionByName(err, allowMissingColumns=True)
        .unionByName(rep, allowMissingColumns=True)
    )
    by_machine = Window.partitionBy("machineID").orderBy("ts")

    def last(hours: int) -> Window:
        """Buckets ending in (t - hours, t]: together exactly the readings of that span."""
        return by_machine.rangeBetween(-(hours * HOUR - step), 0)

    history = by_machine.rangeBetween(Window.unboundedPreceding, 0)
    fallback = F.lit(history_start if history_start is not None else lo)
    aggregates = []
    for hours in (spec.short_hours, spec.long_hours):
        w = last(hours)
        for s in SENSORS:
            total, squares, n = (F.sum(f"_{s}_{k}").over(w) for k in ("sum", "sq", "n"))
            variance = (squares - total * total / n) / (n - 1)
            aggregates += [
                (total / n).alias(f"{s}_mean_{hours}h"),
                F.when(n > 1, F.sqrt(F.greatest(variance, F.lit(0.0)))).alias(f"{s}_std_{hours}h"),
            ]
    aggregates += [
        F.coalesce(F.sum(f"_{e}").over(last(spec.error_hours)), F.lit(0))
        .cast("int")
        .alias(f"{e}_count_{spec.error_hours}h")
        for e in ERROR_TYPES
    ]
    aggregates += [
        ((F.col("ts") - F.coalesce(F.max(f"_{c}_replaced").over(history), fallback)) / DAY).alias(
            f"{c}_days_since_replacement"
        )
        for c in COMPONENTS
    ]
    rows = stacked.select("machineID", "ts", "_grid", *aggregates).where(F.col("_grid"))
    out = rows.join(F.broadcast(machines.select("machineID", "model", "age")), "machineID", "left").select(
        "machineID",
        F.timestamp_seconds("ts").alias("datetime"),
        "model",
        *feature_columns(spec),
    )
    log.info("features for %s .. %s every %dh", start, end, spec.step_hours)
    return out


def _epoch(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc).timestamp())
