"""The label of a feature row: the component that fails within the next hours, or `none`.

Labels are the only thing that looks forward; they live apart from the features so a
reader can check that nothing after t feeds a feature at t.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from refarch.datasets.maintenance import COMPONENTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NO_FAILURE = "none"
CLASSES = (NO_FAILURE, *COMPONENTS)
"""Label values; the position is the label index the classifier learns."""


def add_labels(rows: DataFrame, failures: DataFrame, horizon_hours: int) -> DataFrame:
    """Add `label`: the first component failing in (t, t + horizon]; `none` if none does.

    When two components fail at the same moment, the one first by name wins (rare in the
    data, and a single-label classifier must pick one).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if horizon_hours < 1:
        raise ValueError("horizon_hours must be at least 1")
    keyed = rows.withColumn("_ts", F.unix_timestamp("datetime")).withColumn("_row", F.lit(True))
    events = failures.select(
        "machineID",
        F.unix_timestamp("datetime").alias("_ts"),
        F.struct(F.unix_timestamp("datetime").alias("ts"), F.col("failure").alias("comp")).alias("_fail"),
    )
    ahead = Window.partitionBy("machineID").orderBy("_ts").rangeBetween(1, horizon_hours * 3600)
    stacked = keyed.unionByName(events, allowMissingColumns=True)
    first = F.min("_fail").over(ahead)
    return (
        stacked.withColumn("label", F.coalesce(first.getField("comp"), F.lit(NO_FAILURE)))
        .where(F.col("_row"))
        .drop("_ts", "_row", "_fail")
    )
