"""Publishing from Spark tables: checks, lists in the store, the pyfunc registered as @champion."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

RATINGS = [  # (user, item, rating): users 1-4, items 10-14
    (1, 10, 5.0),
    (1, 11, 4.0),
    (1, 12, 1.0),
    (2, 10, 4.0),
    (2, 13, 5.0),
    (2, 14, 3.0),
    (3, 11, 5.0),
    (3, 12, 4.0),
    (3, 14, 2.0),
    (4, 10, 3.0),
    (4, 11, 2.0),
    (4, 13, 4.0),
]


@pytest.fixture(scope="module")
def frames(spark):
    train = spark.createDataFrame(
        [(u, i, r, 0) for u, i, r in RATINGS], "user_id int, item_id int, rating double, timestamp long"
    )
    recs = spark.createDataFrame(
        [
            (1, 1, 13, 0.9, "v1"),
            (1, 2, 14, 0.5, "v1"),
            (2, 2, 12, 0.4, "v1"),
            (2, 1, 11, 0.8, "v1"),
            (3, 1, 10, 0.7, "v1"),
            (3, 2, 13, 0.6, "v1"),
        ],
        "user_id int, rank int, item_id int, score double, model_version string",
    )
    popular = spark.createDataFrame([(1, 10, 3.0), (2, 11, 3.0), (3, 13, 2.0)], "rank int, item_id int, score double")
    return train, recs, popular


@pytest.fixture(scope="module")
def published(frames, tmp_path_factory):
    from refarch.recommender.publish import publish_lists
    from refarch.recommender.store import SqliteStore

    _, recs, popular = frames
    store = SqliteStore(tmp_path_factory.mktemp("publish") / "s.db")
    return store, publish_lists(store, recs, popular)


def test_publish_lists_sorted_by_rank(published):
    store, version = published
    got = store.get(2)
    assert (got.version, got.items, got.scores) == (version, [11, 12], [0.8, 0.4])
    assert store.get(4).fallback and store.get(4).items == [10, 11, 13]
    assert store.versions()[0].users == 3


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r, p: (r.drop("score"), p), "lacks column"),
        (lambda r, p: (r.union(r.filter("user_id = 3 AND rank = 2")), p), "more than once"),
        (lambda r, p: (r.withColumn("item_id", r.item_id * None), p), "null"),
        (lambda r, p: (r, p.limit(0)), "is empty"),
    ],
)
def test_bad_tables_are_refused_and_the_store_keeps_serving(frames, published, mutate, message):
    from refarch.recommender.publish import PublishError, publish_lists

    _, recs, popular = frames
    store, before = published
    bad_recs, bad_popular = mutate(recs, popular)
    with pytest.raises(PublishError, match=message):
        publish_lists(store, bad_recs, bad_popular)
    assert store.current_version() == before
    assert store.get(1).items == [13, 14]
    assert [v.version for v in store.versions()] == [before]


def test_register_champion_from_a_real_als(frames, config, tracking_uri, tmp_path):
    import mlflow
    from mlflow import MlflowClient
    from pyspark.ml.recommendation import ALS

    from refarch.recommender.publish import factors_from_als, publish_lists, register_model
    from refarch.recommender.store import open_store
    from refarch.runtime.config import ServingStoreConf

    train, recs, popular = frames
    als = ALS(userCol="user_id", itemCol="item_id", ratingCol="rating", rank=2, maxIter=3, seed=1).fit(train)
    target = config.target.model_copy(
        update={"serving_store": ServingStoreConf(kind="sqlite", path=str(tmp_path / "s.db"))}
    )
    conf = config.model_copy(update={"target": target})
    store = open_store(target.serving_store)
    version = publish_lists(store, recs, popular)
    factors = factors_from_als(als, train)
    assert factors.user_ids.tolist() == [1, 2, 3, 4]
    published = register_model(
        conf, factors, version, name="recommender_test", alias="champion", als_model_uri="models:/x/1", example_user=1
    )

    mv = MlflowClient().get_model_version_by_alias("recommender_test", "champion")
    assert str(mv.version) == published.model_version
    assert mv.tags["store_version"] == version
    model = mlflow.pyfunc.load_model("models:/recommender_test@champion")
    assert model.metadata.metadata["store_version"] == version
    shallow, unknown, deep = model.predict([{"user_id": 1, "k": 2}, {"user_id": 99, "k": 2}, {"user_id": 1, "k": 5}])
    assert [i.item_id for i in shallow.items] == [13, 14] and shallow.source == "precomputed"
    assert unknown.fallback and [i.item_id for i in unknown.items] == [10, 11]
    assert deep.source == "als"
    assert sorted(i.item_id for i in deep.items) == [13, 14]  # 10, 11, 12 were seen by user 1
    assert "password" not in str(model.unwrap_python_model().store_settings.get("password", ""))
