"""ALS search (grid and adaptive), MLflow logging and registration; implicit ALS beats the popular baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refarch.recommender.als import AlsParams, load_als, resolve_model_uri
from refarch.recommender.search import SearchResult, effective_search, grid
from refarch.recommender.train import best_per_weighting

pytestmark = pytest.mark.slow


def params(**given) -> AlsParams:
    base = {"rank": 8, "reg_param": 0.05, "alpha": 5.0, "implicit": True, "max_iter": 5, "weighting": "linear"}
    fixed = {"confidence": "rating", "blocks": 2, "seed": 42, "bm25_k1": 100.0, "bm25_b": 0.8}
    return AlsParams(**{**base, **fixed, **given})


@pytest.fixture(scope="module")
def als_conf(settings):
    """conf/recommender.yml `als` for the local target (quick search, 2 blocks)."""
    return settings.als


def test_grid_and_best_by_metric(als_conf):
    conf = als_conf.model_copy(
        update={"search": "full", "ranks": [4, 8], "reg_params": [0.1], "alphas": [1, 10], "weightings": ["log"]}
    )
    assert [(p.rank, p.alpha, p.weighting, p.implicit, p.blocks) for p in grid(conf)] == [
        (4, 1, "log", True, 2),
        (4, 10, "log", True, 2),
        (8, 1, "log", True, 2),
        (8, 10, "log", True, 2),
    ]
    three = grid(conf.model_copy(update={"ranks": [4], "alphas": [1], "weightings": ["linear", "log", "bm25"]}))
    assert [p.weighting for p in three] == ["linear", "log", "bm25"]
    assert len(grid(conf.model_copy(update={"mode": "explicit", "weightings": ["linear", "bm25"]}))) == 2
    result = SearchResult("ndcg", 10, "grid", [(params(rank=4), {"ndcg": 0.2}), (params(rank=8), {"ndcg": 0.3})])
    assert result.best[0].rank == 8
    assert list(result.table()["rank"]) == [8, 4]
    assert not {"alpha", "weighting", "bm25_k1"} & set(params(implicit=False).mlflow_params())
    assert "bm25_k1" not in params().mlflow_params() and params(weighting="bm25").mlflow_params()["bm25_b"] == 0.8


def test_the_best_trial_of_each_weighting_and_the_winner():
    trials = [
        (params(rank=4, weighting="linear"), {"ndcg": 0.20}),
        (params(rank=8, weighting="log"), {"ndcg": 0.31}),
        (params(rank=4, weighting="log"), {"ndcg": 0.25}),
        (params(rank=8, weighting="bm25"), {"ndcg": 0.31}),  # ties with the earlier log trial: log wins
        (params(rank=8, weighting="linear"), {"ndcg": 0.22}),
    ]
    result = SearchResult("ndcg", 10, "grid", trials)
    best = result.best_by_weighting()
    assert {w: (p.rank, m["ndcg"]) for w, (p, m) in best.items()} == {
        "linear": (8, 0.22),
        "log": (8, 0.31),
        "bm25": (8, 0.31),
    }
    table = best_per_weighting(pd.DataFrame([{**p.__dict__, **m} for p, m in trials]), "ndcg")
    assert list(zip(table["weighting"], table["rank"], table["chosen"], strict=True)) == [
        ("log", 8, True),
        ("bm25", 8, False),
        ("linear", 8, False),
    ]


def test_quick_search_takes_the_quick_grid_where_it_is_not_null(als_conf):
    quick = als_conf.quick.model_copy(update={"ranks": [2, 3], "alphas": None, "weightings": None})
    conf = als_conf.model_copy(update={"search": "quick", "quick": quick, "ranks": [16], "alphas": [0.5, 1.0]})
    run = effective_search(conf)
    assert (run.ranks, run.alphas, run.max_iter) == ([2, 3], [0.5, 1.0], quick.max_iter)
    assert effective_search(conf.model_copy(update={"search": "full"})).ranks == [16]


@pytest.fixture(scope="module")
def generated(spark):
    from refarch.datasets.interactions import InteractionSpec, generate_interactions
    from refarch.recommender.split import stratified_split

    spec = InteractionSpec(n_users=200, n_items=150, mean_per_user=30, min_per_user=10, seed=11)
    train, test = stratified_split(generate_interactions(spark, spec), 0.75, 1, "user_id")
    return train.cache(), test.cache()


def test_train_register_and_load_back(config, generated, als_conf):
    """A grid of 4 trials, 2 at a time: each a child run; the search table, code and pins go with the model."""
    import mlflow
    from mlflow import MlflowClient

    from refarch.recommender.train import search_table, train_and_register
    from refarch.runtime.tracking import configure_mlflow

    configure_mlflow(config, "test-recommender")
    train, _ = generated
    conf = als_conf.model_copy(
        update={
            "search": "full",
            "parallel_trials": 2,
            "ranks": [4, 8],
            "reg_params": [0.05],
            "alphas": [5.0],
            "weightings": ["linear", "bm25"],
            "max_iter": 5,
            "k": 10,
        }
    )
    result = train_and_register(train, conf, "test_recommender_als")
    assert result.model_uri == f"models:/test_recommender_als/{result.model_version}"
    assert [(p.rank, p.weighting) for p, _ in result.search.trials] == [
        (4, "linear"),
        (4, "bm25"),
        (8, "linear"),
        (8, "bm25"),
    ]
    assert result.params == result.search.best[0]
    run = mlflow.get_run(result.run_id)
    assert (run.data.params["rank"], run.data.params["weighting"]) == (str(result.params.rank), result.params.weighting)
    assert run.data.metrics["val_ndcg_at_10"] == max(m["ndcg"] for _, m in result.search.trials)
    children = MlflowClient().search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'", max_results=10
    )
    assert sorted((c.data.params["rank"], c.data.params["weighting"]) for c in children) == [
        ("4", "bm25"),
        ("4", "linear"),
        ("8", "bm25"),
        ("8", "linear"),
    ]
    assert all("bm25_k1" in c.data.params for c in children if c.data.params["weighting"] == "bm25")
    trials = search_table(result.run_id)
    assert len(trials) == 4 and set(trials["weighting"]) == {"linear", "bm25"}
    model = load_als(result.model_uri)
    assert model.rank == result.params.rank
    local = mlflow.artifacts.download_artifacts(result.model_uri)
    assert (Path(local) / "code" / "refarch" / "recommender" / "topk.py").is_file()
    pins = (Path(local) / "requirements.txt").read_text().split()
    assert f"numpy=={np.__version__}" in pins and any(p.startswith("pyspark==") for p in pins)
    assert resolve_model_uri("", None, "test_recommender_als") == (result.model_uri, result.model_version)
    assert resolve_model_uri("models:/x/3", "ignored", "y") == ("models:/x/3", "3")


def test_adaptive_search_samples_the_ranges_and_keeps_the_best_on_validation(generated, als_conf):
    pytest.importorskip("optuna")
    from refarch.recommender.search import search
    from refarch.recommender.split import stratified_split

    train, _ = generated
    fit_part, validation = stratified_split(train, 0.8, 3, "user_id")
    adaptive = als_conf.adaptive.model_copy(
        update={
            "trials": 3,
            "ranks": [4, 8],
            "max_iter": als_conf.adaptive.max_iter.model_copy(update={"low": 3, "high": 5}),
            "weightings": ["log", "bm25"],
        }
    )
    conf = als_conf.model_copy(update={"search": "adaptive", "parallel_trials": 2, "adaptive": adaptive, "k": 10})
    seen = []
    result = search(fit_part, validation, conf, on_trial=lambda p, m: seen.append((p, m)))
    assert result.strategy == "adaptive" and len(result.trials) == 3 and len(seen) == 3
    space = conf.adaptive
    for p, m in result.trials:
        assert p.rank in (4, 8) and p.weighting in ("log", "bm25") and 3 <= p.max_iter <= 5
        assert space.reg_param.low <= p.reg_param <= space.reg_param.high
        assert space.alpha.low <= p.alpha <= space.alpha.high
        assert 0 <= m["ndcg"] <= 1
    assert result.best[1]["ndcg"] == max(m["ndcg"] for _, m in result.trials)


def test_many_iterations_fit_once_checkpoints_cut_the_lineage(spark, generated, als_conf):
    """40 iterations overflow the JVM stack without a checkpoint directory (Spark ignores checkpointInterval)."""
    from refarch.recommender.als import fit_als, use_checkpoints

    use_checkpoints(spark, als_conf.checkpoint_dir)
    assert spark.sparkContext.getCheckpointDir()
    train, _ = generated
    model = fit_als(train, params(rank=2, max_iter=40, weighting="log"))
    assert model.userFactors.count() == 200


def test_implicit_als_beats_most_popular_on_generated_data(generated):
    from refarch.recommender.als import fit_als
    from refarch.recommender.baseline import recommend_popular
    from refarch.recommender.evaluate import ranking_metrics
    from refarch.recommender.topk import top_k_for_model

    train, test = generated
    model = fit_als(train, params(rank=8, reg_param=0.05, alpha=5.0, max_iter=8))
    als = ranking_metrics(top_k_for_model(model, 10, seen=train, users=test), test, [10]).loc[10]
    popular = ranking_metrics(recommend_popular(train, 10, users=test), test, [10]).loc[10]
    assert als["ndcg"] > 1.2 * popular["ndcg"]
    assert als["precision"] > popular["precision"]
