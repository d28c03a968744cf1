"""The recommender job end to end on small generated data, and a bad parameter stopping it early."""

from __future__ import annotations

import pytest

from refarch.jobs.runner import run_job

OURS = ("ingest", "split", "train", "evaluate", "topk")


def test_a_bad_parameter_fails_the_first_task_and_names_it():
    result = run_job("recommender", params={"dataset": "movielens-5k"})
    status = {t.task_key: t for t in result.tasks}
    assert status["ingest"].status == "FAILED"
    assert "parameter 'dataset'" in status["ingest"].error
    assert status["ingest"].attempts == 1  # bad input is not retried
    assert all(status[k].status == "SKIPPED" for k in OURS[1:])


@pytest.mark.slow
def test_the_job_runs_and_writes_the_served_tables(spark, tables):
    from pyspark.sql import functions as F

    result = run_job("recommender", params={"n_users": "120", "k": "5"})
    status = {t.task_key: t for t in result.tasks}
    assert [status[k].status for k in OURS] == ["SUCCESS"] * len(OURS), result.summary()

    ratings = tables.read("ratings")
    recs = tables.read("recommendations")
    assert recs.columns == ["user_id", "rank", "item_id", "score", "model_version"]
    per_user = recs.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"), F.max("rank").alias("last"))
    assert per_user.count() == ratings.select("user_id").distinct().count() == 120
    assert per_user.filter((F.col("n") != 5) | (F.col("last") != 5)).count() == 0
    assert recs.join(ratings, ["user_id", "item_id"]).count() == 0  # nothing already seen
    assert recs.select("model_version").distinct().count() == 1

    popular = tables.read("popular_items").orderBy("rank").collect()
    assert [r["rank"] for r in popular[:3]] == [1, 2, 3]
    assert popular[0].score >= popular[1].score >= popular[2].score

    metrics = tables.read("recommender_metrics").toPandas()
    at10 = metrics[(metrics["k"] == 10) & (metrics["metric"] == "ndcg")].set_index("model")["value"]
    assert at10["ALS"] > at10["most popular"]
    assert set(metrics["metric"]) >= {"precision", "recall", "ndcg", "map", "hit_rate", "rmse", "mae", "r2"}
    assert tables.read("ratings_train").count() + tables.read("ratings_test").count() == ratings.count()
