"""MLflow side of training: log a run with its metrics and model, and promote it only if it wins.

The alias `champion` moves to a new version only when that version beats the current
champion on the same test period, so a bad retraining never replaces a good model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from refarch.maintenance.train import Evaluation

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

CHAMPION = "champion"
PROMOTION_METRIC = "failure_f1"


@dataclass(frozen=True)
class Promotion:
    version: str
    promoted: bool
    score: float
    champion_version: str | None
    champion_score: float | None

    @property
    def reason(self) -> str:
        if self.champion_version is None:
            return f"version {self.version} is the first model: champion"
        if self.champion_score is None:
            return f"version {self.version} replaces champion version {self.champion_version}, which had no score"
        verdict = "beats" if self.promoted else "does not beat"
        return (
            f"version {self.version} ({PROMOTION_METRIC} {self.score:.4f}) {verdict} champion "
            f"version {self.champion_version} ({self.champion_score:.4f})"
        )


def confusion_figure(confusion: pd.DataFrame) -> Any:
    """A matplotlib heat map of the confusion matrix, counts written in the cells."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    values = confusion.to_numpy()
    ax.imshow(values, cmap="Blues", norm=_log_norm(values))
    ax.set_xticks(range(len(confusion.columns)), confusion.columns)
    ax.set_yticks(range(len(confusion.index)), confusion.index)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, str(values[i, j]), ha="center", va="center", fontsize=8)
    ax.set_title("confusion matrix (test period)")
    fig.tight_layout()
    return fig


def _log_norm(values: Any) -> Any:
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=1, vmax=max(int(values.max()), 2))


def log_and_register(
    model: PipelineModel,
    evaluation: Evaluation,
    importances: pd.Series,
    params: dict[str, Any],
    model_name: str,
    sample: DataFrame,
) -> str:
    """Log params, metrics, confusion matrix, importances and the model in the active run; return the version."""
    import matplotlib.pyplot as plt
    import mlflow
    import pyspark
    from mlflow.models import infer_signature

    mlflow.log_params(params)
    mlflow.log_metrics(evaluation.metrics())
    mlflow.log_dict(_confusion_dict(evaluation.confusion), "evaluation/confusion_matrix.json")
    mlflow.log_text(evaluation.per_class.to_csv(), "evaluation/per_class.csv")
    mlflow.log_dict({k: float(v) for k, v in importances.items()}, "evaluation/feature_importances.json")
    fig = confusion_figure(evaluation.confusion)
    mlflow.log_figure(fig, "evaluation/confusion_matrix.png")
    plt.close(fig)
    inputs = sample.limit(50).toPandas()
    outputs = model.transform(sample.limit(50)).select("prediction").toPandas()
    info = mlflow.spark.log_model(
        model,
        artifact_path="model",
        registered_model_name=model_name,
        signature=infer_signature(inputs, outputs),
        # Given requirements spare MLflow from loading the model in a new process (and a new
        # Spark session) just to find out which packages it imports.
        pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"],
    )
    version = str(info.registered_model_version)
    log.info("logged model %s version %s (run %s)", model_name, version, info.run_id)
    return version


def _confusion_dict(confusion: pd.DataFrame) -> dict[str, Any]:
    return {
        "labels": [str(c) for c in confusion.columns],
        "matrix": confusion.to_numpy().tolist(),
        "rows": "true class",
        "columns": "predicted class",
    }


def current_champion(model_name: str) -> str | None:
    """The version behind the `champion` alias, or None if there is none yet."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def promote_if_better(model_name: str, version: str, score: float, champion_score: float | None) -> Promotion:
    """Point `champion` at `version` if there is no champion or `score` is strictly higher."""
    from mlflow import MlflowClient

    champion = current_champion(model_name)
    promoted = champion is None or champion_score is None or score > champion_score
    if promoted:
        MlflowClient().set_registered_model_alias(model_name, CHAMPION, version)
    result = Promotion(version, promoted, score, champion, champion_score if champion is not None else None)
    log.info(result.reason)
    return result
