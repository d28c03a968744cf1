"""The train task: search on a validation split of the training data, refit the winner, log and register it.

The training split is split again per user (`als.validation_ratio`): trials fit on one part and
are scored on the other, so the winner is chosen without the test split. Each trial is a child
run of the MLflow run that holds the winner; the whole search is also logged as a table
(`SEARCH_TABLE`), which the evaluate task reads to compare weightings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from refarch.recommender.als import AlsParams, fit_als
from refarch.recommender.search import SearchResult, search
from refarch.recommender.settings import AlsSettings

if TYPE_CHECKING:
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

SEARCH_TABLE = "search_trials.json"  # every trial of the search, an artifact of the train run


@dataclass
class TrainResult:
    """What the train task hands on: the model, where MLflow keeps it, and the search."""

    model: ALSModel
    params: AlsParams
    run_id: str
    model_uri: str
    model_version: str
    search: SearchResult


def _signature() -> Any:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("integer", "user_id"), ColSpec("integer", "item_id")]),
        outputs=Schema([ColSpec("float", "prediction")]),
    )


def _requirements() -> list[str]:
    """MLflow and numpy pinned from this environment; pyspark by its module's version (on Databricks
    Spark is part of the runtime, not an installed distribution)."""
    import pyspark

    from refarch.runtime.tracking import pinned_requirements

    return [*pinned_requirements("numpy"), f"pyspark=={pyspark.__version__}"]


def _trial_logger(conf: AlsSettings, parent_run_id: str, experiment_id: str):
    """A child run per trial, through the client: trials finish in worker threads, which share no active run."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client = MlflowClient()

    def log_trial(params: AlsParams, metrics: dict[str, float]) -> None:
        run = client.create_run(experiment_id, run_name=params.label, tags={MLFLOW_PARENT_RUN_ID: parent_run_id})
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"val_{m}_at_{conf.k}", float(v), 0, 0) for m, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.mlflow_params().items()],
        )
        client.set_terminated(run.info.run_id)

    return log_trial


def train_and_register(
    train: DataFrame,
    conf: AlsSettings,
    registered_name: str,
    run_name: str = "als",
) -> TrainResult:
    """Search on a per-user split of `train`, refit the best on all of `train`, log and register it.

    The Spark model carries refarch's code and pinned requirements, as every registered model does.
    """
    import mlflow
    from pyspark import StorageLevel

    from refarch.recommender.split import stratified_split
    from refarch.runtime.tracking import model_code_paths

    fit_part, validation = stratified_split(train, conf.validation_ratio, conf.seed, "user_id")
    fit_part = fit_part.persist(StorageLevel.MEMORY_AND_DISK)
    validation = validation.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.log_params(
                {f"search.{k}": v for k, v in conf.model_dump(exclude={"quick", "adaptive", "bm25"}).items()}
            )
            if conf.search == "adaptive":
                mlflow.log_params({f"search.adaptive.{k}": v for k, v in conf.adaptive.model_dump().items()})
            log_trial = _trial_logger(conf, run.info.run_id, run.info.experiment_id)
            result = search(fit_part, validation, conf, on_trial=log_trial)
            best, best_metrics = result.best
            log.info("best ALS %s: %s@%d = %.4f", best.label, conf.metric, conf.k, best_metrics[conf.metric])
            mlflow.log_params(best.mlflow_params())
            mlflow.log_metrics({f"val_{m}_at_{conf.k}": v for m, v in best_metrics.items()})
            mlflow.log_table(result.table(), SEARCH_TABLE)
            model = fit_als(train, best)
            info = mlflow.spark.log_model(
                model,
                artifact_path="model",
                registered_model_name=registered_name,
                signature=_signature(),
                code_paths=model_code_paths(),
                pip_requirements=_requirements(),  # inferring them reloads the model in a subprocess
            )
            version = str(info.registered_model_version)
            model_uri = f"models:/{registered_name}/{version}"
            mlflow.set_tags({"registered_model": registered_name, "registered_version": version})
    finally:
        fit_part.unpersist()
        validation.unpersist()
    return TrainResult(model, best, run.info.run_id, model_uri, version, result)


def search_table(run_id: str) -> Any:
    """The trials the train run logged (a pandas DataFrame), or None when it logged none."""
    import mlflow
    from mlflow import MlflowClient

    names = {a.path for a in MlflowClient().list_artifacts(run_id)}
    if SEARCH_TABLE not in names:
        return None
    return mlflow.load_table(SEARCH_TABLE, run_ids=[run_id])


def best_per_weighting(trials: Any, metric: str) -> Any:
    """One row per weighting: its best trial by the validation `metric`; `chosen` marks the search's winner.

    Ties keep the earlier trial, as `SearchResult.best` does.
    """
    ordered = trials.reset_index(drop=True)
    winner = ordered[metric].idxmax()
    best = ordered.loc[ordered.groupby("weighting", sort=False)[metric].idxmax()].copy()
    best["chosen"] = best.index == winner
    return best.sort_values(metric, ascending=False, ignore_index=True, kind="stable")
