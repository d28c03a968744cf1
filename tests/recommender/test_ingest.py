"""Ingest: typed ratings out, every malformed row in quarantine with its reason."""

from __future__ import annotations

import pytest

from refarch.recommender.ingest import RatingRange, clean_interactions, ingest
from refarch.runtime.quality import TooManyBadRows

RAW = "user_id string, item_id string, rating string, timestamp string"
GOOD = [("1", "10", "4", "874965758"), ("1", "11", "3.5", "2015-06-01T12:00:00"), ("2", "10", "5", "874965800")]
BAD = [
    (("x7", "10", "4", "1"), "non-numeric user_id"),
    (("3", "", "4", "1"), "missing item_id"),
    (("3", "12", "7", "1"), "rating outside 1..5"),
    (("3", "12", "four", "1"), "non-numeric rating"),
    (("3", "12", "4", None), "missing timestamp"),
    (("3", "12", "4", "yesterday"), "bad timestamp"),
    (("-3", "12", "4", "1"), "user_id outside 0..2147483647"),
    (("3.5", "12", "4", "1"), "user_id not a whole number"),
    (("2", "10", "1", "874965700"), "duplicate (user_id, item_id): a later row is kept"),
]


def test_clean_interactions_types_good_rows_and_gives_reasons(spark):
    raw = spark.createDataFrame(GOOD + [row for row, _ in BAD], RAW)
    good, bad = clean_interactions(raw, RatingRange(1, 5))
    assert good.schema.simpleString() == "struct<user_id:int,item_id:int,rating:double,timestamp:bigint>"
    assert sorted(tuple(r) for r in good.collect()) == [
        (1, 10, 4.0, 874965758),
        (1, 11, 3.5, 1433160000),
        (2, 10, 5.0, 874965800),
    ]
    cols = ("user_id", "item_id", "rating", "timestamp")
    got = sorted(((tuple(r[c] for c in cols), r.reason) for r in bad.collect()), key=str)
    assert got == sorted(BAD, key=str)


def test_ingest_writes_ratings_and_quarantine(spark, tables):
    raw = spark.createDataFrame([(str(u), "10", "4", "1") for u in range(40)] + [("x", "1", "1", "1")], RAW)
    report = ingest(tables, raw, "t_ratings", "t_ratings_quarantine", RatingRange(1, 5), 0.1, source="test")
    assert (report.good, report.bad) == (40, 1)
    assert tables.read("t_ratings").count() == 40
    q = tables.read("t_ratings_quarantine").collect()
    assert [(r.user_id, r.reason, r.source) for r in q] == [("x", "non-numeric user_id", "test")]


def test_too_many_bad_rows_fail_and_keep_the_old_ratings(spark, tables):
    raw = spark.createDataFrame([("1", "1", "1", "1"), ("a", "1", "1", "1"), ("b", "1", "1", "1")], RAW)
    tables.write(
        spark.createDataFrame([(9, 9, 1.0, 0)], "user_id int, item_id int, rating double, timestamp long"), "t_old"
    )
    with pytest.raises(TooManyBadRows, match="2 of 3 rows"):
        ingest(tables, raw, "t_old", "t_old_quarantine", RatingRange(1, 5), 0.05, source="test")
    assert [r.user_id for r in tables.read("t_old").collect()] == [9]


def test_read_source_by_dataset(spark, tables, settings, tmp_path):
    from refarch.recommender.ingest import rating_range_for, read_source
    from refarch.runtime.params import ParameterError

    conf = settings.ingest.model_copy(update={"dataset_cache": str(tmp_path / "cache")})

    def source(dataset, path="", **generator):
        given = conf.model_copy(update={"dataset": dataset, "generator": conf.generator.model_copy(update=generator)})
        return read_source(spark, tables, given, path, True)

    assert source("generated", n_users=60).select("user_id").distinct().count() == 60
    csv = tmp_path / "mine.csv"
    csv.write_text("user_id,item_id,rating,timestamp\n1,2,5,10\n")
    assert [tuple(r) for r in source("csv", str(csv)).collect()] == [("1", "2", "5", "10")]
    schema = "user_id int, item_id int, rating double, timestamp long"
    tables.write(spark.createDataFrame([(3, 4, 2.0, 7)], schema), "t_src")
    assert source("table", "t_src").count() == 1
    with pytest.raises(ParameterError, match="needs parameter 'dataset_path'"):
        source("csv")
    with pytest.raises(ParameterError, match="parameter 'dataset_path': 'x; drop' is not a table name"):
        source("table", "x; drop")
    assert rating_range_for(conf.model_copy(update={"dataset": "movielens-20m"})) == RatingRange(0.5, 5.0)
    assert rating_range_for(conf.model_copy(update={"dataset": "csv"})) == RatingRange(1.0, 5.0)


def test_generated_items_scale_with_users(settings):
    """conf: 943 users and 1.7837 items per user -> MovieLens-100k's 1682 items; at least 50 items."""
    from refarch.recommender.ingest import generator_spec

    g = settings.ingest.generator
    spec = generator_spec(g)
    assert (spec.n_users, spec.n_items, spec.mean_per_user, spec.min_per_user) == (943, 1682, 106, 20)
    small = generator_spec(g.model_copy(update={"n_users": 120}))
    assert (small.n_items, small.mean_per_user, small.min_per_user) == (214, 214 / 3, 20)
    tiny = generator_spec(g.model_copy(update={"n_users": 10}))
    assert (tiny.n_items, tiny.min_per_user) == (50, 12)
