"""One function per notebook of notebooks/recommender/: the notebooks hold parameters, calls and plots.

Each step takes the tables, the settings (with this run's parameter overrides applied), the
config where it needs the target (MLflow names, the serving store), then parameter values by
keyword; it returns what the notebook shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame

    from refarch.recommender.model import Factors
    from refarch.recommender.publish import Published
    from refarch.recommender.settings import Settings
    from refarch.recommender.store import RecommendationStore
    from refarch.recommender.train import TrainResult
    from refarch.runtime.config import Config
    from refarch.runtime.quality import QualityReport
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

METRICS_SCHEMA = "model string, users string, k double, metric string, value double, model_version string"


def _als_model_uri(config: Config, settings: Settings, given: str, from_train_task: str | None) -> tuple[str, str]:
    """(URI, version) of the ALS model: the parameter, else the train task's, else the latest registered."""
    from refarch.recommender.als import resolve_model_uri
    from refarch.runtime.tracking import registered_model_name

    return resolve_model_uri(given, from_train_task, registered_model_name(config, settings.model_name))


# ---- 01_ingest ----------------------------------------------------------------------------


def ingest(
    tables: Tables,
    settings: Settings,
    *,
    dataset_path: str,
    verify_checksum: bool,
    ratings_table: str,
    quarantine_table: str,
) -> QualityReport:
    """Read `settings.ingest.dataset`, write good rows to `ratings_table` and bad ones to quarantine."""
    from refarch.recommender.ingest import ingest as write_ratings
    from refarch.recommender.ingest import rating_range_for, read_source

    conf = settings.ingest
    raw = read_source(tables.spark, tables, conf, dataset_path, verify_checksum)
    return write_ratings(
        tables,
        raw,
        ratings_table,
        quarantine_table,
        rating_range_for(conf),
        conf.max_bad_share,
        source=conf.dataset,
    )


# ---- 02_split -----------------------------------------------------------------------------


def split(tables: Tables, settings: Settings, *, ratings_table: str, train_table: str, test_table: str) -> pd.DataFrame:
    """Split `ratings_table` by `settings.split`; returns rows, users and items on each side."""
    from refarch.recommender.split import split as split_ratings

    conf = settings.split
    train, test = split_ratings(tables.read(ratings_table), conf.method, conf.ratio, conf.seed, conf.by)
    tables.write(train, train_table)
    tables.write(test, test_table)
    train, test = tables.read(train_table), tables.read(test_table)
    train_users = train.select("user_id").distinct()
    test_users = test.select("user_id").distinct()
    return pd.DataFrame(
        {
            "rows": [train.count(), test.count()],
            "users": [train_users.count(), test_users.count()],
            "items": [train.select("item_id").distinct().count(), test.select("item_id").distinct().count()],
            "test users also in train": [None, test_users.join(train_users, "user_id").count()],
        },
        index=[train_table, test_table],
    )


# ---- 03_train -----------------------------------------------------------------------------


def train(tables: Tables, settings: Settings, config: Config, *, train_table: str) -> TrainResult:
    """Search ALS as `settings.als` says (a grid, or adaptive), refit the best on all of `train_table`, register it."""
    from refarch.recommender.als import use_checkpoints
    from refarch.recommender.search import effective_search
    from refarch.recommender.train import train_and_register
    from refarch.runtime.tracking import registered_model_name

    use_checkpoints(tables.spark, settings.als.checkpoint_dir)
    search = effective_search(settings.als)
    name = registered_model_name(config, settings.model_name)
    return train_and_register(tables.read(train_table), search, name)


# ---- 04_evaluate --------------------------------------------------------------------------


@dataclass
class Evaluation:
    """Test metrics of the ALS model and the most-popular baseline, under both users conventions."""

    model_uri: str
    model_version: str
    by_k: pd.DataFrame  # long: model, users, k, metric, value
    k: int  # the k of `at_k` and `lift`: the served k, or the nearest k evaluated
    at_k: pd.DataFrame  # one row per (model, users convention) at k
    lift: pd.DataFrame  # ALS over the baseline at k, per users convention
    rating: dict[str, float] | None
    rating_label: str
    by_weighting: pd.DataFrame | None  # the best validation trial of each weighting, scored on test at k
    table: pd.DataFrame  # what `metrics_table` holds
    figure: Figure


