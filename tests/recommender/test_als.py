"""ALS search, MLflow logging and registration; implicit ALS beats the popular baseline."""

from __future__ import annotations

import pytest

from refarch.recommender.als import (
    AlsParams,
    SearchResult,
    effective_search,
    grid,
    load_als,
    resolve_model_uri,
)

pytestmark = pytest.mark.slow


def params(**given) -> AlsParams:
    base = {"rank": 8, "reg_param": 0.05, "alpha": 5.0, "implicit": True, "max_iter": 5}
    return AlsParams(**{**base, "confidence": "rating", "blocks": 2, "seed": 42, **given})


@pytest.fixture(scope="module")
def als_conf(settings):
    """conf/recommender.yml `als` for the local target (quick search, 2 blocks)."""
    return settings.als


def test_grid_and_best_by_metric(als_conf):
    conf = als_conf.model_copy(update={"search": "full", "ranks": [4, 8], "reg_params": [0.1], "alphas": [1, 10]})
    assert [(p.rank, p.alpha, p.implicit, p.blocks) for p in grid(conf)] == [
        (4, 1, True, 2),
        (4, 10, True, 2),
        (8, 1, True, 2),
        (8, 10, True, 2),
    ]
    assert len(grid(conf.model_copy(update={"mode": "explicit"}))) == 2  # alpha unused
    result = SearchResult("ndcg", 10, [(params(rank=4), {"ndcg": 0.2}), (params(rank=8), {"ndcg": 0.3})])
    assert result.best[0].rank == 8
    assert list(result.table()["rank"]) == [8, 4]
    assert "alpha" not in params(implicit=False).mlflow_params()


def test_quick_search_takes_the_quick_grid_where_it_is_not_null(als_conf):
    quick = als_conf.quick.model_copy(update={"ranks": [2, 3], "alphas": None})
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
    import mlflow

    from refarch.runtime.tracking import configure_mlflow

    configure_mlflow(config, "test-recommender")
    train, _ = generated
    conf = als_conf.model_copy(
        update={"search": "full", "ranks": [4, 8], "reg_params": [0.05], "alphas": [5.0], "max_iter": 5, "k": 10}
    )
    result = train_and_register_once(train, conf)
    assert result.model_uri == f"models:/test_recommender_als/{result.model_version}"
    assert len(result.search.trials) == 2
    assert result.params == result.search.best[0]
    run = mlflow.get_run(result.run_id)
    assert run.data.params["rank"] == str(result.params.rank)
    assert "val_ndcg_at_10" in run.data.metrics
    model = load_als(result.model_uri)
    assert model.rank == result.params.rank
    assert resolve_model_uri("", None, "test_recommender_als") == (result.model_uri, result.model_version)
    assert resolve_model_uri("models:/x/3", "ignored", "y") == ("models:/x/3", "3")


def train_and_register_once(train, conf):
    from refarch.recommender.als import train_and_register

    return train_and_register(train, conf, "test_recommender_als")


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
