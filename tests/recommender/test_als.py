"""ALS search, MLflow logging and registration; implicit ALS beats the popular baseline."""

from __future__ import annotations

import pytest

from refarch.recommender.als import AlsParams, SearchConf, SearchResult, load_als, resolve_model_uri

pytestmark = pytest.mark.slow


def test_grid_and_best_by_metric():
    conf = SearchConf(ranks=[4, 8], reg_params=[0.1], alphas=[1, 10], implicit=True)
    assert [(p.rank, p.alpha) for p in conf.grid()] == [(4, 1), (4, 10), (8, 1), (8, 10)]
    assert len(SearchConf(ranks=[4, 8], alphas=[1, 10], implicit=False).grid()) == 2  # alpha unused
    result = SearchResult("ndcg", 10, [(AlsParams(rank=4), {"ndcg": 0.2}), (AlsParams(rank=8), {"ndcg": 0.3})])
    assert result.best[0].rank == 8
    assert list(result.table()["rank"]) == [8, 4]
    assert "alpha" not in AlsParams(implicit=False).mlflow_params()


@pytest.fixture(scope="module")
def generated(spark):
    from refarch.datasets.interactions import InteractionSpec, generate_interactions
    from refarch.recommender.split import stratified_split

    spec = InteractionSpec(n_users=200, n_items=150, mean_per_user=30, min_per_user=10, seed=11)
    train, test = stratified_split(generate_interactions(spark, spec), 0.75, seed=1)
    return train.cache(), test.cache()


def test_train_register_and_load_back(config, generated):
    import mlflow

    from refarch.runtime.tracking import configure_mlflow

    configure_mlflow(config, "test-recommender")
    train, _ = generated
    conf = SearchConf(ranks=[4, 8], reg_params=[0.05], alphas=[5], max_iter=5, blocks=2)
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
    model = fit_als(train, AlsParams(rank=8, reg_param=0.05, alpha=5, max_iter=8, blocks=2))
    als = ranking_metrics(top_k_for_model(model, 10, seen=train, users=test), test, [10]).loc[10]
    popular = ranking_metrics(recommend_popular(train, 10, users=test), test, [10]).loc[10]
    assert als["ndcg"] > 1.2 * popular["ndcg"]
    assert als["precision"] > popular["precision"]
