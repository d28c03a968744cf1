"""Spark ALS: explicit or implicit (confidence) mode, fitted on weighted interactions.

Explicit ALS predicts ratings well and ranks poorly (it is fit only on what users rated, not
on what they chose to rate). Implicit ALS treats every interaction as a choice with confidence
1 + alpha * w, where w is the interaction's weight (`refarch.recommender.weighting`: linear,
log or bm25), and ranks far better. `refarch.recommender.search` picks rank, regParam, alpha,
iterations and weighting on a validation split; `refarch.recommender.train` refits and registers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from refarch.recommender.settings import AlsSettings, Confidence
from refarch.recommender.weighting import Weighting, weigh

if TYPE_CHECKING:
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlsParams:
    """One ALS configuration; alpha, confidence and weighting are used in implicit mode only."""

    rank: int
    reg_param: float
    alpha: float
    implicit: bool
    max_iter: int
    confidence: Confidence
    weighting: Weighting
    blocks: int | None  # user and item blocks; None: Spark's 10 (fewer suit small data)
    seed: int
    bm25_k1: float
    bm25_b: float
    nonnegative: bool = False

    @classmethod
    def from_settings(cls, conf: AlsSettings, **chosen: Any) -> AlsParams:
        """The searched values (`chosen`: rank, reg_param, alpha, max_iter, weighting) plus the fixed ones of `conf`."""
        fixed = {
            "implicit": conf.implicit,
            "confidence": conf.confidence,
            "blocks": conf.blocks,
            "seed": conf.seed,
            "bm25_k1": conf.bm25.k1,
            "bm25_b": conf.bm25.b,
        }
        return cls(**{**fixed, **chosen})

    def mlflow_params(self) -> dict[str, Any]:
        implicit_only = ("alpha", "confidence", "weighting", "bm25_k1", "bm25_b")
        params = {k: v for k, v in asdict(self).items() if self.implicit or k not in implicit_only}
        if self.weighting != "bm25":
            params = {k: v for k, v in params.items() if not k.startswith("bm25_")}
        return params

    @property
    def label(self) -> str:
        """A short name for a trial: rank, regParam, iterations, and (implicit) alpha and weighting."""
        name = f"rank={self.rank} reg={self.reg_param:.3g} iter={self.max_iter}"
        return f"{name} alpha={self.alpha:.3g} {self.weighting}" if self.implicit else name


def prepare(train: DataFrame, params: AlsParams) -> DataFrame:
    """(user_id, item_id, rating) as ALS sees it: the rating (explicit) or the interaction's weight (implicit)."""
    from pyspark.sql import functions as F

    if not params.implicit:
        return train.select(
            F.col("user_id").cast("int"), F.col("item_id").cast("int"), F.col("rating").cast("float").alias("rating")
        )
    return weigh(
        train,
        params.weighting,
        binary=params.confidence == "binary",
        bm25_k1=params.bm25_k1,
        bm25_b=params.bm25_b,
    )


def use_checkpoints(spark: SparkSession, directory: str) -> None:
    """Let ALS cut its lineage every 10 iterations (its checkpointInterval) under `directory`.

    Without a checkpoint directory Spark ignores the interval, and 30 or more iterations end in a
    StackOverflowError. ALS deletes each checkpoint once the next is written.
    """
    if not spark.sparkContext.getCheckpointDir():
        spark.sparkContext.setCheckpointDir(directory)


def fit_prepared(prepared: DataFrame, params: AlsParams) -> ALSModel:
    """Fit Spark ALS on prepared (user_id, item_id, rating); cold users/items get no prediction (dropped)."""
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
    model = als.fit(prepared)
    log.info("ALS %s fitted in %.1f s", params.label, time.perf_counter() - started)
    return model


def fit_als(train: DataFrame, params: AlsParams) -> ALSModel:
    """Weigh `train` (user_id, item_id, rating) as `params` say and fit ALS on it."""
    return fit_prepared(prepare(train, params), params)


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
