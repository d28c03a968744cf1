"""Batch scoring: the champion model over a date range, written per scoring date.

Results are partitioned by `scoring_date` (the day of the scored row) and written with
`overwrite_partitions`, so re-running a range replaces exactly the days of that range.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from refarch.maintenance.labels import CLASSES
from refarch.maintenance.registry import CHAMPION

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

PARTITION = "scoring_date"


class NoChampionError(LookupError):
    """There is no model with the `champion` alias to score with."""


def load_champion(model_name: str) -> tuple[PipelineModel, str]:
    """The champion's Spark pipeline and its registry version."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        version = str(MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        raise NoChampionError(
            f"no '{CHAMPION}' version of model '{model_name}': run the maintenance_training job first"
        ) from None
    model = mlflow.spark.load_model(f"models:/{model_name}/{version}")
    log.info("loaded %s version %s", model_name, version)
    return model, version


def in_range(features: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Feature rows with start <= datetime < end."""
    from pyspark.sql import functions as F

    lo = F.lit(dt.datetime.combine(start, dt.time())).cast("timestamp")
    hi = F.lit(dt.datetime.combine(end, dt.time())).cast("timestamp")
    return features.where((F.col("datetime") >= lo) & (F.col("datetime") < hi))


def score(model: PipelineModel, features: DataFrame, version: str) -> DataFrame:
    """machineID, datetime, predicted_component, prob_<class>..., model_version, scoring_date.

    One-vs-rest models give no probability column; their per-class margins are turned
    into probabilities with a softmax so every model fills the same columns. A model learns
    only the classes up to the highest one in its training rows: a component that never
    failed there (rare in a short history) gets probability 0 rather than a failed job.
    """
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    scored = model.transform(features)
    if "probability" in scored.columns:
        probs = vector_to_array("probability")
    else:
        raw = vector_to_array("rawPrediction")
        exp = F.transform(raw, lambda x: F.exp(x))
        total = F.aggregate(exp, F.lit(0.0), lambda acc, x: acc + x)
        probs = F.transform(exp, lambda x: x / total)
    names = F.array(*[F.lit(c) for c in CLASSES])
    scored = scored.withColumn("_p", probs)
    return scored.select(
        "machineID",
        "datetime",
        F.element_at(names, F.col("prediction").cast("int") + 1).alias("predicted_component"),
        *[F.coalesce(F.get("_p", i), F.lit(0.0)).alias(f"prob_{c}") for i, c in enumerate(CLASSES)],
        F.lit(version).alias("model_version"),
        F.to_date("datetime").alias(PARTITION),
    )


def write_scores(tables: Tables, scores: DataFrame, table: str) -> None:
    """Replace the days present in `scores`; all other days of `table` stay as they were."""
    tables.overwrite_partitions(scores, table, [PARTITION])
