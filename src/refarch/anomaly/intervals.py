"""Fixed intervals per (device, sensor): mean, std, min, max and count of the readings in each.

Intervals are aligned to the epoch (`floor(ts / seconds) * seconds`), so the same reading
always falls in the same interval whatever window is aggregated, and an hour is made of
whole intervals (the interval length must divide an hour).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.anomaly.settings import TableNames
    from refarch.runtime.tables import Tables


def readings_in_window(readings: DataFrame, start: dt.datetime, end: dt.datetime) -> DataFrame:
    """Readings with start <= TS < end (the date filter lets Spark skip whole partitions)."""
    from pyspark.sql import functions as F

    return readings.filter(
        (F.col("date") >= F.lit(start.date()))
        & (F.col("date") <= F.lit(end.date()))
        & (F.col("TS") >= F.lit(start))
        & (F.col("TS") < F.lit(end))
    )


def aggregate_intervals(readings: DataFrame, seconds: int) -> DataFrame:
    """One row per (device, sensor, interval); duplicate readings (same TS) count once.

    std is the sample standard deviation, 0 for an interval with a single reading.
    """
    from pyspark.sql import functions as F

    if seconds < 1 or 3600 % seconds:
        raise ValueError(f"interval of {seconds} s: must be at least 1 s and divide an hour")
    epoch = F.unix_timestamp("TS")
    start = F.timestamp_seconds(F.floor(epoch / seconds) * seconds)
    out = (
        readings.dropDuplicates(["TS", "Device", "Sensor"])
        .withColumn("interval_start", start)
        .groupBy(F.col("Device").alias("device"), F.col("Sensor").alias("sensor"), "interval_start")
        .agg(
            F.avg("Value").alias("mean"),
            F.coalesce(F.stddev_samp("Value"), F.lit(0.0)).alias("std"),
            F.min("Value").alias("min"),
            F.max("Value").alias("max"),
            F.count("Value").cast("long").alias("count"),
        )
    )
    return out.withColumn("date", F.to_date("interval_start")).withColumn("hour", F.hour("interval_start"))


def newest_reading(readings: DataFrame) -> dt.datetime | None:
    from pyspark.sql import functions as F

    return readings.agg(F.max("TS").alias("m")).first()["m"]


def resolve_window(
    newest: dt.datetime | None, window_end: dt.datetime | None, hours: int
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of whole hours: ending at `window_end`, else at the end of the newest reading's hour."""
    if hours < 1:
        raise ValueError("the window must span at least one hour")
    if window_end is None:
        if newest is None:
            raise LookupError("no readings yet: land and ingest readings first")
        end = newest.replace(minute=0, second=0, microsecond=0, tzinfo=None) + dt.timedelta(hours=1)
    else:
        end = window_end.replace(tzinfo=None)
        if end != end.replace(minute=0, second=0, microsecond=0):
            raise ValueError(f"window end {end.isoformat()} is not on the hour")
    return end - dt.timedelta(hours=hours), end


def window_for(
    tables: Tables, names: TableNames, window_end: dt.datetime | None, hours: int
) -> tuple[dt.datetime, dt.datetime]:
    """`hours` whole hours ending at `window_end`, else at the end of the newest reading's hour."""
    newest = newest_reading(tables.read(names.readings)) if window_end is None else None
    return resolve_window(newest, window_end, hours)


def starting_within(df: DataFrame, start: dt.datetime, end: dt.datetime, column: str = "interval_start") -> DataFrame:
    """Rows with start <= column < end."""
    from pyspark.sql import functions as F

    return df.filter((F.col(column) >= F.lit(start)) & (F.col(column) < F.lit(end)))


def write_intervals(tables: Tables, names: TableNames, start: dt.datetime, end: dt.datetime, seconds: int) -> DataFrame:
    """Aggregate [start, end) into the intervals table (replacing those hours) and return them."""
    readings = readings_in_window(tables.read(names.readings), start, end)
    tables.overwrite_partitions(aggregate_intervals(readings, seconds), names.intervals, ["date", "hour"])
    return starting_within(tables.read(names.intervals), start, end)
