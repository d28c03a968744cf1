"""Spark ALS: explicit or implicit (confidence) mode, a small search chosen by a ranking metric.

Explicit ALS predicts ratings well and ranks poorly (it is fit only on what users rated, not
on what they chose to rate). Implicit ALS treats every rating as a choice with confidence
1 + alpha * r and ranks far better; the search picks rank, regParam and alpha by nDCG@k on
a validation split with seen items removed, exactly as the model will be used.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from refarch.recommender.evaluate import ranking_metrics
from refarch.recommender.settings import AlsSettings, Confidence
from refarch.recommender.topk import top_k_for_model

if TYPE_CHECKING:
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlsParams:
    """One ALS configuration; alpha and confidence are used in implicit mode only."""

    rank: int
    reg_param: float
    alpha: float
    implicit: bool
    max_iter: int
    confidence: Confidence
    blocks: int | None  # user and item blocks; None: Spark's 10 (fewer suit small data)
    seed: int
    nonnegative: bool = False

    def mlflow_params(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if self.implicit or k not in ("alpha", "confidence")}


def effective_search(conf: AlsSettings) -> AlsSettings:
    """The search to run: `conf` with the quick grid's non-null values applied when `search` is quick."""
    if conf.search != "quick":
        return conf
    return conf.model_copy(update={k: v for k, v in conf.quick.model_dump().items() if v is not None})


def grid(conf: AlsSettings) -> list[AlsParams]:
    """Every combination of rank, regParam and alpha (alpha only in implicit mode)."""
    alphas = conf.alphas if conf.implicit else [0.0]
    return [
        AlsParams(
            rank=r,
            reg_param=reg,
            alpha=a,
            implicit=conf.implicit,
            max_iter=conf.max_iter,
            confidence=conf.confidence,
            blocks=conf.blocks,
            seed=conf.seed,
        )
        for r, reg, a in itertools.product(conf.ranks, conf.reg_params, alphas)
    ]


def prepare(train: DataFrame, params: AlsParams) -> DataFrame:
    """The rating column ALS sees: the rating (explicit or confidence) or 1.0 (binary implicit)."""
    from pyspark.sql import functions as F

    rating = F.lit(1.0) if params.implicit and params.confidence == "binary" else F.col("rating").cast("float")
    return train.select(F.col("user_id").cast("int"), F.col("item_id").cast("int"), rating.alias("rating"))


def fit_als(train: DataFrame, params: AlsParams) -> ALSModel:
    """Fit Spark ALS on (user_id, item_id, rating); cold users/items get no prediction (dropped)."""
    from pyspark.ml.recommendation import ALS

    als = ALS(
        userCol="user_id",
        itemCol="item_id",
        ratingCol="rating",
        rank=params.rank,
        regParam=params.reg_param,
        alpha=params.alpha if params.implicit else 1.0,
        implicitPrefs=params.implicit,
        maxIter=params.max_iter,
        nonnegative=params.nonnegative,
        coldStartStrategy="drop",
        seed=params.seed,
    )
    if params.blocks:
        als.setNumUserBlocks(params.blocks).setNumItemBlocks(params.blocks)
    started = time.perf_counter()
    model = als.fit(prepare(train, params))
    log.info("ALS %s fitted in %.1f s", params, time.perf_counter() - started)
    return model


@dataclass
class SearchResult:
    """Every configuration tried with its validation metrics; the best one first by `metric`."""

    metric: str
    k: int
    trials: list[tuple[AlsParams, dict[str, float]]] = field(default_factory=list)

    @property
    def best(self) -> tuple[AlsParams, dict[str, float]]:
        if not self.trials:
            raise ValueError("no configuration was tried")
        return max(self.trials, key=lambda t: t[1][self.metric])

    def table(self) -> pd.DataFrame:
        rows = [{**asdict(p), **m} for p, m in self.trials]
        return pd.DataFrame(rows).sort_values(self.metric, ascending=False, ignore_index=True)


