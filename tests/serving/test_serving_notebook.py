"""notebooks/recommender/06_publish.ipynb end to end on tiny tables and a tiny registered ALS."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "notebooks" / "recommender" / "06_publish.ipynb"


def test_publish_notebook(spark, tables, config, tracking_uri):
    import mlflow
    from mlflow import MlflowClient
    from pyspark.ml.recommendation import ALS

    from refarch.jobs.notebook_exec import run_notebook
    from refarch.recommender.store import open_store
    from refarch.runtime.notebook import LocalRunContext, local_run

    ratings = [(u, i, float((u * i) % 5 + 1), 0) for u in range(1, 7) for i in range(10, 18) if (u + i) % 3]
    train = spark.createDataFrame(ratings, "user_id int, item_id int, rating double, timestamp long")
    recs = spark.createDataFrame(
        [(u, r, 10 + (u + r) % 8, 1.0 / r, "v") for u in range(1, 6) for r in (1, 2, 3)],
        "user_id int, rank int, item_id int, score double, model_version string",
    )
    popular = spark.createDataFrame([(1, 11, 9.0), (2, 12, 8.0)], "rank int, item_id int, score double")
    tables.write(train, "serving_nb_train")
    tables.write(recs, "serving_nb_recs")
    tables.write(popular, "serving_nb_popular")
    als = ALS(userCol="user_id", itemCol="item_id", ratingCol="rating", rank=2, maxIter=2, seed=3).fit(train)
    with mlflow.start_run(run_name="tiny-als"):
        info = mlflow.spark.log_model(
            als, artifact_path="model", registered_model_name="serving_nb_als", pip_requirements=["pyspark"]
        )
    als_uri = f"models:/serving_nb_als/{info.registered_model_version}"

    run = LocalRunContext(
        parameters={
            "recommendations_table": "serving_nb_recs",
            "popular_table": "serving_nb_popular",
            "seen_table": "serving_nb_train",
            "model_name": "serving_nb_recommender",
        },
        task_key="publish",
        task_values={"train": {"als_model_uri": als_uri}},
    )
    with local_run(run):
        ns = run_notebook(NOTEBOOK)

    store_version = run.task_values["publish"]["store_version"]
    store = open_store(config.target.serving_store)
    assert store.current_version() == store_version
    assert store.get(1).items == [12, 13, 14]
    mv = MlflowClient().get_model_version_by_alias("serving_nb_recommender", "champion")
    assert mv.tags["store_version"] == store_version
    assert mv.tags["als_model_uri"] == als_uri
    sources = [a.source for a in ns["answers"]]
    assert sources == ["precomputed", "als", "popular"]
    assert Path(ns["published"].model_uri.split("@")[0].replace("models:/", "")).name == "serving_nb_recommender"
