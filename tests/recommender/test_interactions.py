"""The generator (deterministic, realistic shape) and the generic CSV/table loader."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from refarch.datasets.interactions import (
    InteractionColumns,
    InteractionSpec,
    generate_interactions,
    generate_interactions_pandas,
    read_interactions_csv,
    read_interactions_table,
)

SPEC = InteractionSpec(n_users=120, n_items=300, mean_per_user=40, min_per_user=10, users_per_block=50, seed=3)


def test_generator_is_deterministic_and_shaped_like_ratings():
    df = generate_interactions_pandas(SPEC)
    again = generate_interactions_pandas(SPEC)
    assert df.equals(again)
    assert not df.equals(generate_interactions_pandas(InteractionSpec(**{**SPEC.__dict__, "seed": 4})))
    assert df["user_id"].nunique() == 120 and df["user_id"].min() == 1
    assert df.groupby("user_id").size().min() >= 10
    assert not df.duplicated(["user_id", "item_id"]).any()
    assert set(df["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.0 < df["rating"].mean() < 4.2
    counts = df["item_id"].value_counts()
    assert counts.iloc[: len(counts) // 10].sum() / counts.sum() > 0.25  # long tail: top 10% of items
    per_user_times = df.groupby("user_id")["timestamp"].agg(["min", "max"])
    assert (per_user_times["max"] > per_user_times["min"]).all()


def test_spark_generation_equals_the_pandas_one(spark):
    got = generate_interactions(spark, SPEC, partitions=2, driver_rows=0).toPandas()
    assert generate_interactions(spark, SPEC).count() == len(got)  # made on the driver: same rows
    expected = generate_interactions_pandas(SPEC)
    key = ["user_id", "item_id"]
    got, expected = (d.sort_values(key, ignore_index=True) for d in (got, expected))
    assert np.array_equal(got.to_numpy(), expected.to_numpy())


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="min_per_user"):
        InteractionSpec(n_items=5, min_per_user=6)


def test_csv_with_own_column_names_gzipped(spark, tmp_path):
    path = tmp_path / "clicks.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("visitor\tvideo\tseconds\twhen\n7\t70\t12.5\t2020-01-01\n8\t80\t3\t2020-01-02\n")
    cols = InteractionColumns(user="visitor", item="video", rating="seconds", timestamp="when")
    df = read_interactions_csv(spark, str(path), cols, separator="\t")
    assert df.columns == ["user_id", "item_id", "rating", "timestamp"]
    assert [tuple(r) for r in df.orderBy("user_id").collect()] == [
        ("7", "70", "12.5", "2020-01-01"),
        ("8", "80", "3", "2020-01-02"),
    ]


def test_headerless_csv_without_rating_and_a_table(spark, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("1,2\n3,4\n")
    cols = InteractionColumns(user="u", item="i", rating=None, timestamp=None)
    df = read_interactions_csv(spark, str(path), cols, header=False)
    assert [tuple(r) for r in df.collect()] == [("1", "2", "1.0", "0"), ("3", "4", "1.0", "0")]
    table = spark.createDataFrame([(1, 2, 5.0, 9)], "customer long, product long, stars double, ts long")
    renamed = read_interactions_table(table, InteractionColumns("customer", "product", "stars", "ts"))
    assert renamed.columns == ["user_id", "item_id", "rating", "timestamp"]
    with pytest.raises(ValueError, match="no column"):
        read_interactions_table(table, InteractionColumns())