def search(
    fit_part: DataFrame,
    validation: DataFrame,
    grid: Sequence[AlsParams],
    k: int,
    metric: str,
    on_trial: Any = None,
) -> SearchResult:
    """Fit each configuration on `fit_part` and score its top-k (seen removed) on `validation`."""
    result = SearchResult(metric=metric, k=k)
    for params in grid:
        started = time.perf_counter()
        model = fit_als(fit_part, params)
        ranked = top_k_for_model(model, k, seen=fit_part, users=validation)
        row = ranking_metrics(ranked, validation, [k], users="test").loc[k].to_dict()
        row["fit_seconds"] = time.perf_counter() - started
        result.trials.append((params, row))
        log.info("trial %s: %s@%d = %.4f", params, metric, k, row[metric])
        if on_trial is not None:
            on_trial(params, row)
    return result


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
    import mlflow
    import pyspark

    return [f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"]


def train_and_register(
    train: DataFrame,
    conf: AlsSettings,
    registered_name: str,
    run_name: str = "als",
) -> TrainResult:
    """Search on a per-user split of `train`, refit the best on all of `train`, log and register it.

    `conf` is the search as it runs (see `effective_search`).

    Each trial is a nested MLflow run (params + validation metrics); the parent run holds
    the chosen parameters, their validation metrics and the Spark model.
    """
    import mlflow
    from pyspark import StorageLevel

    from refarch.recommender.split import stratified_split

    fit_part, validation = stratified_split(train, conf.validation_ratio, conf.seed, "user_id")
    fit_part = fit_part.persist(StorageLevel.MEMORY_AND_DISK)
    validation = validation.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.log_params({f"search.{k}": v for k, v in conf.model_dump(exclude={"quick"}).items()})

            def log_trial(params: AlsParams, metrics: dict[str, float]) -> None:
                name = f"rank={params.rank} reg={params.reg_param:g} alpha={params.alpha:g}"
                with mlflow.start_run(run_name=name, nested=True):
                    mlflow.log_params(params.mlflow_params())
                    mlflow.log_metrics({f"val_{m}_at_{conf.k}": v for m, v in metrics.items()})

            result = search(fit_part, validation, grid(conf), conf.k, conf.metric, on_trial=log_trial)
            best, best_metrics = result.best
            log.info("best ALS %s: %s@%d = %.4f", best, conf.metric, conf.k, best_metrics[conf.metric])
            mlflow.log_params(best.mlflow_params())
            mlflow.log_metrics({f"val_{m}_at_{conf.k}": v for m, v in best_metrics.items()})
            model = fit_als(train, best)
            info = mlflow.spark.log_model(
                model,
                artifact_path="model",
                registered_model_name=registered_name,
                signature=_signature(),
                pip_requirements=_requirements(),  # inferring them reloads the model in a subprocess
            )
            version = str(info.registered_model_version)
            model_uri = f"models:/{registered_name}/{version}"
            mlflow.set_tags({"registered_model": registered_name, "registered_version": version})
    finally:
        fit_part.unpersist()
        validation.unpersist()
    return TrainResult(model, best, run.info.run_id, model_uri, version, result)


def load_als(model_uri: str) -> ALSModel:
    """The ALSModel inside a logged Spark-flavour model (MLflow wraps it in a PipelineModel)."""
    import mlflow.spark

    loaded = mlflow.spark.load_model(model_uri)
    stages = getattr(loaded, "stages", None)
    return stages[-1] if stages else loaded


def latest_model_uri(registered_name: str) -> str:
    """`models:/<name>/<highest version>`: what the notebooks use when run on their own."""
    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions(f"name = '{registered_name}'")
    if not versions:
        raise ValueError(f"no registered versions of model '{registered_name}': run the train task first")
    latest = max(versions, key=lambda v: int(v.version))
    return f"models:/{registered_name}/{latest.version}"


def resolve_model_uri(given: str, from_train_task: str | None, registered_name: str) -> tuple[str, str]:
    """(model URI, version): the parameter, else the train task's value, else the latest version."""
    uri = given or from_train_task or latest_model_uri(registered_name)
    version = uri.rstrip("/").rsplit("/", 1)[-1] if uri.startswith("models:/") else uri
    return uri, version


def run_id_of(model_uri: str) -> str | None:
    """The MLflow run that logged a registered model version (`models:/name/version`)."""
    from mlflow import MlflowClient

    if not model_uri.startswith("models:/"):
        return None
    name, _, version = model_uri[len("models:/") :].rpartition("/")
    if not version.isdigit():
        return None
    return MlflowClient().get_model_version(name, version).run_id
