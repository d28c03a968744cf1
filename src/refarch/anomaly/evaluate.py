"""Precision and recall of flagged intervals against the anomalies injected into generated data.

An interval [s, s + seconds) is truly anomalous when it holds at least one reading of an
injected anomaly of the same device and sensor (label start <= last instant and end >= s).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.anomaly.settings import TableNames
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

QUALITY_DDL = (
    "run_id string, stage string, model_version string, intervals long, true_positives long, "
    "false_positives long, false_negatives long, precision double, recall double, f1 double"
)


@dataclass(frozen=True)
class Quality:
    intervals: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 0.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def metrics(self) -> dict[str, float]:
        return {
            **{k: float(v) for k, v in asdict(self).items()},
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def label_intervals(predictions: DataFrame, labels: DataFrame, seconds: int) -> DataFrame:
    """Predictions plus `label` (true when an injected anomaly touches the interval)."""
    from pyspark.sql import functions as F

    p = predictions.alias("p")
    lab = labels.select(
        F.col("Device").alias("l_device"),
        F.col("Sensor").alias("l_sensor"),
        F.col("start").cast("timestamp").alias("l_start"),
        F.col("end").cast("timestamp").alias("l_end"),
    )
    interval_end = F.col("p.interval_start") + F.expr(f"INTERVAL {int(seconds)} SECONDS")
    cond = (
        (F.col("p.device") == F.col("l_device"))
        & (F.col("p.sensor") == F.col("l_sensor"))
        & (F.col("l_start") < interval_end)
        & (F.col("l_end") >= F.col("p.interval_start"))
    )
    hits = (
        p.join(F.broadcast(lab), cond, "left_semi")
        .select("device", "sensor", "interval_start")
        .withColumn("label", F.lit(True))
    )
    return predictions.join(hits, ["device", "sensor", "interval_start"], "left").withColumn(
        "label", F.coalesce(F.col("label"), F.lit(False))
    )


def evaluate(predictions: DataFrame, labels: DataFrame, seconds: int) -> Quality:
    """Counts over all predicted intervals; labels outside them are ignored."""
    from pyspark.sql import functions as F

    labelled = label_intervals(predictions, labels, seconds)
    row = labelled.agg(
        F.count("*").alias("n"),
        F.sum((F.col("label") & F.col("is_anomaly")).cast("long")).alias("tp"),
        F.sum((~F.col("label") & F.col("is_anomaly")).cast("long")).alias("fp"),
        F.sum((F.col("label") & ~F.col("is_anomaly")).cast("long")).alias("fn"),
    ).first()
    return Quality(int(row["n"]), int(row["tp"] or 0), int(row["fp"] or 0), int(row["fn"] or 0))


def record_quality(
    tables: Tables,
    names: TableNames,
    predictions: DataFrame,
    model_version: str,
    interval_seconds: int,
    run_id: str,
    stage: str,
) -> Quality | None:
    """Precision/recall against the labels table, logged to MLflow and the quality table.

    Only generated data has labels: without a labels table nothing is computed (None).
    """
    import mlflow

    if not tables.exists(names.labels):
        log.info("no labels table: precision and recall are not computed (real data)")
        return None
    q = evaluate(predictions, tables.read(names.labels), interval_seconds)
    mlflow.log_metrics({f"{stage}_{k}": v for k, v in q.metrics().items()})
    row = (
        run_id,
        stage,
        model_version,
        q.intervals,
        q.true_positives,
        q.false_positives,
        q.false_negatives,
        q.precision,
        q.recall,
        q.f1,
    )
    tables.append(tables.spark.createDataFrame([row], QUALITY_DDL), names.quality)
    log.info("%s quality: precision %.3f, recall %.3f over %d intervals", stage, q.precision, q.recall, q.intervals)
    return q
