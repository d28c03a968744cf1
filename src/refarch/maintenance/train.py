"""Train the failure classifier: temporal split, class imbalance, MLlib pipeline, evaluation.

Rows of the `none` class outnumber failures about 50 to 1. Training keeps every failure
row, a sample of the `none` rows, and weights classes so each counts about the same
(`class_weight_power` softens the weights: 1 is fully balanced, 0 is none).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from refarch.maintenance.features import CATEGORICAL_COLUMNS, FeatureSpec, feature_columns
from refarch.maintenance.labels import CLASSES

if TYPE_CHECKING:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.sql import DataFrame

    from refarch.maintenance.settings import Train

log = logging.getLogger(__name__)

FAILURE_CLASSES = CLASSES[1:]


def label_index(df: DataFrame) -> DataFrame:
    """`label_index`: the position of `label` in CLASSES (the index the model learns)."""
    from pyspark.sql import functions as F

    expr = F.lit(None).cast("double")
    for i, c in enumerate(CLASSES):
        expr = F.when(F.col("label") == c, float(i)).otherwise(expr)
    return df.withColumn("label_index", expr)


def temporal_split(df: DataFrame, split_date: dt.date) -> tuple[DataFrame, DataFrame]:
    """(train: rows before split_date, test: rows from split_date on).

    A row's label looks 24 hours ahead, so the last training day's labels may be from
    the first test day: the split is on the feature time, as it would be in production.
    """
    from pyspark.sql import functions as F

    cut = F.lit(dt.datetime.combine(split_date, dt.time())).cast("timestamp")
    return df.where(F.col("datetime") < cut), df.where(F.col("datetime") >= cut)


def balance(train: DataFrame, settings: Train) -> DataFrame:
    """Keep all failure rows and a sample of `none`; add `weight` that evens out the classes."""
    from pyspark.sql import functions as F

    sampled = train.where((F.col("label") != CLASSES[0]) | (F.rand(settings.seed) < F.lit(settings.negative_fraction)))
    counts = {r["label"]: r["count"] for r in sampled.groupBy("label").count().collect()}
    total = sum(counts.values())
    if len(counts) < 2:
        raise ValueError(f"training data has only the classes {sorted(counts)}: nothing to learn")
    weights = {c: (total / (len(counts) * n)) ** settings.class_weight_power for c, n in counts.items()}
    log.info("training rows per class %s, weights %s", counts, {k: round(v, 2) for k, v in weights.items()})
    expr = F.lit(1.0)
    for c, w in weights.items():
        expr = F.when(F.col("label") == c, float(w)).otherwise(expr)
    return sampled.withColumn("weight", expr)


def build_pipeline(settings: Train, spec: FeatureSpec) -> Pipeline:
    """Impute gaps (a machine that sent nothing for a day), index the model, assemble, classify."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier, OneVsRest, RandomForestClassifier
    from pyspark.ml.feature import Imputer, StringIndexer, VectorAssembler

    numeric = feature_columns(spec)
    imputed = [f"{c}__imputed" for c in numeric]
    imputer = Imputer(inputCols=numeric, outputCols=imputed, strategy="median")
    indexers = [
        StringIndexer(inputCol=c, outputCol=f"{c}__index", handleInvalid="keep", stringOrderType="alphabetAsc")
        for c in CATEGORICAL_COLUMNS
    ]
    assembler = VectorAssembler(
        inputCols=imputed + [f"{c}__index" for c in CATEGORICAL_COLUMNS], outputCol="features", handleInvalid="keep"
    )
    if settings.algorithm == "random_forest":
        classifier = RandomForestClassifier(
            labelCol="label_index",
            featuresCol="features",
            weightCol="weight",
            numTrees=settings.num_trees,
            maxDepth=settings.max_depth,
            featureSubsetStrategy="sqrt",
            subsamplingRate=0.8,
            seed=settings.seed,
        )
    else:
        gbt = GBTClassifier(maxIter=settings.max_iter, maxDepth=min(settings.max_depth, 6), seed=settings.seed)
        classifier = OneVsRest(classifier=gbt, labelCol="label_index", featuresCol="features", weightCol="weight")
    return Pipeline(stages=[imputer, *indexers, assembler, classifier])


def fit(train: DataFrame, settings: Train, spec: FeatureSpec) -> PipelineModel:
    data = balance(label_index(train), settings).cache()
    try:
        return build_pipeline(settings, spec).fit(data)
    finally:
        data.unpersist()


# ---- evaluation --------------------------------------------------------------------


@dataclass
class Evaluation:
    """Confusion matrix (rows: true class, columns: predicted) and the metrics derived from it."""

    confusion: pd.DataFrame
    per_class: pd.DataFrame  # precision, recall, f1, support by class
    pooled: dict[str, float] = field(default_factory=dict)  # failure classes together (micro average)

    def metrics(self) -> dict[str, float]:
        """Flat metric names for MLflow: precision_comp1, ..., failure_recall, accuracy."""
        out = dict(self.pooled)
        for cls, row in self.per_class.iterrows():
            for m in ("precision", "recall", "f1"):
                out[f"{m}_{cls}"] = float(row[m])
        return out


def evaluate_counts(counts: pd.DataFrame) -> Evaluation:
    """Metrics from (label, predicted, count) rows, through scikit-learn with counts as weights.

    Pooled failure metrics are micro averages over the four components: a failure row
    predicted as the wrong component counts as missed, and as a false alarm.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred, w = counts["label"].to_numpy(), counts["predicted"].to_numpy(), counts["count"].to_numpy()
    labels = list(CLASSES)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, sample_weight=w, zero_division=0)
    per_class = pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": s}, index=labels)
    fp, fr, ff, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=list(FAILURE_CLASSES), sample_weight=w, average="micro", zero_division=0
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels, sample_weight=w).astype(np.int64)
    confusion = pd.DataFrame(cm, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))
    accuracy = float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0
    pooled = {
        "failure_precision": float(fp),
        "failure_recall": float(fr),
        "failure_f1": float(ff),
        "accuracy": accuracy,
    }
    return Evaluation(confusion=confusion, per_class=per_class, pooled=pooled)


def predicted_label(predictions: DataFrame) -> DataFrame:
    """`predicted`: the class name of the model's `prediction` index."""
    from pyspark.sql import functions as F

    names = F.array(*[F.lit(c) for c in CLASSES])
    return predictions.withColumn("predicted", F.element_at(names, F.col("prediction").cast("int") + 1))


def evaluate(model: PipelineModel, test: DataFrame) -> Evaluation:
    """Score `test` (with labels) and compare predictions with the labels."""
    scored = predicted_label(model.transform(test))
    counts = scored.groupBy("label", "predicted").count().toPandas()
    if counts.empty:
        raise ValueError("the test period has no rows: move split_date or extend to_date")
    return evaluate_counts(counts)


def feature_importances(model: PipelineModel, spec: FeatureSpec) -> pd.Series:
    """Importance of each input column (averaged over the per-class models of one-vs-rest)."""
    names = feature_columns(spec) + list(CATEGORICAL_COLUMNS)
    clf = model.stages[-1]
    if hasattr(clf, "featureImportances"):
        values = clf.featureImportances.toArray()
    else:
        values = np.mean([m.featureImportances.toArray() for m in clf.models], axis=0)
    return pd.Series(values, index=names, name="importance").sort_values(ascending=False)