def evaluate(
    tables: Tables,
    settings: Settings,
    config: Config,
    *,
    als_model_uri: str,
    train_task_model_uri: str | None,
    train_run_id: str | None,
    train_table: str,
    test_table: str,
    metrics_table: str,
) -> Evaluation:
    """Top-k for the test users (training items removed) from ALS and the baseline, scored at every k.

    Ranking metrics are averaged over the test users and over the users common to test and
    recommendations (see `refarch.recommender.evaluate`); both go to `metrics_table` and MLflow.
    With `evaluate.by_weighting`, the best validation trial of each weighting the search tried
    is refitted on `train_table` and scored on test too (the registered model stands for its own).
    """
    import matplotlib.pyplot as plt
    from pyspark import StorageLevel

    from refarch.recommender import evaluate as metrics
    from refarch.recommender.als import AlsParams, fit_als, load_als, run_id_of, use_checkpoints
    from refarch.recommender.baseline import recommend_popular
    from refarch.recommender.topk import top_k_for_model

    use_checkpoints(tables.spark, settings.als.checkpoint_dir)
    conf = settings.evaluate
    model_uri, model_version = _als_model_uri(config, settings, als_model_uri, train_task_model_uri)
    run_id = train_run_id or run_id_of(model_uri)
    k_show = min(conf.ks, key=lambda k: (abs(k - settings.topk.k), k))
    model = load_als(model_uri)
    train = tables.read(train_table).persist(StorageLevel.MEMORY_AND_DISK)
    test = tables.read(test_table).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        k_max = max(conf.ks)
        ranked = {
            "ALS": top_k_for_model(model, k_max, seen=train, users=test),
            "most popular": recommend_popular(train, k_max, users=test),
        }
        by_k = metrics.compare_by_k(ranked, test, conf.ks)
        rating, rating_label = None, f"explicit ALS rank {model.rank}"
        if conf.rating_model.enabled:
            als = settings.als
            params = AlsParams.from_settings(
                als.model_copy(update={"mode": "explicit"}),
                rank=model.rank,
                reg_param=conf.rating_model.reg_param,
                alpha=0.0,
                max_iter=conf.rating_model.max_iter,
                weighting=als.weightings[0],  # unused in explicit mode
            )
            rating = metrics.rating_metrics(fit_als(train, params).transform(test))
        by_weighting = None
        if conf.by_weighting and settings.als.implicit and run_id:
            by_weighting = _by_weighting(settings, run_id, model, train, test, k_show)
    finally:
        train.unpersist()
        test.unpersist()
    table = metrics.metrics_table(by_k, rating, rating_label)
    figure = metrics.plot_metrics_by_k(by_k)
    plt.close(figure)  # not drawn where it is made: the notebook shows `result.figure`
    rows = table.assign(model_version=model_version).astype(object)
    rows = rows.where(rows.notna(), None)
    records = [
        (r.model, r.users, None if r.k is None else float(r.k), r.metric, r.value, r.model_version)
        for r in rows.itertuples(index=False)
    ]
    tables.write(tables.spark.createDataFrame(records, METRICS_SCHEMA), metrics_table)
    metrics.log_to_mlflow(run_id, table, figure)
    if by_weighting is not None:
        metrics.log_by_weighting(run_id, by_weighting, k_show)
    return Evaluation(
        model_uri=model_uri,
        model_version=model_version,
        by_k=by_k,
        k=k_show,
        at_k=metrics.at_k(by_k, k_show),
        lift=metrics.lift(by_k, "ALS", "most popular", k_show),
        rating=rating,
        rating_label=rating_label,
        by_weighting=by_weighting,
        table=table,
        figure=figure,
    )


