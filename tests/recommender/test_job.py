"""The recommender job end to end on small generated data, and a bad parameter stopping it early."""

from __future__ import annotations

import pytest

from refarch.jobs.check import JobParameterError
from refarch.jobs.runner import run_job

TASKS = ("check_parameters", "ingest", "split", "train", "evaluate", "topk", "publish")


def test_a_bad_parameter_stops_the_job_before_any_task_and_names_it():
    """Every parameter of every notebook is checked first (refarch-check-parameters): nothing runs."""
    with pytest.raises(JobParameterError) as caught:
        run_job("recommender", params={"dataset": "movielens-5k"})
    message = str(caught.value)
    assert "job recommender: bad parameters, no task was run" in message
    assert "parameter 'dataset': 'movielens-5k' is not one of generated" in message
    assert "(task ingest: notebooks/recommender/01_ingest.ipynb)" in message


@pytest.mark.slow
def test_the_job_runs_publishes_and_serves(spark, tables, config):
    import mlflow
    from mlflow import MlflowClient
    from pyspark.sql import functions as F

    from refarch.recommender.store import open_store
    from refarch.runtime.tracking import configure_mlflow

    result = run_job("recommender", params={"n_users": "120", "k": "5"})
    assert result.ok, result.summary()
    assert [(t.task_key, t.status) for t in result.tasks] == [(k, "SUCCESS") for k in TASKS], result.summary()

    ratings = tables.read("ratings")
    recs = tables.read("recommendations")
    assert recs.columns == ["user_id", "rank", "item_id", "score", "model_version"]
    per_user = recs.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"), F.max("rank").alias("last"))
    assert per_user.count() == ratings.select("user_id").distinct().count() == 120  # n_users overrides conf
    assert per_user.filter((F.col("n") != 5) | (F.col("last") != 5)).count() == 0  # k overrides topk.k
    assert recs.join(ratings, ["user_id", "item_id"]).count() == 0  # nothing already seen
    assert recs.select("model_version").distinct().count() == 1
    assert tables.read("ratings_train").count() + tables.read("ratings_test").count() == ratings.count()

    popular = tables.read("popular_items").orderBy("rank").collect()
    assert [r["rank"] for r in popular[:3]] == [1, 2, 3]
    assert popular[0].score >= popular[1].score >= popular[2].score

    metrics = tables.read("recommender_metrics").toPandas()
    ranking = metrics[metrics["users"].notna()]
    assert set(ranking["users"]) == {"test", "common"}
    assert len(ranking) == 2 * 2 * 4 * 5  # models x conventions x ks x metrics
    ndcg10 = ranking[(ranking["k"] == 10) & (ranking["metric"] == "ndcg")].set_index(["model", "users"])["value"]
    assert ndcg10["ALS", "test"] > ndcg10["most popular", "test"]
    # every test user also trains (stratified split) and gets a list: both conventions agree
    pivot = ranking.pivot_table(index=["model", "k", "metric"], columns="users", values="value")
    assert (pivot["test"] - pivot["common"]).abs().max() < 1e-12
    assert set(metrics["metric"]) >= {"precision", "recall", "ndcg", "map", "hit_rate", "rmse", "mae", "r2"}

    configure_mlflow(config, "recommender")
    champion = MlflowClient().get_model_version_by_alias("recommender", "champion")
    store = open_store(config.target.serving_store)
    assert champion.tags["store_version"] == store.current_version()
    assert store.versions()[-1].users == 120
    user = recs.agg(F.min("user_id")).first()[0]
    expected = [r.item_id for r in recs.filter(F.col("user_id") == user).orderBy("rank").collect()]
    assert store.get(user).items == expected
    (answer,) = mlflow.pyfunc.load_model("models:/recommender@champion").predict([{"user_id": user, "k": 5}])
    assert (answer.source, [i.item_id for i in answer.items]) == ("precomputed", expected)
    run = mlflow.get_run(MlflowClient().get_model_version("recommender_als", recs.first().model_version).run_id)
    assert {"test_als_ndcg_at_10", "test_als_ndcg_at_10_common_users"} <= set(run.data.metrics)
