"""The recommender job's last step: top-k table → serving store, then the `recommender` pyfunc → registry.

Lists go to the store under a new version and become visible with one pointer flip (see
`store`). The pyfunc packages the ALS factors and each user's seen items (for k deeper
than the precomputed lists), records the store version it was published with, and gets
the alias `champion` only after the store holds its lists.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from refarch.recommender.model import FACTORS_ARTIFACT, MAX_K, Factors, RecommenderModel
from refarch.recommender.store import RecommendationStore, portable_settings

if TYPE_CHECKING:
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame

    from refarch.runtime.config import Config

log = logging.getLogger(__name__)

RECOMMENDATION_COLUMNS = ("user_id", "rank", "item_id", "score")
# what the pyfunc imports at load and predict time (refarch.recommender.model and .store), beside MLflow
MODEL_REQUIREMENTS = ("numpy", "pydantic", "redis")
POPULAR_COLUMNS = ("rank", "item_id", "score")


class PublishError(ValueError):
    """The input tables cannot be published as they are (the message says what is wrong)."""


@dataclass(frozen=True)
class Published:
    store_version: str
    users_with_factors: int
    model_name: str
    model_version: str
    model_uri: str
    run_id: str


def _require(df: DataFrame, columns: tuple[str, ...], table: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PublishError(f"table '{table}' lacks column(s) {', '.join(missing)} (has {', '.join(df.columns)})")


def user_lists(
    recommendations: DataFrame, table: str = "recommendations"
) -> Iterator[tuple[int, list[int], list[float]]]:
    """(user_id, items best first, scores), streamed to the driver one partition at a time.

    Rows are checked as they stream (one Spark pass, no separate counting jobs): a null or a
    (user, rank) twice raises PublishError, and the store discards the partial version.
    """
    from pyspark.sql import functions as F

    _require(recommendations, RECOMMENDATION_COLUMNS, table)
    grouped = recommendations.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct("rank", "item_id", "score"))).alias("ranked")
    )
    for row in grouped.toLocalIterator(prefetchPartitions=True):
        ranked = row.ranked
        if row.user_id is None or any(r.rank is None or r.item_id is None or r.score is None for r in ranked):
            raise PublishError(
                f"table '{table}': rows with a null user_id, item_id, rank or score (user {row.user_id})"
            )
        ranks = [r.rank for r in ranked]
        if len(set(ranks)) != len(ranks):
            raise PublishError(f"table '{table}': user {row.user_id} has a rank more than once")
        yield int(row.user_id), [int(r.item_id) for r in ranked], [float(r.score) for r in ranked]


def popular_list(popular: DataFrame, table: str = "popular_items") -> tuple[list[int], list[float]]:
    _require(popular, POPULAR_COLUMNS, table)
    rows = popular.orderBy("rank").limit(MAX_K).collect()
    if not rows:
        raise PublishError(f"table '{table}' is empty: unknown users would get nothing")
    return [int(r.item_id) for r in rows], [float(r.score) for r in rows]


def publish_lists(
    store: RecommendationStore,
    recommendations: DataFrame,
    popular: DataFrame,
    recommendations_table: str = "recommendations",
    popular_table: str = "popular_items",
) -> str:
    """Write every list under a new version and flip; returns the version.

    Bad rows stop the publish before the flip: the version serving before keeps serving.
    """
    _require(recommendations, RECOMMENDATION_COLUMNS, recommendations_table)
    items, scores = popular_list(popular, popular_table)
    return store.publish(user_lists(recommendations, recommendations_table), items, scores)


def factors_from_als(als: ALSModel, seen: DataFrame) -> Factors:
    """User and item factors of the ALS model plus the (user_id, item_id) pairs to leave out."""
    users = als.userFactors.toPandas()
    items = als.itemFactors.toPandas()
    pairs = seen.select("user_id", "item_id").toPandas()
    return Factors.build(
        user_ids=users["id"].to_numpy(),
        user_factors=np.vstack(users["features"].to_numpy()) if len(users) else np.zeros((0, als.rank)),
        item_ids=items["id"].to_numpy(),
        item_factors=np.vstack(items["features"].to_numpy()) if len(items) else np.zeros((0, als.rank)),
        seen_users=pairs["user_id"].to_numpy(),
        seen_items=pairs["item_id"].to_numpy(),
    )


def store_settings_to_record(config: Config) -> dict[str, Any]:
    """Where the model will find its store: never a password, only the env var or file holding it.

    A store path under the refarch home is recorded as `{home}/...`, resolved where the model loads.
    """
    return portable_settings(config.target.serving_store.model_dump(), config.home)


def register_model(
    config: Config,
    factors: Factors,
    store_version: str,
    *,
    name: str,
    alias: str,
    als_model_uri: str | None = None,
    example_user: int | None = None,
) -> Published:
    """Log the pyfunc with its factors, register it as `name`, tag the store version and move `alias` to it.

    The model carries refarch's code and requirements pinned to this environment, so it loads
    where refarch is not installed (Model Serving, `mlflow models serve`).
    """
    import mlflow
    from mlflow import MlflowClient

    from refarch.runtime.tracking import model_code_paths, pinned_requirements, registered_model_name

    registered = registered_model_name(config, name)
    settings = store_settings_to_record(config)
    example = [{"user_id": int(example_user if example_user is not None else factors.user_ids[0]), "k": 10}]
    with tempfile.TemporaryDirectory(prefix="refarch-publish-") as tmp:
        path = Path(tmp) / "factors.npz"
        factors.save(path)
        with mlflow.start_run(run_name="publish") as run:
            mlflow.log_params(
                {
                    "store_version": store_version,
                    "store_kind": settings["kind"],
                    "als_model_uri": als_model_uri or "",
                    "users_with_factors": len(factors.user_ids),
                    "items": len(factors.item_ids),
                }
            )
            info = mlflow.pyfunc.log_model(
                name="recommender",
                python_model=RecommenderModel(settings),
                artifacts={FACTORS_ARTIFACT: str(path)},
                registered_model_name=registered,
                input_example=example,
                metadata={"store_version": store_version, "als_model_uri": als_model_uri or ""},
                code_paths=model_code_paths(),
                pip_requirements=pinned_requirements(*MODEL_REQUIREMENTS),
            )
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(registered, version, "store_version", store_version)
    if als_model_uri:
        client.set_model_version_tag(registered, version, "als_model_uri", als_model_uri)
    client.set_registered_model_alias(registered, alias, version)
    log.info("registered %s version %s as @%s (store version %s)", registered, version, alias, store_version)
    return Published(
        store_version, len(factors.user_ids), registered, version, f"models:/{registered}@{alias}", run.info.run_id
    )