def _by_weighting(
    settings: Settings, run_id: str, model: ALSModel, train: DataFrame, test: DataFrame, k: int
) -> pd.DataFrame | None:
    """Test metrics at k of the best validation trial of each weighting in the train run's search table."""
    from refarch.recommender import evaluate as metrics
    from refarch.recommender.als import AlsParams, fit_als
    from refarch.recommender.topk import top_k_for_model
    from refarch.recommender.train import best_per_weighting, search_table

    trials = search_table(run_id)
    if trials is None:
        log.info("run %s logged no search table: no comparison of weightings", run_id)
        return None
    als = settings.als
    best = best_per_weighting(trials, als.metric)
    rows = []
    for row in best.itertuples(index=False):
        params = AlsParams.from_settings(
            als,
            rank=int(row.rank),
            reg_param=float(row.reg_param),
            alpha=float(row.alpha),
            max_iter=int(row.max_iter),
            weighting=row.weighting,
        )
        fitted = model if row.chosen and model.rank == params.rank else fit_als(train, params)
        ranked = top_k_for_model(fitted, k, seen=train, users=test)
        test_metrics = metrics.ranking_metrics(ranked, test, [k], users="test").loc[k]
        rows.append(
            {
                "weighting": row.weighting,
                "chosen": bool(row.chosen),
                "rank": params.rank,
                "reg_param": params.reg_param,
                "alpha": params.alpha,
                "max_iter": params.max_iter,
                f"validation {als.metric}@{als.k}": float(getattr(row, als.metric)),
                **{f"{m}@{k}": float(test_metrics[m]) for m in ("ndcg", "precision", "map", "recall")},
            }
        )
    return pd.DataFrame(rows).set_index("weighting")


# ---- 05_topk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopK:
    model_uri: str
    model_version: str
    k: int


def topk(
    tables: Tables,
    settings: Settings,
    config: Config,
    *,
    als_model_uri: str,
    train_task_model_uri: str | None,
    train_table: str,
    seen_table: str,
    users_table: str,
    recommendations_table: str,
    popular_table: str,
) -> TopK:
    """The `settings.topk.k` best unseen items for every user, popular items for users without factors."""
    from refarch.recommender.als import load_als
    from refarch.recommender.baseline import popular_items
    from refarch.recommender.topk import recommendations_table as served
    from refarch.recommender.topk import top_k_for_model, with_fallback

    k = settings.topk.k
    model_uri, model_version = _als_model_uri(config, settings, als_model_uri, train_task_model_uri)
    tables.write(popular_items(tables.read(train_table), max(settings.topk.popular_n, k)), popular_table)
    seen = tables.read(seen_table)
    users = tables.read(users_table or seen_table).select("user_id").distinct()
    ranked = top_k_for_model(load_als(model_uri), k, seen=seen)
    ranked = with_fallback(ranked, users, tables.read(popular_table), k)
    tables.write(served(ranked, model_version), recommendations_table)
    return TopK(model_uri, model_version, k)


# ---- 06_publish ---------------------------------------------------------------------------


@dataclass
class Publication:
    """The lists in the serving store and the pyfunc registered over them."""

    als_model_uri: str
    store: RecommendationStore
    store_kind: str
    store_version: str
    factors: Factors
    published: Published


def publish(
    tables: Tables,
    settings: Settings,
    config: Config,
    *,
    als_model_uri: str,
    train_task_model_uri: str | None,
    recommendations_table: str,
    popular_table: str,
    seen_table: str,
) -> Publication:
    """Lists to the serving store (one atomic flip), then the pyfunc to `settings.publish.model_name@alias`."""
    from refarch.recommender.als import load_als
    from refarch.recommender.publish import factors_from_als, publish_lists, register_model
    from refarch.recommender.store import open_store

    uri, _ = _als_model_uri(config, settings, als_model_uri, train_task_model_uri)
    store = open_store(config.target.serving_store)
    store_version = publish_lists(
        store,
        tables.read(recommendations_table),
        tables.read(popular_table),
        recommendations_table=recommendations_table,
        popular_table=popular_table,
    )
    factors = factors_from_als(load_als(uri), tables.read(seen_table))
    conf = settings.publish
    published = register_model(
        config, factors, store_version, name=conf.model_name, alias=conf.alias, als_model_uri=uri
    )
    return Publication(uri, store, config.target.serving_store.kind, store_version, factors, published)
